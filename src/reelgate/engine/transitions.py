"""Applying what the upstream says to a task: one decision for polls and callbacks alike.

:func:`transition` decides, without I/O, what an upstream status means for a task; the store's
compare-and-swaps then carry it out, so duplicated, late and out-of-order reports change
nothing. A callback applies its decision at once (:func:`apply_status`); the engine batches
the progress of many checks into one transaction and applies the rest at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from reelgate.domain.progress import estimate
from reelgate.domain.task import TaskState
from reelgate.store.tasks import Progress, TaskRecord, TaskStore
from reelgate.upstream.provider import UpstreamStatus


@dataclass(frozen=True, slots=True)
class Made:
    """The upstream made the video; it is to be copied before the task succeeds."""

    urls: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Failed:
    error: dict[str, Any]


Transition = Progress | Made | Failed | None


def failure_error(status: UpstreamStatus) -> dict[str, Any]:
    """The client's view of an upstream failure: no upstream names, ids or texts."""
    code = f" (code {status.fail_code})" if status.fail_code and status.fail_code.isalnum() else ""
    return {"code": "generation_failed", "message": f"the video could not be generated{code}"}


def deadline_error(result_known: bool) -> dict[str, Any]:
    if result_known:
        return {
            "code": "result_unavailable",
            "message": "the video was made but could not be stored before the task's deadline; "
            "nothing was charged",
        }
    return {
        "code": "deadline_exceeded",
        "message": "the video was not ready before the task's deadline; nothing was charged",
    }


def success_result(record: TaskRecord, origin_urls: tuple[str, ...]) -> dict[str, Any]:
    """What a succeeded task keeps as its result; the links to its stored copies are made when
    it is shown."""
    return {
        "created": int(time.time()),
        "resolution": record.request.get("resolution"),
        "origin_data": [{"url": url} for url in origin_urls],
    }


def transition(record: TaskRecord, status: UpstreamStatus, now_ms: int) -> Transition:
    """What the status means for the task; None when it changes nothing (an unknown state, a
    repeat, or anything that would move the task backwards)."""
    state = status.state
    if state is None or record.state.is_final:
        return None
    if state is TaskState.SUCCESS:
        return Made(status.result_urls)
    if state is TaskState.FAIL:
        return Failed(failure_error(status))
    in_state_s = (now_ms - (record.state_since_ms or now_ms)) / 1000 if state == record.state else 0
    progress = estimate(state, in_state_s, record.progress)
    if state == record.state and progress <= record.progress:
        return None
    return Progress(state, progress)


async def apply(store: TaskStore, record: TaskRecord, change: Transition) -> bool:
    """Carry out a transition now; True when it changed the task. A video that was made is
    recorded and the task made due at once, so that an engine copies it."""
    if isinstance(change, Made):
        return await store.record_origin(record.id, change.urls)
    if isinstance(change, Failed):
        return await store.finish(record.id, TaskState.FAIL, error=change.error)
    if isinstance(change, Progress):
        return await store.advance(record.id, change)
    return False


async def apply_status(store: TaskStore, record: TaskRecord, status: UpstreamStatus) -> bool:
    return await apply(store, record, transition(record, status, int(time.time() * 1000)))
