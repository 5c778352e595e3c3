"""Everything a running API process holds: services, caches, and the pre-rendered catalogue."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reelgate.api import resources
from reelgate.api.poll_cache import PollCache
from reelgate.api.subscriptions import TaskEvents
from reelgate.config import Settings
from reelgate.engine.media import MediaStore
from reelgate.errors import Unauthorized
from reelgate.services.accounts import AccountService, hash_secret
from reelgate.services.tasks import TaskService
from reelgate.store.accounts import ApiKey
from reelgate.store.database import Database

BEARER = "bearer "


def bearer_secret(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    if authorization[: len(BEARER)].lower() != BEARER or not authorization[len(BEARER) :].strip():
        raise Unauthorized("malformed Authorization header: expected 'Bearer <key>'")
    return authorization[len(BEARER) :].strip()


@dataclass
class Gateway:
    settings: Settings
    db: Database
    accounts: AccountService
    tasks: TaskService
    cache: PollCache
    view: resources.TaskView
    """Its link key is the database's, read when the app starts."""
    media: MediaStore
    models_body: bytes
    model_bodies: dict[str, bytes]
    admin_token_hash: str | None = None
    events: TaskEvents = field(default_factory=TaskEvents)
    wake_engine: Callable[[], None] = lambda: None
    """Tells this process's engine, when it runs one, that a task became due now."""

    async def authenticate(self, authorization: str | None) -> ApiKey:
        """The active key the header carries, or Unauthorized."""
        key_hash = hash_secret(bearer_secret(authorization))
        key = self.cache.keys.get(key_hash)
        if key is None:
            ticket = self.cache.keys.ticket(key_hash)
            key = await self.accounts.store.find_key(key_hash)
            if key is not None:
                self.cache.keys.fill(key_hash, key, ticket)
        if key is None:
            raise Unauthorized("unknown API key")
        if not key.active:
            raise Unauthorized("this API key has been revoked")
        return key

    def authenticate_admin(self, authorization: str | None) -> None:
        if self.admin_token_hash is None:
            raise Unauthorized("the admin API is disabled: no admin token is configured")
        presented = hash_secret(bearer_secret(authorization))
        if not hmac.compare_digest(presented, self.admin_token_hash):
            raise Unauthorized("invalid admin token")

    async def task_body(self, key: ApiKey, task_id: str) -> bytes:
        """The task resource as served, from the cache when it is there."""
        cached = self.cached_task_body(key, task_id)
        if cached is not None:
            return cached
        ticket = self.cache.tasks.ticket(task_id)
        record = await self.tasks.get(key.account_id, task_id)
        body, renew_at = self.view.body(record)
        self.cache.tasks.fill(task_id, (record.account_id, body, renew_at), ticket)
        return body

    def cached_task_body(self, key: ApiKey, task_id: str) -> bytes | None:
        entry = self.cache.tasks.get(task_id)
        if entry is None or entry[0] != key.account_id:
            return None
        _, body, renew_at = entry
        if renew_at is not None and time.time() >= renew_at:
            return None  # its video links are due to be signed anew
        return body

    def cached_key(self, authorization: str) -> ApiKey | None:
        """The active key for a header, if it is cached: the poll fast path's only lookup."""
        try:
            key = self.cache.keys.get(hash_secret(bearer_secret(authorization)))
        except Unauthorized:
            return None
        return key if key is not None and key.active else None
