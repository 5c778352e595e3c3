"""Who is calling: API keys (cached by hash, refused once revoked) and the admin token."""

from __future__ import annotations

import hmac
import time

from reelgate.api.poll_cache import FreshCache
from reelgate.domain.accounts import ApiKey
from reelgate.errors import Unauthorized
from reelgate.services.accounts import AccountService, hash_secret
from reelgate.services.rates import READS, Rates

BEARER = "bearer "


def bearer_secret(authorization: str | None, what: str = "API key") -> str:
    if not authorization:
        raise Unauthorized(f"missing {what}: send 'Authorization: Bearer <{what}>'")
    if authorization[: len(BEARER)].lower() != BEARER or not authorization[len(BEARER) :].strip():
        raise Unauthorized(f"malformed Authorization header: expected 'Bearer <{what}>'")
    return authorization[len(BEARER) :].strip()


class Auth:
    def __init__(
        self,
        accounts: AccountService,
        keys: FreshCache[ApiKey],
        admin_token_hash: str | None,
        rates: Rates | None = None,
    ) -> None:
        self.accounts = accounts
        self.keys = keys
        self.admin_token_hash = admin_token_hash
        self.rates = rates

    async def key(self, authorization: str | None, kind: str = READS) -> ApiKey:
        """The active key the header carries, or Unauthorized (``key_expired`` past its
        expiry); RateLimited when the key has sent more requests of ``kind`` than its rate."""
        return await self.key_by_hash(hash_secret(bearer_secret(authorization)), kind)

    async def key_by_hash(self, key_hash: str, kind: str = READS) -> ApiKey:
        """The active key with this hash, as :meth:`key` checks it: what a console session
        holds, so that revoking the key ends its sessions too."""
        key = self.keys.get(key_hash)
        if key is None:
            ticket = self.keys.ticket(key_hash)
            key = await self.accounts.find_key_by_hash(key_hash)
            if key is not None:
                self.keys.fill(key_hash, key, ticket)
        if key is None:
            raise Unauthorized("unknown API key")
        if not key.active:
            raise Unauthorized("this API key has been revoked")
        limits = key.limits
        if limits.expires_at is not None and key.expired(time.time()):
            raise Unauthorized("this API key has expired", code="key_expired")
        if limits.rate is not None and self.rates is not None:
            await self.rates.check(key.id, limits.rate, kind)
        return key

    def cached_key(self, authorization: str) -> ApiKey | None:
        """The active key for a header, if it is cached and has neither a rate nor an expiry
        to check: the poll fast path's only lookup. Other keys take the framework's route."""
        try:
            key = self.keys.get(hash_secret(bearer_secret(authorization)))
        except Unauthorized:
            return None
        if key is None or not key.active:
            return None
        limits = key.limits
        return key if limits.rate is None and limits.expires_at is None else None

    def admin(self, authorization: str | None) -> None:
        if self.admin_token_hash is None:
            raise Unauthorized("the admin API is disabled: no admin token is configured")
        presented = hash_secret(bearer_secret(authorization, "admin token"))
        if not hmac.compare_digest(presented, self.admin_token_hash):
            raise Unauthorized("invalid admin token")
