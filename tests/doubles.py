"""Test doubles of the Provider interface (reelgate.upstream.provider.Provider), for tests of
the gateway's side of the boundary; the real adaptor is tested against the sandbox."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from reelgate.domain.request import VideoGenerationRequest
from reelgate.domain.upstream import UpstreamStatus
from reelgate.errors import UpstreamError


@dataclass
class RefusingProvider:
    """A test double of the Provider interface (reelgate.upstream.provider.Provider): an upstream
    that refuses every task by raising UpstreamError, as the interface says providers report a
    refused or failed create. It counts the submissions it was asked for."""

    error: UpstreamError
    channel: str = "kie"
    submissions: int = 0

    async def submit(self, request: VideoGenerationRequest, callback_url: str | None) -> str:
        self.submissions += 1
        raise self.error

    async def fetch_status(self, upstream_task_id: str) -> UpstreamStatus:
        raise AssertionError("a refused task has no upstream id to ask about")

    async def probe(self) -> None:
        raise self.error

    async def find_created(self, task_id: str) -> UpstreamStatus | None:
        return None

    def read_callback(self, headers: Mapping[str, str], body: bytes) -> str:
        raise AssertionError("a refused task gets no callbacks")

    async def aclose(self) -> None:
        """Nothing to release."""


@dataclass
class AcceptingProvider:
    """A test double of the Provider interface (reelgate.upstream.provider.Provider): an upstream
    that accepts every task under a recognisable id and reports it still running."""

    channel: str = "kie"
    upstream_ids: list[str] = field(default_factory=list)

    async def submit(self, request: VideoGenerationRequest, callback_url: str | None) -> str:
        upstream_id = f"UPSTREAM-{uuid.uuid4().hex}"
        self.upstream_ids.append(upstream_id)
        return upstream_id

    async def fetch_status(self, upstream_task_id: str) -> UpstreamStatus:
        return UpstreamStatus(upstream_task_id=upstream_task_id, state=None)

    async def probe(self) -> None:
        """It always answers."""

    async def find_created(self, task_id: str) -> UpstreamStatus | None:
        return None

    def read_callback(self, headers: Mapping[str, str], body: bytes) -> str:
        raise AssertionError("no callbacks in this test")

    async def aclose(self) -> None:
        """Nothing to release."""
