"""Usage and statements as values: ledger entries, and what an account used, grouped.

Usage counts each task once, when it ended: its commit (success) or release (failure) is the
ledger entry that dates it, so a period's usage is exactly what the ledger settled in it.
Days are UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Final

from reelgate.domain.task import LedgerKind

SECONDS_PER_DAY: Final = 86_400
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class GroupBy(StrEnum):
    DAY = "day"
    MODEL = "model"
    KEY = "key"
    ACCOUNT = "account"
    """Over all accounts only (the admin API and the command line)."""


ACCOUNT_GROUPS: Final = (GroupBy.DAY, GroupBy.MODEL, GroupBy.KEY)
"""What an account's own usage may be grouped by."""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    account_id: str
    task_id: str | None
    kind: LedgerKind
    amount_micro_usdc: int
    created_at: int
    note: str | None


@dataclass(frozen=True, slots=True)
class LedgerFilter:
    """Which of an account's entries a list shows; times are Unix seconds, bounds exclusive."""

    account_id: str
    kind: LedgerKind | None = None
    created_after: int | None = None
    created_before: int | None = None


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """Usage from ``from_s`` (inclusive) to ``to_s`` (exclusive; None: up to now), of one
    account or (None) of all."""

    account_id: str | None
    group_by: GroupBy = GroupBy.DAY
    from_s: int = 0
    to_s: int | None = None


@dataclass(frozen=True, slots=True)
class UsageFigures:
    tasks_success: int = 0
    tasks_fail: int = 0
    generated_seconds: int = 0
    """Of the tasks that succeeded: what was paid for."""
    committed_micro_usdc: int = 0
    released_micro_usdc: int = 0

    def __add__(self, other: UsageFigures) -> UsageFigures:
        return UsageFigures(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(UsageFigures))
        )


FIGURES: Final = tuple(f.name for f in fields(UsageFigures))
"""The figures' names, in order: the columns of a usage export."""


@dataclass(frozen=True, slots=True)
class UsageRow:
    group: str
    """The UTC day (YYYY-MM-DD), the model, the API key's id or the account's name."""
    figures: UsageFigures


@dataclass(frozen=True, slots=True)
class UsageReport:
    query: UsageQuery
    rows: list[UsageRow]

    @property
    def total(self) -> UsageFigures:
        total = UsageFigures()
        for row in self.rows:
            total += row.figures
        return total


def day_label(day_number: int) -> str:
    """The UTC date of the ``day_number``-th day since the Unix epoch."""
    return datetime.fromtimestamp(day_number * SECONDS_PER_DAY, UTC).date().isoformat()


def day_start(text: str) -> int:
    """Unix seconds at 00:00 UTC of a date written YYYY-MM-DD; ValueError otherwise."""
    if not _DATE.fullmatch(text):
        raise ValueError(f"not a date written YYYY-MM-DD: {text!r}")
    day = date.fromisoformat(text)
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
