"""The task engine as a process runs it: the poll scheduler and the webhook sender side by side."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from reelgate.config import Settings
from reelgate.engine.poller import Engine
from reelgate.engine.webhooks import WebhookSender
from reelgate.store.database import Database
from reelgate.store.tasks import TaskRecord
from reelgate.upstream.provider import Provider


class EngineProcess:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        provider: Provider,
        render: Callable[[TaskRecord], bytes],
    ) -> None:
        self.poller = Engine(db, settings, provider)
        self.webhooks = WebhookSender(db, settings, render)

    def wake(self) -> None:
        """A task became due now (a callback brought its result): look without waiting."""
        self.poller.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self.poller.run(stop), self.webhooks.run(stop))
