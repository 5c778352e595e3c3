"""Every call to the upstream, measured and remembered: its metrics, and whether the channel is
alive (:mod:`reelgate.domain.channel_health`), which readiness reads instead of calling out.

It wraps whichever adaptor the gateway talks to, so that the create path, the callback intake
and the engine all go through it, and no adaptor needs to know about metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, TypeVar

from reelgate.domain.channel_health import ChannelHealth
from reelgate.domain.request import VideoGenerationRequest
from reelgate.domain.upstream import UpstreamStatus
from reelgate.errors import UpstreamError
from reelgate.services.metrics import Metrics
from reelgate.upstream.provider import Provider

T = TypeVar("T")

PROBE_TIMEOUT_S: Final = 5.0


def outcome(exc: UpstreamError) -> str:
    """A failed call's label: its error code, without the prefix every upstream code has."""
    return exc.code.removeprefix("upstream_")


class ObservedProvider:
    """A :class:`~reelgate.upstream.provider.Provider` that records each call of the one it
    wraps."""

    def __init__(
        self, inner: Provider, metrics: Metrics, clock: Callable[[], float] = time.time
    ) -> None:
        self.inner = inner
        self.metrics = metrics
        self.clock = clock
        self.channel = inner.channel
        self.health = ChannelHealth(inner.channel)
        self._probing: asyncio.Lock = asyncio.Lock()

    async def submit(self, request: VideoGenerationRequest, callback_url: str | None) -> str:
        return await self._call("submit", self.inner.submit(request, callback_url))

    async def fetch_status(self, upstream_task_id: str) -> UpstreamStatus:
        return await self._call("fetch_status", self.inner.fetch_status(upstream_task_id))

    async def probe(self) -> None:
        await self._call("probe", self.inner.probe())

    async def find_created(self, task_id: str) -> UpstreamStatus | None:
        # Not every provider asks anything here (KIE has no lookup): only its failures are
        # told to the channel's health, never a success that may not have reached it.
        started = time.perf_counter()
        try:
            found = await self.inner.find_created(task_id)
        except UpstreamError as exc:
            self.metrics.upstream_call(
                self.channel, "find_created", outcome(exc), time.perf_counter() - started
            )
            self.health.failed(exc.code, exc.fault, self.clock())
            raise
        self.metrics.upstream_call(
            self.channel, "find_created", "ok", time.perf_counter() - started
        )
        return found

    def read_callback(self, headers: Mapping[str, str], body: bytes) -> str:
        return self.inner.read_callback(headers, body)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def alive(self) -> bool:
        """Whether the channel can take tasks: not known dead by its recent calls. When what
        is known is out of date, the upstream is asked once (a call that costs nothing)."""
        if self.health.worth_asking(self.clock()):
            async with self._probing:
                if self.health.worth_asking(self.clock()):
                    try:
                        async with asyncio.timeout(PROBE_TIMEOUT_S):
                            await self.probe()
                    except (UpstreamError, TimeoutError):
                        pass  # remembered by _call (a timeout: as not heard from)
        return not self.health.dead(self.clock())

    async def _call(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            result = await call
        except UpstreamError as exc:
            self.metrics.upstream_call(
                self.channel, operation, outcome(exc), time.perf_counter() - started
            )
            self.health.failed(exc.code, exc.fault, self.clock())
            raise
        self.metrics.upstream_call(self.channel, operation, "ok", time.perf_counter() - started)
        self.health.succeeded(self.clock())
        return result
