"""Tasks as values: their states, how their money stands, and the record the gateway keeps.

Every enum here is the one spelling of its values: the API's schemas, the database's
constraints and the stores all take them from this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from reelgate.domain.pricing import Quote
from reelgate.domain.webhooks import DeliveryStatus


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
UNFINISHED_STATES: Final = (TaskState.WAITING, TaskState.QUEUING, TaskState.GENERATING)
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
    """Stored, not yet answered by the upstream (or the process died while it waited)."""
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


@dataclass(frozen=True, slots=True)
class MediaFile:
    """One stored result file; its index in the task's list names it."""

    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where the task's webhook stands, once the task has ended."""

    webhook_id: str
    status: DeliveryStatus
    attempts: int
    last_response_code: int | None
    last_error: str | None
    next_attempt_at_ms: int | None
    delivered_at_ms: int | None


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """A task as the gateway keeps it."""

    id: str
    account_id: str
    key_id: str
    model: str
    state: TaskState
    progress: int
    request: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    channel: str
    upstream_task_id: str | None
    submission: Submission
    billing_status: BillingStatus
    quote: Quote
    created_at: int
    updated_at: int
    completed_at: int | None
    polls: int = 0
    deadline_at_ms: int | None = None
    state_since_ms: int | None = None
    origin_urls: tuple[str, ...] | None = None
    """The upstream's result URLs, once it reported success."""
    media: tuple[MediaFile, ...] = ()
    """The stored copies of the result, on success."""
    delivery: Delivery | None = None
    """The webhook, when the task has a callBackUrl and has ended (read with the task only)."""
    request_id: str | None = None
    """The request id of the create that made the task (none for tasks from before 0011)."""
    charge_micro_usdc: int | None = None
    """What a success commits, when a failover moved the task to a channel cheaper than its
    reservation (the rest is released); None: the whole reservation."""

    @property
    def charge(self) -> int:
        """What the task costs if it succeeds."""
        return (
            self.quote.cost_micro_usdc if self.charge_micro_usdc is None else self.charge_micro_usdc
        )

    @property
    def callback_url(self) -> str | None:
        url = self.request.get("callBackUrl")
        return url if isinstance(url, str) else None


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task about to be stored, its cost reserved in the same transaction."""

    id: str
    account_id: str
    key_id: str
    model: str
    request: dict[str, Any]
    channel: str
    quote: Quote
    created_at_ms: int
    first_poll_at_ms: int
    deadline_at_ms: int
    request_id: str | None = None

    def as_stored(self) -> TaskRecord:
        """The task as it reads right after it was stored: waiting, nothing sent yet."""
        created_at = self.created_at_ms // 1000
        return TaskRecord(
            id=self.id,
            account_id=self.account_id,
            key_id=self.key_id,
            model=self.model,
            state=TaskState.WAITING,
            progress=0,
            request=self.request,
            result=None,
            error=None,
            channel=self.channel,
            upstream_task_id=None,
            submission=Submission.PENDING,
            billing_status=BillingStatus.RESERVED,
            quote=self.quote,
            created_at=created_at,
            updated_at=created_at,
            completed_at=None,
            deadline_at_ms=self.deadline_at_ms,
            state_since_ms=self.created_at_ms,
            request_id=self.request_id,
        )
