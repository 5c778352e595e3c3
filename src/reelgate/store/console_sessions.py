"""Console sessions signed out before they expire: their ids, refused until then."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from reelgate.store.database import Database
from reelgate.store.schema import console_sessions_revoked

_R = console_sessions_revoked


async def revoke(db: Database, sid: str, expires_at_ms: int, now_ms: int) -> None:
    """Refuse the session from now until it expires, and forget the sessions revoked earlier
    that have expired since (their cookies no longer open anyway): sign-outs are few, so this
    keeps the table small without a loop of its own."""
    dialect = sqlite if db.is_sqlite else postgresql
    async with db.write() as conn:
        await conn.execute(_R.delete().where(_R.c.expires_at_ms <= now_ms))
        if expires_at_ms > now_ms:
            await conn.execute(
                dialect.insert(_R)
                .values(sid=sid, expires_at_ms=expires_at_ms)
                .on_conflict_do_nothing()
            )


async def is_revoked(db: Database, sid: str) -> bool:
    """Whether the session was signed out (one primary-key read)."""
    async with db.read() as conn:
        found = await conn.scalar(sa.select(_R.c.sid).where(_R.c.sid == sid))
    return found is not None
