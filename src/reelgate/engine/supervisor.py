"""Keeping the engine's loops running: whatever a loop raises is logged with its context and the
loop starts again after a growing pause, and its health says so meanwhile.

A loop that stopped silently would leave paid tasks unchecked while the API goes on accepting
them; here a failure is loud, retried, and visible to whoever asks the engine how it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from reelgate.domain.health import LoopHealth

log = logging.getLogger(__name__)

FIRST_BACKOFF_S: Final = 0.5
MAX_BACKOFF_S: Final = 30.0
RECOVERED_AFTER_S: Final = 10.0


Loop = Callable[[asyncio.Event], Awaitable[None]]


def pause_s(failures: int) -> float:
    """The pause before restarting a loop after ``failures`` failures in a row (1 or more)."""
    return float(min(FIRST_BACKOFF_S * 2.0 ** (failures - 1), MAX_BACKOFF_S))


async def supervise(
    name: str,
    loop: Loop,
    stop: asyncio.Event,
    health: LoopHealth,
    *,
    recovered_after_s: float = RECOVERED_AFTER_S,
) -> None:
    """Run ``loop(stop)`` until ``stop`` is set, restarting it whenever it raises. A loop that
    runs ``recovered_after_s`` after a restart without failing counts as healthy again."""
    failures = 0
    while not stop.is_set():
        health.running = True
        run = asyncio.ensure_future(loop(stop))
        try:
            done, _ = await asyncio.wait({run}, timeout=recovered_after_s)
            if not done:
                if health.failing_since is not None:
                    log.info("engine loop %r is working again", name)
                health.failing_since = None
                health.last_error = None
                failures = 0
            await run
        except asyncio.CancelledError:
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run
            raise
        except Exception as exc:
            health.running = False
            health.restarts += 1
            failures += 1
            health.last_error = f"{type(exc).__name__}: {exc}"[:500]
            if health.failing_since is None:
                health.failing_since = time.time()
            pause = pause_s(failures)
            log.error("engine loop %r failed; restarting in %.1f s", name, pause, exc_info=exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
    health.running = False
