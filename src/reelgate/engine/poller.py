"""The poll scheduler: every unfinished task carries when it is next due; engines lease due tasks
in batches, ask the upstream with bounded concurrency and a request budget, and reschedule each
with a growing, jittered delay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid

from aiolimiter import AsyncLimiter

from reelgate.config import Settings
from reelgate.domain.task import Submission, TaskState
from reelgate.engine.transitions import apply_status, deadline_error
from reelgate.errors import ReelgateError, UpstreamError
from reelgate.store.database import Database
from reelgate.store.tasks import TaskRecord, TaskStore
from reelgate.upstream.provider import Provider

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.25
"""How long an engine with nothing due waits before looking again."""


def poll_delay_s(settings: Settings, polls: int, rng: random.Random) -> float:
    """Seconds until the next check: from engine_poll_min_s, x1.5 per check, capped, +-20 %."""
    base = min(settings.engine_poll_max_s, settings.engine_poll_min_s * 1.5**polls)
    return base * rng.uniform(0.8, 1.2)


class Engine:
    def __init__(self, db: Database, settings: Settings, provider: Provider) -> None:
        self.store = TaskStore(db)
        self.settings = settings
        self.provider = provider
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.budget = AsyncLimiter(settings.engine_requests_per_s, 1)
        self.rng = random.Random()
        self._running: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Check due tasks until ``stop`` is set."""
        while not stop.is_set():
            room = self.settings.engine_concurrency - len(self._running)
            batch: list[TaskRecord] = []
            if room > 0:
                try:
                    batch = await self.store.claim_due(
                        self.owner,
                        min(room, self.settings.engine_batch),
                        int(self.settings.engine_lease_s * 1000),
                    )
                except ReelgateError as exc:
                    log.warning("engine: cannot claim tasks (%s); retrying", exc)
            for record in batch:
                job = asyncio.create_task(self._check(record))
                self._running.add(job)
                job.add_done_callback(self._running.discard)
            if not batch or room <= len(batch):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), IDLE_WAIT_S)
        for job in list(self._running):
            job.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def _check(self, record: TaskRecord) -> None:
        try:
            next_ms = await self._poll(record)
        except Exception:
            log.exception("engine: checking task %s failed; trying again later", record.id)
            next_ms = int((time.time() + self.settings.engine_poll_max_s) * 1000)
        await self.store.reschedule(record.id, self.owner, next_ms)

    async def _poll(self, record: TaskRecord) -> int:
        """Check one task; return when it is next due (ignored once it has finished)."""
        now_ms = int(time.time() * 1000)
        deadline_ms = record.deadline_at_ms or now_ms
        past_deadline = now_ms >= deadline_ms
        delay_s = poll_delay_s(self.settings, record.polls, self.rng)
        if record.submission is Submission.ACCEPTED and record.upstream_task_id:
            async with self.budget:
                try:
                    status = await self.provider.fetch_status(record.upstream_task_id)
                except UpstreamError as exc:
                    # Rate limits and outages slow this task down; they never fail it.
                    log.info("engine: upstream check of %s failed: %s", record.id, exc.code)
                    delay_s = min(self.settings.engine_poll_max_s, delay_s * 4)
                    status = None
            finished = status is not None and status.state in (TaskState.SUCCESS, TaskState.FAIL)
            if status is not None and await apply_status(self.store, record, status) and finished:
                return now_ms
        if past_deadline:
            # That was the last check: the task ends here, its money released.
            await self.store.finish(record.id, TaskState.FAIL, error=deadline_error())
            return now_ms
        return min(now_ms + int(delay_s * 1000), deadline_ms)
