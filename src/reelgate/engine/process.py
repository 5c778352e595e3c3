"""The engine as a process runs it: the poller and the webhook sender side by side, each
supervised, sharing one way of stopping."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import aiohttp

from reelgate.config import Settings
from reelgate.domain.changes import DUE, RESYNC
from reelgate.domain.health import LoopHealth
from reelgate.domain.task import TaskRecord
from reelgate.engine.downloads import Downloader
from reelgate.engine.poller import Poller, Providers, providers_of
from reelgate.engine.supervisor import supervise
from reelgate.engine.webhooks import USER_AGENT, WebhookSender
from reelgate.services.destinations import Reach
from reelgate.services.metrics import Metrics
from reelgate.store import changes
from reelgate.store.database import Database
from reelgate.store.leases import new_owner
from reelgate.store.media import MediaFiles
from reelgate.store.tasks import TaskStore
from reelgate.store.webhooks import WebhookStore
from reelgate.upstream.provider import Provider


class EngineProcess:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        providers: Provider | Providers,
        render: Callable[[TaskRecord], bytes],
        reach: Reach,
        metrics: Metrics | None = None,
        *,
        follow_due: bool = False,
    ) -> None:
        self.db = db
        self.metrics = metrics or Metrics()
        """Where the engine's checks and deliveries are counted (a registry of its own when
        none is given: counted, not shown)."""
        self.settings = settings
        self.providers = providers_of(providers)
        self.channel_rates: dict[str, float] = {}
        """Channels whose check budget is their own, not engine_requests_per_s."""
        self.render = render
        self.reach = reach
        self.owner = new_owner()
        self.follow_due = follow_due
        """Whether to follow the change feed for tasks made due elsewhere: for an engine in a
        process of its own (in ``serve``, a callback wakes the engine directly)."""
        loops = ("poller", "webhooks", *(("due",) if follow_due else ()))
        self.health = {name: LoopHealth(name) for name in loops}
        self._poller: Poller | None = None
        self.metrics.watch_engine(lambda: self.in_flight, tuple(self.health.values()))

    def wake(self) -> None:
        """A task became due now (a callback brought its result): look without waiting."""
        if self._poller is not None:
            self._poller.wake.set()

    @property
    def in_flight(self) -> int:
        """Checks under way now."""
        return 0 if self._poller is None else self._poller.jobs.running

    @property
    def healthy(self) -> bool:
        return all(loop.healthy for loop in self.health.values())

    async def run(self, stop: asyncio.Event) -> None:
        """Run both loops until ``stop`` is set, restarting either whenever it fails."""
        async with self._loops() as (poller, webhooks):
            loops = [
                supervise("poller", poller.run, stop, self.health["poller"]),
                supervise("webhooks", webhooks.run, stop, self.health["webhooks"]),
            ]
            if self.follow_due:
                loops.append(supervise("due", self._follow_due, stop, self.health["due"]))
            await asyncio.gather(*loops)

    async def _follow_due(self, stop: asyncio.Event) -> None:
        """Wake the poller whenever another process makes a task due now (a callback)."""

        async def follow() -> None:
            async for topic, _ in changes.follow(self.db, self.settings.change_poll_interval_s):
                if topic in (DUE, RESYNC[0]):
                    self.wake()

        following = asyncio.create_task(follow())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if following in done:
                following.result()  # its failure goes to the supervisor
        finally:
            for job in (following, stopping):
                job.cancel()
            await asyncio.gather(following, stopping, return_exceptions=True)

    async def run_once(self) -> None:
        """Do the work that is due now, then return (``reelgate engine --once``)."""
        never = asyncio.Event()
        async with self._loops() as (poller, webhooks):
            await poller.run(never, once=True)
            await webhooks.run(never, once=True)

    @contextlib.asynccontextmanager
    async def _loops(self) -> AsyncIterator[tuple[Poller, WebhookSender]]:
        s = self.settings
        # No cookies kept: what one receiver or media host sets must never reach another
        # account's webhook on the same host.
        downloads = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(connect=10, sock_read=s.media_timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        deliveries = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=s.webhook_timeout_s),
            headers={"user-agent": USER_AGENT},
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        tasks = TaskStore(self.db)
        async with downloads, deliveries:
            self._poller = Poller(
                tasks,
                self.providers,
                Downloader(downloads, MediaFiles(s.media_dir), self.reach, s.media_max_bytes),
                owner=self.owner,
                schedule=s.schedule(),
                concurrency=s.engine_concurrency,
                batch=s.engine_batch,
                requests_per_s=s.engine_requests_per_s,
                lease_s=s.engine_lease_s,
                metrics=self.metrics,
            )
            self._poller.channel_rates = self.channel_rates
            sender = WebhookSender(
                WebhookStore(self.db),
                tasks,
                deliveries,
                self.render,
                owner=self.owner,
                reach=self.reach,
                concurrency=s.webhook_concurrency,
                retry_scale=s.webhook_retry_scale,
                metrics=self.metrics,
            )
            try:
                yield self._poller, sender
            finally:
                self._poller = None
