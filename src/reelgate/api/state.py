"""What a running API process holds: the services, and its own caches and streams."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from starlette.requests import Request

from reelgate.api.auth import Auth
from reelgate.api.poll_cache import PollCache
from reelgate.api.resources import Catalogue, TaskView
from reelgate.api.subscriptions import TaskEvents
from reelgate.api.task_bodies import TaskBodies
from reelgate.domain import changes
from reelgate.services.wiring import Services

log = logging.getLogger(__name__)


@dataclass
class ApiState:
    services: Services
    auth: Auth
    bodies: TaskBodies
    catalogue: Catalogue
    cache: PollCache
    events: TaskEvents = field(default_factory=TaskEvents)

    @classmethod
    def of(cls, services: Services) -> ApiState:
        settings = services.settings
        cache = PollCache(settings.key_cache_size, settings.task_cache_mb * 1024 * 1024)
        view = TaskView.of(settings, services.link_key)
        return cls(
            services=services,
            auth=Auth(services.accounts, cache.keys, services.admin_token_hash, services.rates),
            bodies=TaskBodies(services.tasks, cache.tasks, view),
            catalogue=Catalogue.of(
                services.prices, services.tasks.margin_ppm, services.channels.order
            ),
            cache=cache,
        )

    async def follow_changes(self) -> None:
        """Keep the caches and event streams fresh for as long as the process runs. If
        following fails, nothing cached can be trusted: drop it all and start again."""
        while True:
            try:
                async for change in self.services.follow_changes():
                    self.cache.apply(change)
                    self.events.apply(change)  # after the cache: streams then read fresh bodies
            except Exception:
                log.exception("change feed failed; dropping the poll cache and following again")
                self.cache.apply(changes.RESYNC)
                self.events.apply(changes.RESYNC)
                await asyncio.sleep(1)


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state
