"""What the console shows of a task beyond the task itself: its timeline of states and its
webhook's delivery attempts. Neither is part of the public task resource."""

from __future__ import annotations

import time
from dataclasses import dataclass

from reelgate.domain.task import TaskRecord
from reelgate.domain.timeline import Step, timeline
from reelgate.domain.webhooks import AttemptRecord
from reelgate.store import task_events
from reelgate.store.database import Database
from reelgate.store.webhooks import WebhookStore


@dataclass(frozen=True, slots=True)
class History:
    steps: tuple[Step, ...]
    attempts: tuple[AttemptRecord, ...]


class TaskHistory:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.webhooks = WebhookStore(db)

    async def of(self, task: TaskRecord, now_ms: int | None = None) -> History:
        """The task's timeline, its durations up to ``now_ms`` (now when not given), and its
        webhook's attempts (none without a callBackUrl, or before it ended)."""
        events = await task_events.of_task(self.db, task.id)
        attempts = await self.webhooks.attempts(task.id) if task.delivery is not None else []
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return History(timeline(task, events, now), tuple(attempts))
