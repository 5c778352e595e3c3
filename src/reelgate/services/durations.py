"""How long each model's recent tasks took, for the ETA hints (:mod:`reelgate.domain.eta`).

Read from the database (the newest successes of the model, through an index) and kept for a
minute, rather than gathered in the memory of the process that saw tasks end: in a split
deployment the API process that renders tasks is not the engine that finishes them, every
process then gives the same hint, and a restart forgets nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from reelgate.domain.eta import Finished
from reelgate.store.tasks import TaskStore

FRESH_FOR_S: Final = 60.0
WINDOW_S: Final = 24 * 3600
"""Older successes say little about today's upstream."""
SAMPLES: Final = 200


class RecentDurations:
    def __init__(self, store: TaskStore, fresh_for_s: float = FRESH_FOR_S) -> None:
        self.store = store
        self.fresh_for_s = fresh_for_s
        self._kept: dict[str, tuple[float, tuple[Finished, ...]]] = {}
        self._reading: dict[str, asyncio.Lock] = {}

    async def of(self, model: str) -> tuple[Finished, ...]:
        """The model's recent successes, read again once a minute at most (concurrent callers
        share one read)."""
        kept = self._kept.get(model)
        if kept is not None and time.monotonic() - kept[0] < self.fresh_for_s:
            return kept[1]
        lock = self._reading.setdefault(model, asyncio.Lock())
        async with lock:
            kept = self._kept.get(model)
            if kept is not None and time.monotonic() - kept[0] < self.fresh_for_s:
                return kept[1]
            since = int(time.time()) - WINDOW_S
            finished = tuple(await self.store.recent_successes(model, since, SAMPLES))
            self._kept[model] = (time.monotonic(), finished)
            return finished
