"""The one interface every upstream provider implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from reelgate.domain.request import VideoGenerationRequest
from reelgate.domain.task import TaskState


@dataclass(frozen=True, slots=True)
class UpstreamStatus:
    """What the upstream says of a task. ``state`` is None for a state reelgate does not know:
    such a task is still running, never finished."""

    upstream_task_id: str
    state: TaskState | None
    result_urls: tuple[str, ...] = ()
    fail_code: str | None = None
    fail_message: str | None = None
    extra: Mapping[str, object] = field(default_factory=dict)


class Provider(Protocol):
    """Creates tasks at an upstream and reports on them.

    Failures are reelgate's own errors: :class:`~reelgate.errors.UpstreamError` when the upstream
    refused or failed to create the task (nothing was created, nothing is charged).
    """

    channel: str

    async def submit(self, request: VideoGenerationRequest, callback_url: str | None) -> str:
        """Create the task upstream and return the upstream's task id."""
        ...

    async def fetch_status(self, upstream_task_id: str) -> UpstreamStatus:
        """The task's current state at the upstream."""
        ...

    def read_callback(self, headers: Mapping[str, str], body: bytes) -> UpstreamStatus:
        """Verify and parse a callback the upstream sent about one of its tasks."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the gateway stops."""
        ...
