"""Lists as values: which tasks a list asks for, the bounds its parameters keep, and a page.

Lists run newest first by id. Ids are ULIDs, which begin with the time they were made, so the
order is the order of creation, and a page that resumes after the last id it was given sees
neither a task twice nor skips one, whatever was created meanwhile (newer tasks sort before it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from reelgate.domain.ids import first_id_at
from reelgate.domain.task import TaskState

T = TypeVar("T")

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100
EXPORT_CHUNK: Final = 500
"""Rows read in one query while an export streams: each read is its own short transaction, so
a slow reader of a large export holds no snapshot (nor SQLite's checkpoints) for long."""

MAX_UNIX_S: Final = 253_402_300_799
"""The last second of the year 9999: the latest time a list or usage parameter takes."""

ID_CLOCK_SLACK_MS: Final = 60_000
"""How far a task's id time may lie from its ``created_at``. The service reads the clock for
``created_at`` and makes the id a moment later, so they differ by microseconds; a minute
covers a clock stepped back between the two."""


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which tasks a list shows; None leaves a field unfiltered. Times are Unix seconds, both
    bounds exclusive."""

    account_id: str | None = None
    key_id: str | None = None
    state: TaskState | None = None
    model: str | None = None
    channel: str | None = None
    """The channel a task was sent to (or is to be: its first, before it is submitted)."""
    created_after: int | None = None
    created_before: int | None = None

    def id_range(self) -> tuple[str | None, str | None]:
        """Bounds on the ids of the tasks created in the window (``low <= id < high``), wider
        than the window by ``ID_CLOCK_SLACK_MS``: they let the database walk the part of an
        account's index the window covers; ``created_at`` itself still decides."""
        low = (
            None
            if self.created_after is None
            else first_id_at("task", (self.created_after + 1) * 1000 - ID_CLOCK_SLACK_MS)
        )
        high = (
            None
            if self.created_before is None
            else first_id_at("task", self.created_before * 1000 + ID_CLOCK_SLACK_MS)
        )
        return low, high


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Up to the requested number of items, and whether more follow the last of them."""

    items: Sequence[T]
    has_more: bool


def page_of(rows: Sequence[T], limit: int) -> Page[T]:
    """A page from ``limit + 1`` rows read: the one past the limit says that more follow."""
    return Page(rows[:limit], len(rows) > limit)
