"""CSV exports of task lists, ledgers and usage: a header row, then the rows, streamed.

The rows are read a chunk at a time (see :mod:`reelgate.services.usage`) and each chunk is
written out before the next is read, so an export of any size holds one chunk in memory. The
first chunk is read before the answer starts, so that a failure then is still a proper error
answer; one later cuts the connection short, which clients see as an incomplete transfer rather
than a complete-looking file with rows missing.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Final, TypeVar

from starlette.responses import StreamingResponse

from reelgate.api import schemas
from reelgate.api.responses import NO_STORE
from reelgate.domain.task import TaskRecord
from reelgate.domain.usage import FIGURES, LedgerEntry, UsageReport

T = TypeVar("T")
Cell = str | int | float | None

CSV: Final = "text/csv; charset=utf-8"

TASK_COLUMNS: Final = (
    "task_id",
    "model",
    "state",
    "progress",
    "created_at",
    "updated_at",
    "completed_at",
    "resolution",
    "aspect_ratio",
    "duration",
    "billing_status",
    "tier",
    "price_per_second_micro_usdc",
    "margin",
    "reserve_amount_micro_usdc",
    "actual_amount_micro_usdc",
    "released_amount_micro_usdc",
    "error_code",
    "error_message",
    "video_url",
)
ADMIN_TASK_COLUMNS: Final = ("task_id", "account_id", "key_id", *TASK_COLUMNS[1:])
LEDGER_COLUMNS: Final = ("id", "created_at", "kind", "amount_micro_usdc", "task_id", "note")

_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def text(value: object) -> str | None:
    """Free text for a cell, never read as a formula by a spreadsheet: a leading ``'`` is put
    before a first character that would start one (OWASP's advice for CSV injection)."""
    if value is None:
        return None
    cell = str(value)
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def task_row(task: schemas.TaskResource, record: TaskRecord, admin: bool = False) -> list[Cell]:
    """A task as a row of TASK_COLUMNS (ADMIN_TASK_COLUMNS when ``admin``): the resource as
    served, flattened."""
    billing = task.billing
    videos = task.result.get("data") or [{}]
    row: list[Cell] = [
        task.task_id,
        task.model,
        task.state.value,
        task.progress,
        task.created_at,
        task.updated_at,
        task.completed_at,
        task.request.get("resolution"),
        task.request.get("aspect_ratio"),
        billing.duration,
        billing.status.value,
        billing.tier,
        billing.price_per_second_micro_usdc,
        billing.margin,
        billing.reserve_amount_micro_usdc,
        billing.actual_amount_micro_usdc,
        billing.released_amount_micro_usdc,
        task.error.get("code"),
        text(task.error.get("message")),
        videos[0].get("url"),
    ]
    if admin:
        row[1:1] = [record.account_id, record.key_id]
    return row


def ledger_row(entry: LedgerEntry) -> list[Cell]:
    return [
        entry.id,
        entry.created_at,
        entry.kind.value,
        entry.amount_micro_usdc,
        entry.task_id,
        text(entry.note),
    ]


def usage_header(report: UsageReport) -> tuple[str, ...]:
    return (report.query.group_by.value, *FIGURES)


def usage_rows(report: UsageReport) -> Iterable[list[Cell]]:
    for row in report.rows:
        yield [text(row.group), *(getattr(row.figures, name) for name in FIGURES)]


class _Pending:
    """The file csv.writer writes to: it keeps the text until it is taken."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, part: str) -> int:
        self.parts.append(part)
        return len(part)

    def take(self) -> bytes:
        taken = "".join(self.parts).encode()
        self.parts.clear()
        return taken


def writer() -> tuple[_Pending, Callable[[Iterable[Sequence[Cell]]], None]]:
    """A CSV writer (RFC 4180: CRLF line ends, quotes where needed) and what it wrote."""
    pending = _Pending()
    return pending, csv.writer(pending, lineterminator="\r\n").writerows


async def streamed(
    header: Sequence[str],
    chunks: AsyncIterator[Sequence[T]],
    row: Callable[[T], Sequence[Cell]],
    filename: str,
) -> StreamingResponse:
    """The CSV answer: ``header``, then a row for each item of each chunk."""
    first = await anext(chunks, None)

    async def body() -> AsyncIterator[bytes]:
        pending, write = writer()
        write([header])
        chunk = first
        while chunk is not None:
            write(row(item) for item in chunk)
            yield pending.take()
            chunk = await anext(chunks, None)
        if first is None:
            yield pending.take()

    return StreamingResponse(
        body(),
        media_type=CSV,
        headers={
            "content-disposition": f'attachment; filename="{filename}"',
            "vary": "accept",
            **NO_STORE,
        },
    )


async def once(items: Sequence[T]) -> AsyncIterator[Sequence[T]]:
    """Items already read, as one chunk."""
    yield items
