"""The bare drivers, for the few statements on the create path.

Everything else in the store goes through SQLAlchemy, whose async layer costs well over a
millisecond of CPU for a create's transaction (a greenlet switch, a pool checkout and a reset
per statement). Accepting a task is the one write every client request makes, so it runs on
the drivers themselves: on PostgreSQL a pool of asyncpg connections whose prepared statements
are cached per connection; on SQLite one writer thread that runs a whole transaction in one
hop, where aiosqlite would hop threads for every statement.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]

from reelgate.errors import Unavailable

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_S = 30.0


class PostgresLane:
    """asyncpg connections of their own, handed out without a reset: every statement run on
    them is a single statement in its own transaction, which leaves no session state."""

    def __init__(self, dsn: str, size: int = 10) -> None:
        self.dsn = dsn
        self.size = size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool or await self._open()
        try:
            async with pool.acquire() as conn:
                yield conn
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            raise Unavailable("the database is unavailable; try again shortly") from exc

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                try:
                    self._pool = await asyncpg.create_pool(
                        self.dsn, min_size=1, max_size=self.size, reset=_no_reset
                    )
                except (OSError, asyncpg.PostgresError) as exc:
                    raise Unavailable("the database is unavailable; try again shortly") from exc
            return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """Nothing to reset (see :class:`PostgresLane`): one round trip saved per statement."""


class SqliteLane:
    """One thread with its own connection, running whole write transactions at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="reelgate-sqlite"
        )
        self._conn: sqlite3.Connection | None = None

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` with the connection, in the writer thread."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, self._call, work)
        except sqlite3.OperationalError as exc:
            raise Unavailable("the database is unavailable; try again shortly") from exc

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            # Transactions are begun by hand (BEGIN IMMEDIATE), as the rest of the store does.
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=SQLITE_BUSY_TIMEOUT_S
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
        return work(self._conn)

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, shut)
        self._thread.shutdown(wait=False)


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Any:
    """A write transaction on SQLite: the write lock taken up front (see ``database``)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
