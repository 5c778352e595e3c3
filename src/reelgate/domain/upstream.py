"""What an upstream provider says of a task, in reelgate's terms."""

from __future__ import annotations

from dataclasses import dataclass

from reelgate.domain.task import TaskState


@dataclass(frozen=True, slots=True)
class UpstreamStatus:
    """The upstream's own answer about one of its tasks. ``state`` is None for a state reelgate
    does not know: such a task is still running, never finished."""

    upstream_task_id: str
    state: TaskState | None
    result_urls: tuple[str, ...] = ()
    fail_code: str | None = None
    fail_message: str | None = None
    """The upstream's own words on a failure: for the operator's logs, never for clients."""
    callback_url: str | None = None
    """The callback address the task was created with, as the upstream kept it: it names the
    gateway's task, which is how a task whose create went unanswered is recognised."""
