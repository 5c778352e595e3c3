"""The connection pool, and transactions that never surface "database is locked".

On SQLite every write transaction starts with ``BEGIN IMMEDIATE`` and writers in one process take
turns on an asyncio lock: a transaction that begins as a reader and later writes is the one SQLite
cannot wait for (it fails at once with SQLITE_BUSY), and taking the write lock up front turns
every conflict into a wait bounded by ``busy_timeout``. Other processes on the same file (the CLI,
an engine) wait on that timeout. Readers never block in WAL mode.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from reelgate.errors import Unavailable
from reelgate.store.lanes import PostgresLane, SqliteLane
from reelgate.store.sealing import Sealer

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pool(url: str) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=8, max_overflow=8, pool_timeout=30)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        immediate = connection.get_execution_options().get("reelgate_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """One connection pool and the two kinds of transaction the rest of the store uses.

    ``sealer`` seals and opens the secrets the database keeps; whoever opens the database with
    the gateway's secret key gives it (a Database without one can do all but touch a secret).
    """

    def __init__(self, url: str, sealer: Sealer | None = None) -> None:
        self.url = url
        self._sealer = sealer
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.pool = _sqlite_pool(url)
        else:
            # No pre-ping: it costs a round trip per checkout, and a dead connection already
            # surfaces as Unavailable (503) and is dropped from the pool.
            # Sized for an engine's checks and the API together: connections beyond the pool
            # are opened and closed for each use, a server process forked every time.
            self.pool = create_async_engine(url, pool_size=20, max_overflow=20)
        self._write_turn = asyncio.Lock() if self.is_sqlite else None
        self.committed = asyncio.Event()
        """Set when this process commits a write on SQLite (see ``changes``)."""
        self.lane: PostgresLane | SqliteLane = (
            SqliteLane(self.pool.url.database or "")
            if self.is_sqlite
            else PostgresLane(self.driver_dsn())
        )
        """The bare driver, for the create path (see :mod:`.lanes`)."""

    @property
    def sealer(self) -> Sealer:
        if self._sealer is None:
            raise RuntimeError(
                "a secret was read or written through a Database opened without the secret key: "
                "open it with Database(url, sealer=Sealer(key))"
            )
        return self._sealer

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that will write; committed on exit, rolled back on error."""
        if self._write_turn is None:
            async with self._connect() as conn, conn.begin():
                yield conn
            return
        async with self._write_turn, self._connect() as conn:
            conn = await conn.execution_options(reelgate_write=True)
            async with conn.begin():
                yield conn
        # Committed: this process's change feed reads it now rather than at its next turn.
        self.committed.set()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction: one consistent snapshot."""
        async with self._connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.pool.connect() as conn:
                yield conn
        except (OperationalError, OSError, ConnectionError) as exc:
            raise Unavailable("the database is unavailable; try again shortly") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise Unavailable("the database connection was lost; try again") from exc
            raise

    def driver_dsn(self) -> str:
        """The PostgreSQL address as the bare driver (asyncpg) takes it, password included."""
        url = self.pool.url.set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    async def dispose(self) -> None:
        await self.lane.close()
        await self.pool.dispose()
