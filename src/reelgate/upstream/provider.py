"""The one interface every upstream provider implements (the port); adaptors live beside it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from reelgate.domain.request import VideoGenerationRequest
from reelgate.domain.upstream import UpstreamStatus


class Provider(Protocol):
    """Creates tasks at an upstream and reports on them.

    Failures are reelgate's own errors: :class:`~reelgate.errors.UpstreamError` when the upstream
    refused or failed a call (for a create: nothing was created, nothing is charged), and
    :class:`~reelgate.errors.UpstreamOutcomeUnknown` when a create was sent but not answered.
    """

    channel: str

    async def submit(self, request: VideoGenerationRequest, callback_url: str | None) -> str:
        """Create the task upstream and return the upstream's task id."""
        ...

    async def fetch_status(self, upstream_task_id: str) -> UpstreamStatus:
        """The task's current state, in the upstream's own answer."""
        ...

    async def find_created(self, task_id: str) -> UpstreamStatus | None:
        """The upstream's record of a task whose create went unanswered, when the upstream
        has a way to look it up (its task list); None when it has none or finds none. The
        record is believed only when it names the gateway's task (domain.lifecycle.may_bind)."""
        ...

    async def probe(self) -> None:
        """A call that costs nothing and proves that the upstream answers and takes the
        gateway's credentials; raises UpstreamError otherwise."""
        ...

    def read_callback(self, headers: Mapping[str, str], body: bytes) -> str:
        """The upstream task id a callback is about, once its signature (when one is
        configured) checks out. Nothing else in a callback is believed."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the gateway stops."""
        ...
