"""Callbacks as KIE sends them: the recordInfo answer POSTed when a task ends, signed, up to
three attempts; and, on demand, lost, duplicated or late."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Callable

import aiohttp
import orjson

from reelgate.upstream.sandbox.settings import SandboxSettings
from reelgate.upstream.sandbox.stats import SandboxStats
from reelgate.upstream.sandbox.tasks import CallbackPlan, SandboxTask, ark_task, now_ms

ATTEMPTS = 3
log = logging.getLogger(__name__)


def signature(key: str, task_id: str, timestamp: str) -> str:
    """``base64(HMAC-SHA256(key, taskId + "." + timestamp))``, KIE's webhook signature."""
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class Callbacks:
    def __init__(
        self,
        settings: SandboxSettings,
        stats: SandboxStats,
        observe: Callable[[SandboxTask], SandboxTask],
    ) -> None:
        self.settings = settings
        self.stats = stats
        self._observe = observe
        # One loop timer per pending callback rather than a sleeping coroutine: 100,000 tasks
        # in flight cost 100,000 small handles, not 100,000 suspended frames.
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._client: aiohttp.ClientSession | None = None

    def schedule(self, task: SandboxTask) -> None:
        plan = task.callback
        if plan is None or plan.lost:
            return
        delay = max(0.0, task.done_ms / 1000 - time.time()) + plan.late_s
        loop = asyncio.get_running_loop()
        self._timers[task.id] = loop.call_later(delay, self._launch, task, plan)

    def _launch(self, task: SandboxTask, plan: CallbackPlan) -> None:
        del self._timers[task.id]
        job = asyncio.create_task(self._send(task, plan), name=f"callback {task.id}")
        self._sending.add(job)
        job.add_done_callback(self._sending.discard)

    async def _send(self, task: SandboxTask, plan: CallbackPlan) -> None:
        # Timers run on the loop's clock, not the wall clock the timeline uses, and whole
        # milliseconds round down: the callback must never tell of an unfinished task.
        if (ahead_ms := task.done_ms - now_ms()) >= 0:
            await asyncio.sleep(ahead_ms / 1000 + 0.002)
        render = self._observe(task).render
        if render is not None:
            await render.wait()  # a success is told only once its video exists
        at_ms = max(now_ms(), task.done_ms)
        if self.settings.protocol == "modelark":
            # ModelArk posts the task resource itself, unsigned.
            body = orjson.dumps(ark_task(task, at_ms, self.settings.fps))
        else:
            body = orjson.dumps({"code": 200, "msg": "success", "data": task.record(at_ms)})
        for _copy in range(plan.copies):
            await self._deliver(task.id, plan.url, body)

    async def _deliver(self, task_id: str, url: str, body: bytes) -> None:
        if self._client is None:
            self._client = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.callback_timeout_s)
            )
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(self.settings.callback_retry_s)
            headers = {"content-type": "application/json"}
            if self.settings.hmac_key and self.settings.protocol == "kie":
                timestamp = str(int(time.time()))
                headers["X-Webhook-Timestamp"] = timestamp
                headers["X-Webhook-Signature"] = signature(
                    self.settings.hmac_key, task_id, timestamp
                )
            try:
                async with self._client.post(url, data=body, headers=headers) as response:
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.debug("callback for %s to %s failed: %r", task_id, url, exc)
            else:
                if status == 200:  # KIE wants a 200, not merely a 2xx
                    self.stats.callbacks_sent += 1
                    return
            self.stats.callback_failed_attempts += 1
        self.stats.callbacks_undelivered += 1

    async def aclose(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        jobs = list(self._sending)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
