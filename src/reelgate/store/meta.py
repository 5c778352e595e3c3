"""Small named values the gateway keeps for itself, such as the admin token's hash; the secret
ones (the media signing key) sealed."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from reelgate.store.database import Database
from reelgate.store.schema import meta
from reelgate.store.sealing import is_sealed

ADMIN_TOKEN_HASH = "admin_token_sha256"  # noqa: S105 - a key name
MEDIA_SIGNING_KEY = "media_signing_key"
SECRET_KEY_FINGERPRINT = "secret_key_fingerprint"  # noqa: S105 - a key name
SECRETS = (MEDIA_SIGNING_KEY,)
"""The values kept sealed."""


def _place(key: str) -> str:
    return f"meta/{key}"


async def get(db: Database, key: str) -> str | None:
    async with db.read() as conn:
        value: str | None = await conn.scalar(sa.select(meta.c.value).where(meta.c.key == key))
        return value


async def put(db: Database, key: str, value: str) -> None:
    async with db.write() as conn:
        updated = await conn.execute(meta.update().where(meta.c.key == key).values(value=value))
        if updated.rowcount == 0:
            await conn.execute(meta.insert().values(key=key, value=value))


async def delete(db: Database, key: str) -> None:
    async with db.write() as conn:
        await conn.execute(meta.delete().where(meta.c.key == key))


async def put_if_absent(db: Database, key: str, value: str) -> bool:
    """Store the value unless the key exists; True when this call stored it."""
    try:
        async with db.write() as conn:
            await conn.execute(meta.insert().values(key=key, value=value))
    except IntegrityError:
        return False
    return True


async def get_secret(db: Database, key: str) -> str | None:
    value = await get(db, key)
    return None if value is None else db.sealer.open(value, _place(key))


async def put_secret_if_absent(db: Database, key: str, value: str) -> bool:
    """Seal and store the value unless the key exists; True when this call stored it."""
    return await put_if_absent(db, key, db.sealer.seal(value, _place(key)))


async def seal_plaintext_secrets(db: Database) -> int:
    """Seal the secrets an older reelgate kept in plaintext; how many changed. A value changes
    only while it still holds the plaintext read, so processes starting together seal it once."""
    sealed = 0
    async with db.write() as conn:
        rows = await conn.execute(
            sa.select(meta.c.key, meta.c.value).where(meta.c.key.in_(SECRETS))
        )
        for key, value in rows.all():
            if not is_sealed(value):
                updated = await conn.execute(
                    meta.update()
                    .where(meta.c.key == key, meta.c.value == value)
                    .values(value=db.sealer.seal(value, _place(key)))
                )
                sealed += updated.rowcount
    return sealed
