"""The operator's admin token: configured, or generated once and kept only as a hash."""

from __future__ import annotations

import secrets

from reelgate.config import Settings
from reelgate.services.accounts import hash_secret
from reelgate.store import meta
from reelgate.store.database import Database

ADMIN_TOKEN_PREFIX = "rga_"  # noqa: S105 - a prefix, not a secret


async def ensure_admin_token(db: Database, settings: Settings) -> str | None:
    """Generate an admin token when none is configured or kept; return it only when generated,
    so that it is printed exactly once."""
    if settings.admin_token or await meta.get(db, meta.ADMIN_TOKEN_HASH):
        return None
    token = ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
    stored = await meta.put_if_absent(db, meta.ADMIN_TOKEN_HASH, hash_secret(token))
    return token if stored else None


async def rotate_admin_token(db: Database) -> str:
    """Replace the kept admin token with a new one; running gateways pick it up on restart."""
    token = ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
    await meta.put(db, meta.ADMIN_TOKEN_HASH, hash_secret(token))
    return token
