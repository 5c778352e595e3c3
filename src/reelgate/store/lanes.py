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
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

import asyncpg  # type: ignore[import-untyped]

from reelgate.errors import Unavailable

T = TypeVar("T")
Call = TypeVar("Call")
Result = TypeVar("Result")

SQLITE_BUSY_TIMEOUT_S = 30.0


class _Batching:
    """A lane's batchers, by name (see :class:`Batcher`)."""

    def __init__(self) -> None:
        self._batchers: dict[str, Batcher[Any, Any]] = {}

    def batcher(
        self, name: str, write: Callable[[list[Any]], Awaitable[list[Any]]]
    ) -> Batcher[Any, Any]:
        """The lane's batcher called ``name``, made with ``write`` on first use."""
        batcher = self._batchers.get(name)
        if batcher is None:
            batcher = self._batchers[name] = Batcher(write)
        return batcher

    async def _drain(self) -> None:
        for batcher in self._batchers.values():
            await batcher.drain()


class PostgresLane(_Batching):
    """asyncpg connections of their own, handed out without a reset: every statement run on
    them is a single statement in its own transaction, which leaves no session state.

    Writes can be batched (:class:`Batcher`, group commit). Statements whose rows do not depend
    on each other can also be grouped: every call waiting while one group is written goes into
    the next, in one transaction and one round trip (``executemany``), on a connection that
    does not wait for the disk at commit (``synchronous_commit = off``). Such a write survives
    the gateway's own crash, not the loss of the database server's last few hundred
    milliseconds: the durability SQLite in WAL mode gives every write here. Only writes the
    gateway can recover without are grouped.
    """

    def __init__(self, dsn: str, size: int = 10) -> None:
        super().__init__()
        self.dsn = dsn
        self.size = size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._relaxed: asyncpg.Connection | None = None

    def grouped(self, sql: str, args: tuple[Any, ...]) -> asyncio.Future[None]:
        """Run ``sql`` with ``args`` in the next group of such writes (see the class); done
        once it is written."""

        async def write(calls: list[tuple[Any, ...]]) -> list[None]:
            conn = await self._relaxed_connection()
            try:
                if len(calls) == 1:
                    # executemany's pipelining costs a fifth more than one plain statement.
                    await conn.execute(sql, *calls[0])
                else:
                    await conn.executemany(sql, calls)
            except BaseException:
                if conn.is_closed():
                    self._relaxed = None
                raise
            return [None] * len(calls)

        return self.batcher(sql, write).post(args)

    async def _relaxed_connection(self) -> asyncpg.Connection:
        if self._relaxed is None:
            self._relaxed = await asyncpg.connect(
                self.dsn, server_settings={"synchronous_commit": "off"}
            )
        return self._relaxed

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
        await self._drain()
        if self._relaxed is not None:
            await self._relaxed.close()
            self._relaxed = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class Batcher(Generic[Call, Result]):
    """Group commit: calls that arrive while a batch is being written go together into the
    next one. With one caller at a time each batch holds one call, so nothing waits for
    company; under load, many calls share one round trip and one commit."""

    def __init__(self, write: Callable[[list[Call]], Awaitable[list[Result]]]) -> None:
        self._write = write
        """Writes a batch and returns one result per call, in order; raising fails them all."""
        self._waiting: list[tuple[Call, asyncio.Future[Result]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def submit(self, item: Call) -> Result:
        return await self.post(item)

    def post(self, item: Call) -> asyncio.Future[Result]:
        """Queue ``item`` for the next batch; the future holds its result once written. A
        caller need not wait for it: the lane's close writes what is queued."""
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_batches())
        return done

    async def _write_batches(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                results = await self._write([item for item, _ in batch])
            except Exception as exc:  # every caller in the batch hears of it
                failure = _unavailable(exc)
                for _, done in batch:
                    if not done.done():
                        done.set_exception(failure)
                continue
            for (_, done), result in zip(batch, results, strict=True):
                if not done.done():
                    done.set_result(result)

    async def drain(self) -> None:
        if self._writing is not None:
            await self._writing


def _unavailable(exc: Exception) -> Exception:
    """A driver's failure as the rest of the gateway sees it."""
    if isinstance(
        exc, OSError | asyncpg.PostgresConnectionError | asyncpg.InterfaceError | TimeoutError
    ):
        return Unavailable("the database is unavailable; try again shortly")
    return exc


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """Nothing to reset (see :class:`PostgresLane`): one round trip saved per statement."""


class SqliteLane(_Batching):
    """One thread with its own connection, running whole write transactions at a time; writes
    batched together share one transaction, the commit being most of a small write's cost."""

    def __init__(self, path: str) -> None:
        super().__init__()
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
        await self._drain()

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
