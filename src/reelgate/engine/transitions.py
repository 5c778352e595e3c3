"""Applying what the upstream says to a task: the one code path for polls and callbacks alike."""

from __future__ import annotations

import time
from typing import Any

from reelgate.domain.progress import estimate
from reelgate.domain.task import TaskState
from reelgate.store.tasks import TaskRecord, TaskStore
from reelgate.upstream.provider import UpstreamStatus


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


async def apply_status(store: TaskStore, record: TaskRecord, status: UpstreamStatus) -> bool:
    """Move the task as the upstream says; True when this call changed it. Unknown states,
    repeats and anything that would move a task backwards change nothing.

    A success is not final yet: the video must first be copied into the media store, so the
    result is recorded and the task made due for an engine at once."""
    state = status.state
    if state is None or record.state.is_final:
        return False
    if state is TaskState.SUCCESS:
        return await store.record_origin(record.id, status.result_urls)
    if state is TaskState.FAIL:
        return await store.finish(record.id, state, error=failure_error(status))
    now_ms = int(time.time() * 1000)
    in_state_s = (now_ms - (record.state_since_ms or now_ms)) / 1000 if state == record.state else 0
    progress = estimate(state, in_state_s, record.progress)
    if state == record.state and progress <= record.progress:
        return False
    return await store.advance(record.id, state, progress)
