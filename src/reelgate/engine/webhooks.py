"""Client webhooks: when a task with a callBackUrl ends, its resource is POSTed there, signed by
the Standard Webhooks scheme, from the durable outbox, and retried with growing delays for up
to a day. Every attempt goes to an address checked just before it (see ``destinations``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import aiohttp

from reelgate.config import Settings
from reelgate.domain.webhooks import DeliveryStatus, next_attempt_ms, signed_headers
from reelgate.engine.poller import IDLE_WAIT_S, engine_owner
from reelgate.errors import ReelgateError
from reelgate.services.destinations import pin
from reelgate.store.database import Database
from reelgate.store.tasks import TaskRecord, TaskStore
from reelgate.store.webhooks import Attempt, DueDelivery, WebhookStore

log = logging.getLogger(__name__)

USER_AGENT = "reelgate-webhooks/1"
BATCH = 100
LEASE_S = 120.0


class WebhookSender:
    def __init__(
        self, db: Database, settings: Settings, render: Callable[[TaskRecord], bytes]
    ) -> None:
        self.store = WebhookStore(db)
        self.tasks = TaskStore(db)
        self.settings = settings
        self.render = render
        """The task resource as its owner reads it: the webhook's body."""
        self.owner = engine_owner()
        self._client: aiohttp.ClientSession | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver due webhooks until ``stop`` is set."""
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout_s),
            headers={"user-agent": USER_AGENT},
        ) as self._client:
            while not stop.is_set():
                due: list[DueDelivery] = []
                room = self.settings.webhook_concurrency - len(self._running)
                if room > 0:
                    try:
                        due = await self.store.claim_due(
                            self.owner, min(room, BATCH), int(LEASE_S * 1000)
                        )
                    except ReelgateError as exc:
                        log.warning("webhooks: cannot claim deliveries (%s); retrying", exc)
                for delivery in due:
                    job = asyncio.create_task(self._deliver(delivery))
                    self._running.add(job)
                    job.add_done_callback(self._running.discard)
                if not due:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), IDLE_WAIT_S)
            for job in list(self._running):
                job.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _deliver(self, due: DueDelivery) -> None:
        try:
            attempt = await self._attempt(due)
        except Exception:
            log.exception("webhooks: delivering %s failed unexpectedly", due.webhook_id)
            attempt = self._failed(due, None, "internal error while sending")
        try:
            await self.store.record(due.task_id, self.owner, attempt)
        except ReelgateError as exc:
            # The lease runs out and the delivery is due again: a receiver may see it twice,
            # with the same webhook-id, never not at all.
            log.warning("webhooks: cannot record attempt of %s (%s)", due.webhook_id, exc)

    async def _attempt(self, due: DueDelivery) -> Attempt:
        record = await self.tasks.get(due.task_id)
        assert record is not None  # the outbox row's foreign key keeps its task
        body = self.render(record)
        try:
            target = await pin(due.url, self.settings.webhook_allowed_networks)
        except ReelgateError as exc:
            return self._failed(due, None, exc.message)
        headers = {
            "host": target.host_header,
            "content-type": "application/json",
            **signed_headers(due.secrets, due.webhook_id, int(time.time()), body),
        }
        assert self._client is not None  # set for as long as run() runs
        try:
            # No redirects: a 3xx would send the body somewhere that was never checked. The
            # answer's body is never read: only the status matters, whatever the receiver sends.
            async with self._client.post(
                target.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                server_hostname=target.tls_name,
            ) as response:
                status = response.status
        except TimeoutError:
            return self._failed(due, None, "the receiver did not answer in time")
        except aiohttp.ClientError as exc:
            return self._failed(due, None, f"could not reach the receiver ({type(exc).__name__})")
        if 200 <= status < 300:
            return Attempt(DeliveryStatus.DELIVERED, status, None, None)
        return self._failed(due, status, f"the receiver answered {status}")

    def _failed(self, due: DueDelivery, code: int | None, error: str) -> Attempt:
        now_ms = int(time.time() * 1000)
        retry_at = next_attempt_ms(
            due.attempts + 1, due.created_at_ms, now_ms, self.settings.webhook_retry_scale
        )
        status = DeliveryStatus.PENDING if retry_at is not None else DeliveryStatus.FAILED
        return Attempt(status, code, error, retry_at)
