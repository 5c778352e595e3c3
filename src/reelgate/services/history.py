"""What an operator (the console, the admin API, the CLI) sees of a task beyond the task
itself: its timeline of states, its webhook's delivery attempts and its ledger entries. None
of them is part of the public task resource."""

from __future__ import annotations

import time
from dataclasses import dataclass

from reelgate.domain.ids import is_id
from reelgate.domain.task import TaskRecord
from reelgate.domain.timeline import Step, timeline
from reelgate.domain.usage import LedgerEntry
from reelgate.domain.webhooks import AttemptRecord
from reelgate.errors import NotFound
from reelgate.store import task_events
from reelgate.store.database import Database
from reelgate.store.tasks import TaskStore
from reelgate.store.usage import UsageStore
from reelgate.store.webhooks import WebhookStore


@dataclass(frozen=True, slots=True)
class History:
    steps: tuple[Step, ...]
    attempts: tuple[AttemptRecord, ...]
    ledger: tuple[LedgerEntry, ...]
    """Oldest first: the reservation, then what settled it."""


class TaskHistory:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.tasks = TaskStore(db)
        self.webhooks = WebhookStore(db)
        self.usage = UsageStore(db)

    async def task(self, task_id: str) -> tuple[TaskRecord, History]:
        """A task of any account and its history: what the operator looks up by id."""
        record = await self.tasks.get(task_id) if is_id("task", task_id) else None
        if record is None:
            raise NotFound(f"no task {task_id[:100]!r}")
        return record, await self.of(record)

    async def of(self, task: TaskRecord, now_ms: int | None = None) -> History:
        """The task's timeline, its durations up to ``now_ms`` (now when not given), its
        webhook's attempts (none without a callBackUrl, or before it ended) and its ledger
        entries."""
        events = await task_events.of_task(self.db, task.id)
        attempts = await self.webhooks.attempts(task.id) if task.delivery is not None else []
        entries = await self.usage.task_entries(task.id)
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return History(timeline(task, events, now), tuple(attempts), tuple(entries))
