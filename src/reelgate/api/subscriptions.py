"""Who is waiting for which task to change, woken by the change feed (for event streams)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator

from reelgate.domain import changes


class TaskEvents:
    """Who is waiting for which task to change, woken by the change feed."""

    def __init__(self) -> None:
        self._waiting: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    @contextlib.contextmanager
    def subscribe(self, task_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiting[task_id].add(event)
        try:
            yield event
        finally:
            waiting = self._waiting[task_id]
            waiting.discard(event)
            if not waiting:
                del self._waiting[task_id]

    def apply(self, change: changes.Change) -> None:
        topic, ref = change
        if topic == changes.TASK:
            for event in self._waiting.get(ref, ()):
                event.set()
        elif change == changes.RESYNC:
            for waiting in self._waiting.values():
                for event in waiting:
                    event.set()
