"""The poller: every unfinished task carries when it is next due; pollers lease due tasks in
batches, ask the upstream with bounded concurrency and a request budget, copy each finished
video into the media store, and carry out what :mod:`reelgate.domain.lifecycle` decides."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Callable
from enum import StrEnum

from aiolimiter import AsyncLimiter

from reelgate import logs
from reelgate.domain import lifecycle
from reelgate.domain.task import Submission, TaskRecord
from reelgate.engine.downloads import Downloader
from reelgate.engine.jobs import Jobs, first_of
from reelgate.errors import MediaUnavailable, UpstreamError
from reelgate.services.metrics import Metrics
from reelgate.store.tasks import Claimed, TaskStore
from reelgate.upstream.provider import Provider

log = logging.getLogger(__name__)

Providers = Callable[[str], Provider | None]
"""Each channel's adaptor, by the channel's id (None: a channel no longer configured)."""


def providers_of(given: Provider | Providers) -> Providers:
    """One adaptor for every channel (a single-channel gateway, tests), or a lookup."""
    if callable(given):
        return given
    return lambda _channel: given


IDLE_WAIT_S = 0.25
"""How long a poller with nothing due waits before looking again (unless woken)."""


class CheckResult(StrEnum):
    """What one check found, as ``reelgate_engine_checks_total`` counts it."""

    UNCHANGED = "unchanged"
    ADVANCED = "advanced"
    """The task moved forward, or made progress."""
    MADE = "made"
    """The upstream made the video, which was not copied yet."""
    SUCCEEDED = "succeeded"
    """The video was copied and the task ended (as a success, unless it ended otherwise)."""
    FAILED = "failed"
    UPSTREAM_ERROR = "upstream_error"
    """The upstream could not be asked; asked again later."""
    MEDIA_ERROR = "media_error"
    """The video could not be copied; tried again later."""
    ERROR = "error"
    """Something unexpected: logged, and tried again later."""


class Poller:
    def __init__(
        self,
        store: TaskStore,
        providers: Provider | Providers,
        downloader: Downloader,
        *,
        owner: str,
        schedule: lifecycle.Schedule,
        concurrency: int,
        batch: int,
        requests_per_s: float,
        lease_s: float,
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.providers = providers_of(providers)
        self.downloader = downloader
        self.owner = owner
        self.schedule = schedule
        self.batch = batch
        self.lease_ms = int(lease_s * 1000)
        self.requests_per_s = requests_per_s
        self.budgets: dict[str, AsyncLimiter] = {}
        """Each channel's check budget."""
        self.channel_rates: dict[str, float] = {}
        """Channels whose budget is not ``requests_per_s``."""
        self.rng = random.Random()
        self.wake = asyncio.Event()
        """Set when there is something to do at once: a task became due now (a callback brought
        its result), or checks of a backlog finished and made room for more."""
        self.jobs = Jobs(concurrency, on_done=self._done)
        self._backlog = False
        """Whether the last claim was full, so that more tasks are likely due."""
        self._min_claim = max(1, min(batch, concurrency) // 4)
        """Claiming waits for this much room: one query per finished check would waste it."""
        self._outcomes: list[lifecycle.CheckOutcome] = []
        self._flushing: asyncio.Task[None] | None = None

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> None:
        """Check due tasks until ``stop`` is set; with ``once``, until none is due."""
        try:
            while not stop.is_set():
                self.wake.clear()
                room = self.jobs.room
                asked = min(room, self.batch)
                batch: list[Claimed] = []
                if room >= self._min_claim or (room > 0 and not self.jobs.running):
                    batch = await self.store.claim_due(self.owner, asked, self.lease_ms)
                for claimed in batch:
                    self.jobs.start(self._check(claimed))
                self._backlog = len(batch) == asked > 0
                if once and not batch and not self.jobs.running:
                    break
                if not (self._backlog and self.jobs.room >= self._min_claim):
                    await first_of(stop, self.wake, IDLE_WAIT_S)
        finally:
            await self.jobs.drain()
            if self._flushing is not None:
                await self._flushing

    def _done(self) -> None:
        if self._backlog and self.jobs.room >= self._min_claim:
            self.wake.set()

    async def _check(self, claimed: Claimed) -> None:
        task = claimed.task
        self.metrics.engine_due_lag(claimed.lag_s)
        with logs.about(task=task.id, account=task.account_id, upstream=task.channel):
            try:
                outcome, result = await self._carry_out(task)
            except Exception:
                log.exception("poller: checking task %s failed; trying again later", task.id)
                outcome = lifecycle.CheckOutcome(
                    task.id, int((time.time() + self.schedule.poll_max_s) * 1000)
                )
                result = CheckResult.ERROR
        self.metrics.engine_check(task.channel, result)
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
                log.exception("poller: cannot record %d checks", len(batch))

    async def _carry_out(self, task: TaskRecord) -> tuple[lifecycle.CheckOutcome, CheckResult]:
        """Check one task and carry out what that decides; returns when it is next due (moot
        once it has ended), and what the check found."""
        if lifecycle.submission_is_unknown(task, self.schedule, _now_ms()):
            await self.store.record_submission_unknown(task.id)
            task = dataclasses.replace(task, submission=Submission.UNKNOWN)
        advance: lifecycle.Advance | None = None
        found = CheckResult.UNCHANGED
        provider = self.providers(task.channel)
        if provider is None:
            log.warning(
                "poller: task %s is on channel %s, which is not configured", task.id, task.channel
            )
            found = CheckResult.UPSTREAM_ERROR
        elif task.upstream_task_id is None and task.submission is Submission.UNKNOWN:
            task = await self._find_created(provider, task)
        if (
            provider is not None
            and task.origin_urls is None
            and task.submission is Submission.ACCEPTED
            and task.upstream_task_id is not None
        ):
            try:
                async with self._budget(task.channel):
                    status = await provider.fetch_status(task.upstream_task_id)
            except UpstreamError as exc:
                log.info("poller: upstream check of %s failed: %s", task.id, exc.code)
                found = CheckResult.UPSTREAM_ERROR
            else:
                decision = lifecycle.on_status(task, status, _now_ms())
                if isinstance(decision, lifecycle.Advance):
                    advance = decision  # written with other checks' in one transaction
                    found = CheckResult.ADVANCED
                elif isinstance(decision, lifecycle.Fail):
                    await self.store.apply(task.id, decision)
                    return lifecycle.CheckOutcome(task.id, _now_ms()), CheckResult.FAILED
                elif isinstance(decision, lifecycle.Made):
                    await self.store.apply(task.id, decision)
                    task = dataclasses.replace(task, origin_urls=decision.urls)
                    found = CheckResult.MADE
        if task.origin_urls is not None:
            if await self._store_result(task):
                return lifecycle.CheckOutcome(task.id, _now_ms()), CheckResult.SUCCEEDED
            found = CheckResult.MEDIA_ERROR
        now_ms = _now_ms()
        end = lifecycle.conclude(
            task,
            self.schedule,
            now_ms=now_ms,
            jitter=self.rng.uniform(*lifecycle.JITTER),
            upstream_failed=found is CheckResult.UPSTREAM_ERROR,
        )
        if isinstance(end, lifecycle.Fail):
            if await self.store.apply(task.id, end):
                log.warning("poller: task %s ended: %s", task.id, end.error["code"])
            return lifecycle.CheckOutcome(task.id, now_ms), CheckResult.FAILED
        return lifecycle.CheckOutcome(task.id, end.at_ms, advance), found

    def _budget(self, channel: str) -> AsyncLimiter:
        budget = self.budgets.get(channel)
        if budget is None:
            rate = self.channel_rates.get(channel, self.requests_per_s)
            budget = self.budgets[channel] = AsyncLimiter(rate, 1)
        return budget

    async def _find_created(self, provider: Provider, task: TaskRecord) -> TaskRecord:
        """A create that went unanswered, looked up in the provider's own task list where it
        has one: bound to the task only when the provider's record names it."""
        try:
            async with self._budget(task.channel):
                status = await provider.find_created(task.id)
        except UpstreamError as exc:
            log.info("poller: looking up the unanswered create of %s failed: %s", task.id, exc.code)
            return task
        if status is None or not lifecycle.may_bind(task, status):
            return task
        await self.store.record_upstream_id(task.id, status.upstream_task_id)
        log.info("task %s found again upstream in its task list", task.id)
        return dataclasses.replace(
            task, upstream_task_id=status.upstream_task_id, submission=Submission.ACCEPTED
        )

    async def _store_result(self, task: TaskRecord) -> bool:
        """Copy the video, then succeed the task (committing its money); False to try later."""
        assert task.origin_urls is not None
        try:
            files = await self.downloader.copy(task.id, task.origin_urls)
        except MediaUnavailable as exc:
            log.warning("poller: copying the result of %s failed: %s", task.id, exc)
            return False
        success = lifecycle.succeeded(task, files, int(time.time()))
        if not await self.store.apply(task.id, success):
            self.downloader.files.discard(task.id)  # it ended otherwise meanwhile (its deadline)
        return True


def _now_ms() -> int:
    return int(time.time() * 1000)
