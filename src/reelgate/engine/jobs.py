"""The work a background loop has in flight: bounded, and stopped the same way by every loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, Final

STOP_GRACE_S: Final = 5.0
"""How long work under way gets to finish when its loop stops, so that a restart leaves few
leases to run out; what is still running then is cancelled and its lease left to expire."""


class Jobs:
    def __init__(self, limit: int, on_done: Callable[[], None] = lambda: None) -> None:
        self.limit = limit
        self.on_done = on_done
        self._running: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def room(self) -> int:
        return self.limit - len(self._running)

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        job = asyncio.create_task(work)
        self._running.add(job)
        job.add_done_callback(self._finished)

    def _finished(self, job: asyncio.Task[None]) -> None:
        self._running.discard(job)
        self.on_done()

    async def drain(self, grace_s: float = STOP_GRACE_S) -> None:
        """Give the work under way ``grace_s`` to finish, then cancel what is left."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=grace_s)
        for job in list(self._running):
            job.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)


async def first_of(stop: asyncio.Event, wake: asyncio.Event, timeout_s: float) -> None:
    """Wait until either event is set, or the timeout passes."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waiters, return_exceptions=True)
