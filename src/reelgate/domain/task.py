"""Task states, billing states and the rules that move them."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class TaskState(StrEnum):
    WAITING = "waiting"
    QUEUING = "queuing"
    GENERATING = "generating"
    SUCCESS = "success"
    FAIL = "fail"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES: Final = frozenset({TaskState.SUCCESS, TaskState.FAIL})
ORDER: Final = {
    # How far along each state is: a task only ever moves to a higher one.
    TaskState.WAITING: 0,
    TaskState.QUEUING: 1,
    TaskState.GENERATING: 2,
    TaskState.SUCCESS: 3,
    TaskState.FAIL: 3,
}


class Submission(StrEnum):
    """How sending the task to the upstream went."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    UNKNOWN = "unknown"
    """Sent, but no answer came: it may exist upstream, so it is never sent again blindly."""


class BillingStatus(StrEnum):
    RESERVED = "reserved"
    COMMITTED = "committed"
    RELEASED = "released"


class LedgerKind(StrEnum):
    CREDIT = "credit"
    """Money in: raises the balance."""
    RESERVE = "reserve"
    """A task's cost held at create: lowers the available balance, not the balance."""
    COMMIT = "commit"
    """A successful task pays its reservation: lowers the balance."""
    RELEASE = "release"
    """A failed task's reservation returned in full."""
