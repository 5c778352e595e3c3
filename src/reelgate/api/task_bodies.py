"""Task resources as served: rendered once, kept until the task changes or its links are due
for renewal, shared by polls, event streams and the poll fast path."""

from __future__ import annotations

import time

from reelgate.api.poll_cache import FreshCache, TaskEntry
from reelgate.api.resources import TaskView
from reelgate.domain.accounts import ApiKey
from reelgate.services.tasks import TaskService


class TaskBodies:
    def __init__(self, tasks: TaskService, cache: FreshCache[TaskEntry], view: TaskView) -> None:
        self.tasks = tasks
        self.cache = cache
        self.view = view

    async def body(self, key: ApiKey, task_id: str) -> bytes:
        """The task resource as served, from the cache when it is there."""
        cached = self.cached(key, task_id)
        if cached is not None:
            return cached
        ticket = self.cache.ticket(task_id)
        record = await self.tasks.get(key.account_id, task_id)
        finished = () if record.state.is_final else await self.tasks.durations.of(record.model)
        entry = self.view.entry(record, finished)
        self.cache.fill(task_id, entry, ticket)
        body = entry.served(time.time())
        assert body is not None  # made just now: not stale
        return body

    def cached(self, key: ApiKey, task_id: str) -> bytes | None:
        entry = self.cache.get(task_id)
        if entry is None or entry.account_id != key.account_id:
            return None
        if entry.stale_at is None:
            return entry.body
        # Its video links are due to be signed anew, or its ETA hint has run out.
        return entry.served(time.time())
