"""The poll scheduler: every unfinished task carries when it is next due; engines lease due tasks
in batches, ask the upstream with bounded concurrency and a request budget, copy each finished
video into the media store, and reschedule the rest with a growing, jittered delay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid

import aiohttp
from aiolimiter import AsyncLimiter

from reelgate.config import Settings
from reelgate.domain.task import Submission, TaskState
from reelgate.engine.media import MediaError, MediaStore
from reelgate.engine.transitions import (
    Failed,
    Made,
    apply,
    deadline_error,
    success_result,
    transition,
)
from reelgate.errors import ReelgateError, UpstreamError
from reelgate.store.database import Database
from reelgate.store.tasks import CheckOutcome, Progress, TaskRecord, TaskStore
from reelgate.upstream.provider import Provider

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.25
"""How long an engine with nothing due waits before looking again (unless woken)."""
STOP_GRACE_S = 5.0


def poll_delay_s(settings: Settings, polls: int, rng: random.Random) -> float:
    """Seconds until the next check: from engine_poll_min_s, x1.5 per check, capped, +-20 %."""
    base = min(settings.engine_poll_max_s, settings.engine_poll_min_s * 1.5**polls)
    return base * rng.uniform(0.8, 1.2)


def engine_owner() -> str:
    """A name for this engine's leases, unique across hosts and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Engine:
    def __init__(self, db: Database, settings: Settings, provider: Provider) -> None:
        self.store = TaskStore(db)
        self.settings = settings
        self.provider = provider
        self.media = MediaStore(settings.media_dir)
        self.owner = engine_owner()
        self.budget = AsyncLimiter(settings.engine_requests_per_s, 1)
        self.rng = random.Random()
        self._downloads: aiohttp.ClientSession | None = None
        self.wake = asyncio.Event()
        """Set when there is something to do at once: a task became due now (a callback brought
        its result), or checks of a backlog finished and made room for more."""
        self._running: set[asyncio.Task[None]] = set()
        self._backlog = False
        """Whether the last claim was full, so that more tasks are likely due."""
        self._min_claim = max(1, min(settings.engine_batch, settings.engine_concurrency) // 4)
        """Claiming waits for this much room: one query per finished check would waste it."""
        self._outcomes: list[CheckOutcome] = []
        self._flushing: asyncio.Task[None] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Check due tasks until ``stop`` is set."""
        timeout = aiohttp.ClientTimeout(connect=10, sock_read=self.settings.media_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as self._downloads:
            await self._loop(stop)

    async def _loop(self, stop: asyncio.Event) -> None:
        concurrency = self.settings.engine_concurrency
        while not stop.is_set():
            self.wake.clear()
            room = concurrency - len(self._running)
            asked = min(room, self.settings.engine_batch)
            batch: list[TaskRecord] = []
            if room >= self._min_claim or (room > 0 and not self._running):
                try:
                    batch = await self.store.claim_due(
                        self.owner, asked, int(self.settings.engine_lease_s * 1000)
                    )
                except ReelgateError as exc:
                    log.warning("engine: cannot claim tasks (%s); retrying", exc)
            for record in batch:
                job = asyncio.create_task(self._check(record))
                self._running.add(job)
                job.add_done_callback(self._done)
            self._backlog = len(batch) == asked > 0
            if not (self._backlog and concurrency - len(self._running) >= self._min_claim):
                await _first(stop, self.wake, IDLE_WAIT_S)
        # Checks under way get a moment to finish, so that a restart leaves few tasks waiting
        # for their leases to run out.
        if self._running:
            await asyncio.wait(set(self._running), timeout=STOP_GRACE_S)
        for job in list(self._running):
            job.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        if self._flushing is not None:
            await self._flushing

    def _done(self, job: asyncio.Task[None]) -> None:
        self._running.discard(job)
        room = self.settings.engine_concurrency - len(self._running)
        if self._backlog and room >= self._min_claim:
            self.wake.set()

    async def _check(self, record: TaskRecord) -> None:
        try:
            outcome = await self._poll(record)
        except Exception:
            log.exception("engine: checking task %s failed; trying again later", record.id)
            outcome = CheckOutcome(
                record.id, int((time.time() + self.settings.engine_poll_max_s) * 1000)
            )
        self._outcomes.append(outcome)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        """Write finished checks in batches: whatever finished while one transaction ran goes
        into the next."""
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            try:
                await self.store.record_checks(self.owner, batch)
            except Exception:
                # Their leases run out and the tasks are due again then: nothing is lost.
                log.exception("engine: cannot record %d checks", len(batch))

    async def _poll(self, record: TaskRecord) -> CheckOutcome:
        """Check one task: what changed, and when it is next due (moot once it has ended)."""
        now_ms = int(time.time() * 1000)
        deadline_ms = record.deadline_at_ms or now_ms
        delay_s = poll_delay_s(self.settings, record.polls, self.rng)
        origin = record.origin_urls
        progress: Progress | None = None
        if origin is None and record.submission is Submission.ACCEPTED and record.upstream_task_id:
            async with self.budget:
                try:
                    status = await self.provider.fetch_status(record.upstream_task_id)
                except UpstreamError as exc:
                    # Rate limits and outages slow this task down; they never fail it.
                    log.info("engine: upstream check of %s failed: %s", record.id, exc.code)
                    delay_s = min(self.settings.engine_poll_max_s, delay_s * 4)
                    status = None
            change = None if status is None else transition(record, status, now_ms)
            if isinstance(change, Progress):
                progress = change  # written with other checks' in one transaction
            elif isinstance(change, Failed):
                if await apply(self.store, record, change):
                    return CheckOutcome(record.id, now_ms)
            elif isinstance(change, Made):
                await apply(self.store, record, change)
                origin = change.urls
        if origin is not None and await self._store_result(record, origin):
            return CheckOutcome(record.id, now_ms)
        if now_ms >= deadline_ms:
            # That was the last chance: the task ends here, its money released.
            if await self.store.finish(
                record.id, TaskState.FAIL, error=deadline_error(origin is not None)
            ):
                log.warning("engine: task %s passed its deadline; released", record.id)
            return CheckOutcome(record.id, now_ms)
        # Counted from the end of this check: after a slow answer or a timeout, the upstream
        # still gets the whole pause.
        next_ms = min(int(time.time() * 1000) + int(delay_s * 1000), deadline_ms)
        return CheckOutcome(record.id, next_ms, progress)

    async def _store_result(self, record: TaskRecord, origin: tuple[str, ...]) -> bool:
        """Copy the video, then succeed the task (committing its money); False to try later."""
        try:
            assert self._downloads is not None  # set for as long as run() runs
            files = await self.media.copy(
                self._downloads, record.id, origin, self.settings.media_max_bytes
            )
        except MediaError as exc:
            log.warning("engine: copying the result of %s failed: %s", record.id, exc)
            return False
        result = success_result(record, origin)
        if not await self.store.finish(record.id, TaskState.SUCCESS, result=result, media=files):
            self.media.discard(record.id)  # it ended otherwise meanwhile (its deadline)
        return True


async def _first(stop: asyncio.Event, wake: asyncio.Event, timeout_s: float) -> None:
    """Wait until either event is set, or the timeout passes."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waiters, return_exceptions=True)
