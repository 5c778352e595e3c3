"""Sealing the secrets an older reelgate kept in plaintext: once, by the first start that has the
secret key (a migration cannot know it).

Sealing a value in place is not enough: both databases keep a changed row's old bytes until the
space is reused (SQLite in a page's free space, and in the pages that earlier rebuilds of a table
freed; PostgreSQL in dead row versions). So when anything was sealed, what holds the old bytes is
rewritten: the whole file on SQLite (VACUUM), the two tables on PostgreSQL (VACUUM FULL). It
happens once per database, at the start that upgrades it.
"""

from __future__ import annotations

import asyncio
import sqlite3

from reelgate.store import meta
from reelgate.store.accounts import AccountStore
from reelgate.store.database import SQLITE_BUSY_TIMEOUT_MS, Database


async def seal_plaintext(db: Database) -> int:
    """Seal every secret still kept in plaintext; how many were. Idempotent, cheap when there
    is nothing to seal, and safe for processes starting together (each secret is sealed once)."""
    sealed = await AccountStore(db).seal_plaintext_secrets()
    sealed += await meta.seal_plaintext_secrets(db)
    if sealed:
        await _rewrite(db)
    return sealed


async def _rewrite(db: Database) -> None:
    if db.is_sqlite:
        await asyncio.to_thread(_vacuum_sqlite, db.pool.url.database or "")
        return
    async with db.pool.connect() as conn:
        # VACUUM cannot run inside a transaction.
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql("VACUUM FULL accounts, meta")


def _vacuum_sqlite(path: str) -> None:
    # The bare driver: SQLAlchemy's connections here always begin a transaction.
    conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        conn.execute("VACUUM")
        # Into the database file now, not at the next checkpoint: the old pages go at once.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
