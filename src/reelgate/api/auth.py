"""Who is calling: API keys (cached by hash, refused once revoked) and the admin token."""

from __future__ import annotations

import hmac

from reelgate.api.poll_cache import FreshCache
from reelgate.domain.accounts import ApiKey
from reelgate.errors import Unauthorized
from reelgate.services.accounts import AccountService, hash_secret

BEARER = "bearer "


def bearer_secret(authorization: str | None, what: str = "API key") -> str:
    if not authorization:
        raise Unauthorized(f"missing {what}: send 'Authorization: Bearer <{what}>'")
    if authorization[: len(BEARER)].lower() != BEARER or not authorization[len(BEARER) :].strip():
        raise Unauthorized(f"malformed Authorization header: expected 'Bearer <{what}>'")
    return authorization[len(BEARER) :].strip()


class Auth:
    def __init__(
        self, accounts: AccountService, keys: FreshCache[ApiKey], admin_token_hash: str | None
    ) -> None:
        self.accounts = accounts
        self.keys = keys
        self.admin_token_hash = admin_token_hash

    async def key(self, authorization: str | None) -> ApiKey:
        """The active key the header carries, or Unauthorized."""
        return await self.key_by_hash(hash_secret(bearer_secret(authorization)))

    async def key_by_hash(self, key_hash: str) -> ApiKey:
        """The active key with this hash, or Unauthorized: what a console session holds, so
        that revoking the key ends its sessions too."""
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
        return key

    def cached_key(self, authorization: str) -> ApiKey | None:
        """The active key for a header, if it is cached: the poll fast path's only lookup."""
        try:
            key = self.keys.get(hash_secret(bearer_secret(authorization)))
        except Unauthorized:
            return None
        return key if key is not None and key.active else None

    def admin(self, authorization: str | None) -> None:
        if self.admin_token_hash is None:
            raise Unauthorized("the admin API is disabled: no admin token is configured")
        presented = hash_secret(bearer_secret(authorization, "admin token"))
        if not hmac.compare_digest(presented, self.admin_token_hash):
            raise Unauthorized("invalid admin token")
