"""Small named values the gateway keeps for itself, such as the admin token's hash."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from reelgate.store.database import Database
from reelgate.store.schema import meta

ADMIN_TOKEN_HASH = "admin_token_sha256"  # noqa: S105 - a key name
MEDIA_SIGNING_KEY = "media_signing_key"


async def get(db: Database, key: str) -> str | None:
    async with db.read() as conn:
        value: str | None = await conn.scalar(sa.select(meta.c.value).where(meta.c.key == key))
        return value


async def put(db: Database, key: str, value: str) -> None:
    async with db.write() as conn:
        updated = await conn.execute(meta.update().where(meta.c.key == key).values(value=value))
        if updated.rowcount == 0:
            await conn.execute(meta.insert().values(key=key, value=value))


async def put_if_absent(db: Database, key: str, value: str) -> bool:
    """Store the value unless the key exists; True when this call stored it."""
    try:
        async with db.write() as conn:
            await conn.execute(meta.insert().values(key=key, value=value))
    except IntegrityError:
        return False
    return True
