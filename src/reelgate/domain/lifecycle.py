"""How a task moves and how it ends: every such decision, made here and nowhere else.

A task moves when the upstream reports on it (a poll or a callback, read back from the
upstream either way), when its video has been copied, when its deadline passes, when its create
is refused, and when a create that went unanswered is found again or given up. Each function
here takes what is known (the task, an upstream status, the time) and returns a decision; the
create service, the callback intake and the engine only carry decisions out, through the
store's compare-and-swaps, so duplicated, late and out-of-order reports change nothing.

No clock and no randomness are read here: callers pass the time and the jitter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from reelgate.domain.progress import estimate
from reelgate.domain.task import ORDER, MediaFile, Submission, TaskRecord, TaskState
from reelgate.domain.upstream import UpstreamStatus

JITTER: Final = (0.8, 1.2)
"""The range a poll delay is multiplied by, so that tasks created together spread out."""
OUTAGE_SLOWDOWN: Final = 4.0
"""How much longer to wait after the upstream failed to answer (rate limit, outage)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """The timings that decide when a task is checked and when it is given up."""

    poll_min_s: float = 2.0
    poll_max_s: float = 30.0
    pending_submission_s: float = 120.0
    """A create still unanswered this long after it was accepted is no longer awaited by any
    request: its outcome is unknown from then on."""
    unknown_submission_s: float = 900.0
    """A task whose create went unanswered, not found again by this long after it was
    accepted, fails with its money released."""


@dataclass(frozen=True, slots=True)
class Advance:
    """A forward move to a non-final state, or more progress within the current one."""

    state: TaskState
    progress: int


@dataclass(frozen=True, slots=True)
class Made:
    """The upstream made the video: it is copied before the task succeeds."""

    urls: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Succeed:
    """The video is stored: the task succeeds and its reservation is committed."""

    result: dict[str, Any]
    media: tuple[MediaFile, ...]


@dataclass(frozen=True, slots=True)
class Fail:
    """The task fails and its reservation is released in full."""

    error: dict[str, str]
    notify: bool = True
    """Whether the client's webhook is sent; a refused create is answered in its 502 instead."""


@dataclass(frozen=True, slots=True)
class Reschedule:
    """Nothing ends now: check the task again at ``at_ms``."""

    at_ms: int


Decision = Advance | Made | Fail | None
"""What an upstream report means for a task; None when it changes nothing."""


def on_status(task: TaskRecord, status: UpstreamStatus, now_ms: int) -> Decision:
    """What the upstream's own answer means for the task; None when it changes nothing (an
    unknown state, a repeat, or anything that would move the task backwards)."""
    state = status.state
    if state is None or task.state.is_final:
        return None
    if state is TaskState.SUCCESS:
        return None if task.origin_urls is not None else Made(status.result_urls)
    if state is TaskState.FAIL:
        code = status.fail_code
        shown = f" (code {code})" if code and code.isalnum() and len(code) <= 20 else ""
        return Fail(error("generation_failed", f"the video could not be generated{shown}"))
    if ORDER[state] < ORDER[task.state]:
        return None
    in_state_s = (now_ms - (task.state_since_ms or now_ms)) / 1000 if state == task.state else 0
    progress = estimate(state, in_state_s, task.progress)
    if state == task.state and progress <= task.progress:
        return None
    return Advance(state, progress)


def on_create_refused(code: str, message: str) -> Fail:
    """The upstream refused the create: nothing was made, nothing is charged, and the client
    hears of it in the create's own answer rather than by webhook."""
    return Fail(error(code, message), notify=False)


def may_bind(task: TaskRecord, status: UpstreamStatus) -> bool:
    """Whether an upstream task found by its callback is this task's, whose create went
    unanswered: only a task with no upstream id yet, and only when the upstream's own record
    of the task names this task in the callback address it was created with."""
    return (
        task.upstream_task_id is None
        and task.submission is not Submission.ACCEPTED
        and not task.state.is_final
        and status.callback_url is not None
        and _names_task(status.callback_url, task.id)
    )


def _names_task(callback_url: str, task_id: str) -> bool:
    return f"task_id={task_id}" in callback_url.partition("?")[2].split("&")


def succeeded(task: TaskRecord, media: tuple[MediaFile, ...], now_s: int) -> Succeed:
    """The video is stored: what the task keeps as its result. Links to the stored copies are
    made when the task is shown, since they are signed and expire."""
    return Succeed(
        result={
            "created": now_s,
            "resolution": task.request.get("resolution"),
            "origin_data": [{"url": url} for url in task.origin_urls or ()],
        },
        media=media,
    )


def poll_delay_s(schedule: Schedule, polls: int, jitter: float) -> float:
    """Seconds until the next check after ``polls`` checks: from ``poll_min_s``, x1.5 per
    check, capped at ``poll_max_s``, times ``jitter`` (drawn from :data:`JITTER`)."""
    return min(schedule.poll_max_s, schedule.poll_min_s * 1.5**polls) * jitter


def conclude(
    task: TaskRecord,
    schedule: Schedule,
    *,
    now_ms: int,
    jitter: float,
    upstream_failed: bool = False,
) -> Fail | Reschedule:
    """After a check that did not end the task: does it end now, and if not, when is it next
    checked? The next check counts from the end of this one, so after a slow answer the
    upstream still gets the whole pause; it never falls after the deadline."""
    deadline_ms = task.deadline_at_ms if task.deadline_at_ms is not None else now_ms
    if now_ms >= deadline_ms:
        if task.origin_urls is not None:
            return Fail(
                error(
                    "result_unavailable",
                    "the video was made but could not be stored before the task's deadline; "
                    "nothing was charged",
                )
            )
        return Fail(
            error(
                "deadline_exceeded",
                "the video was not ready before the task's deadline; nothing was charged",
            )
        )
    if task.submission is not Submission.ACCEPTED and now_ms >= _given_up_ms(task, schedule):
        return Fail(
            error(
                "submission_lost",
                "the video provider never confirmed the task; nothing was charged",
            )
        )
    delay_s = poll_delay_s(schedule, task.polls, jitter)
    if upstream_failed:
        # Rate limits and outages slow a task's checks down; they never fail it.
        delay_s = min(schedule.poll_max_s, delay_s * OUTAGE_SLOWDOWN)
    next_ms = now_ms + int(delay_s * 1000)
    if task.submission is not Submission.ACCEPTED:
        next_ms = min(next_ms, _given_up_ms(task, schedule))
    return Reschedule(min(next_ms, deadline_ms))


def submission_is_unknown(task: TaskRecord, schedule: Schedule, now_ms: int) -> bool:
    """Whether a create still marked pending can no longer be waiting for its answer: the
    process that sent it must have died, so the task may or may not exist upstream."""
    return (
        task.submission is Submission.PENDING
        and now_ms >= task.created_at * 1000 + schedule.pending_submission_s * 1000
    )


def _given_up_ms(task: TaskRecord, schedule: Schedule) -> int:
    return task.created_at * 1000 + int(schedule.unknown_submission_s * 1000)


def error(code: str, message: str) -> dict[str, str]:
    """A task's error as clients see it: a code and a message that never name the upstream."""
    return {"code": code, "message": message}


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What one engine check decided for a task it leased, written with other checks' outcomes
    in one transaction: when the task is next due, and any forward move."""

    task_id: str
    next_poll_at_ms: int
    advance: Advance | None = None
