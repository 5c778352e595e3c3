"""The key that signs links to stored videos: configured, or generated once and kept in the
database, sealed, so that every process of the gateway signs and checks with the same one."""

from __future__ import annotations

import secrets

from reelgate.config import Settings
from reelgate.store import meta
from reelgate.store.database import Database


async def media_signing_key(db: Database, settings: Settings) -> bytes:
    if settings.media_signing_key is not None:
        return settings.media_signing_key.get_secret_value().encode()
    kept = await meta.get_secret(db, meta.MEDIA_SIGNING_KEY)
    if kept is None:
        await meta.put_secret_if_absent(db, meta.MEDIA_SIGNING_KEY, secrets.token_hex(32))
        # Another process may have stored its own first: everyone uses the one that was kept.
        kept = await meta.get_secret(db, meta.MEDIA_SIGNING_KEY)
        assert kept is not None
    return kept.encode()
