"""Client webhooks: when a task with a callBackUrl ends, its resource is POSTed there, signed by
the Standard Webhooks scheme, from the durable outbox, and retried with growing delays for up
to a day. Every attempt goes to an address checked just before it (see ``destinations``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import aiohttp

from reelgate import logs
from reelgate.domain.task import TaskRecord
from reelgate.domain.webhooks import DeliveryStatus, next_attempt_ms, signed_headers
from reelgate.engine.jobs import Jobs, first_of
from reelgate.errors import DestinationRefused
from reelgate.services.destinations import Reach, pin
from reelgate.services.metrics import Metrics
from reelgate.store.tasks import TaskStore
from reelgate.store.webhooks import Attempt, DueDelivery, WebhookStore

log = logging.getLogger(__name__)

USER_AGENT = "reelgate-webhooks/1"
BATCH = 100
LEASE_S = 120.0
IDLE_WAIT_S = 0.25
_OUTCOMES: Final = {
    # An attempt's result as reelgate_webhook_deliveries_total counts it.
    DeliveryStatus.DELIVERED: "delivered",
    DeliveryStatus.PENDING: "retry",
    DeliveryStatus.FAILED: "failed",
}


class WebhookSender:
    def __init__(
        self,
        store: WebhookStore,
        tasks: TaskStore,
        client: aiohttp.ClientSession,
        render: Callable[[TaskRecord], bytes],
        *,
        owner: str,
        reach: Reach,
        concurrency: int,
        retry_scale: float,
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.tasks = tasks
        self.client = client
        self.render = render
        """The task resource as its owner reads it: the webhook's body."""
        self.owner = owner
        self.reach = reach
        self.retry_scale = retry_scale
        self.jobs = Jobs(concurrency)

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> None:
        """Deliver due webhooks until ``stop`` is set; with ``once``, until none is due."""
        never = asyncio.Event()
        try:
            while not stop.is_set():
                due: list[DueDelivery] = []
                if self.jobs.room > 0:
                    due = await self.store.claim_due(
                        self.owner, min(self.jobs.room, BATCH), int(LEASE_S * 1000)
                    )
                for delivery in due:
                    self.jobs.start(self._deliver(delivery))
                if once and not due and not self.jobs.running:
                    break
                if not due:
                    await first_of(stop, never, IDLE_WAIT_S)
        finally:
            await self.jobs.drain()

    async def _deliver(self, due: DueDelivery) -> None:
        with logs.about(task=due.task_id):
            at_ms = _now_ms()
            started = time.monotonic()
            try:
                sent = await self._attempt(due)
            except Exception:
                log.exception("webhooks: delivering %s failed unexpectedly", due.webhook_id)
                sent = _Sent(None, "internal error while sending")
            attempt = self._outcome(due, sent, at_ms, int((time.monotonic() - started) * 1000))
            self.metrics.webhook_delivery(_OUTCOMES[attempt.status])
            try:
                await self.store.record(due.task_id, self.owner, attempt)
            except Exception:
                # The lease runs out and the delivery is due again: a receiver may see it
                # twice, with the same webhook-id, never not at all.
                log.exception("webhooks: cannot record the attempt of %s", due.webhook_id)

    async def _attempt(self, due: DueDelivery) -> _Sent:
        record = await self.tasks.get(due.task_id)
        assert record is not None  # the outbox row's foreign key keeps its task
        body = self.render(record)
        try:
            target = await pin(due.url, self.reach)
        except DestinationRefused as exc:
            return _Sent(None, exc.message, unreachable=True)
        headers = {
            "host": target.host_header,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **signed_headers(due.secrets, due.webhook_id, int(time.time()), body),
        }
        try:
            # No redirects: a 3xx would send the body somewhere that was never checked. The
            # answer's body is never read: only the status matters, whatever the receiver sends.
            async with self.client.post(
                target.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                server_hostname=target.tls_name,
            ) as response:
                status = response.status
        except TimeoutError:
            return _Sent(None, "the receiver did not answer in time")
        except aiohttp.ClientError as exc:
            return _Sent(None, f"could not reach the receiver ({type(exc).__name__})")
        if 200 <= status < 300:
            return _Sent(status, None)
        return _Sent(status, f"the receiver answered {status}")

    def _outcome(self, due: DueDelivery, sent: _Sent, at_ms: int, duration_ms: int) -> Attempt:
        """What the attempt that began at ``at_ms`` and took ``duration_ms`` means for the
        delivery: delivered, or when it is tried next (None once it is given up)."""
        if sent.error is None:
            return Attempt(
                DeliveryStatus.DELIVERED, sent.response_code, None, None, at_ms, duration_ms
            )
        retry_at = next_attempt_ms(
            due.attempts + 1,
            due.created_at_ms,
            _now_ms(),
            self.retry_scale,
            unreachable=sent.unreachable,
        )
        status = DeliveryStatus.PENDING if retry_at is not None else DeliveryStatus.FAILED
        return Attempt(status, sent.response_code, sent.error, retry_at, at_ms, duration_ms)


@dataclass(frozen=True, slots=True)
class _Sent:
    """How sending went: the receiver's status when it answered, and why it failed (None
    when it accepted)."""

    response_code: int | None
    error: str | None
    unreachable: bool = False
    """The URL's host cannot be reached at all (it does not resolve, or is forbidden)."""


def _now_ms() -> int:
    return int(time.time() * 1000)
