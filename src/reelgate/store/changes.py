"""A feed of committed changes, so that every process can keep its caches fresh.

A writer publishes ``(topic, ref)`` inside the transaction that makes the change, so a change is
announced if and only if it commits. PostgreSQL carries it with NOTIFY, delivered at commit to
every listening process. On SQLite it is a row in ``change_events`` that each process reads in id
order every ``poll_interval`` seconds, and at once after a commit of its own; SQLite commits one
writer at a time, so no id is seen before a smaller one.

A listener that loses its connection cannot know what it missed: it yields :data:`RESYNC`, and
the consumer drops everything it cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Final

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.domain.changes import RESYNC, Change
from reelgate.errors import Unavailable
from reelgate.store.database import Database
from reelgate.store.schema import change_events

log = logging.getLogger(__name__)


CHANNEL: Final = "reelgate_changes"
_KEEP_EVENTS_S: Final = 600


async def publish(conn: AsyncConnection, topic: str, ref: str) -> None:
    """Announce a change as part of the caller's transaction."""
    if conn.dialect.name == "sqlite":
        await conn.execute(
            change_events.insert().values(topic=topic, ref=ref, created_at=int(time.time()))
        )
    else:
        await conn.execute(sa.select(sa.func.pg_notify(CHANNEL, f"{topic}:{ref}")))


async def publish_many(conn: AsyncConnection, topic: str, refs: Sequence[str]) -> None:
    """Announce changes to many refs as part of the caller's transaction, in one statement."""
    if not refs:
        return
    if conn.dialect.name == "sqlite":
        now = int(time.time())
        await conn.execute(
            change_events.insert(),
            [{"topic": topic, "ref": ref, "created_at": now} for ref in refs],
        )
    else:
        await conn.execute(
            sa.text(
                "SELECT pg_notify(:channel, :topic || ':' || ref) "
                "FROM unnest(CAST(:refs AS text[])) AS ref"
            ),
            {"channel": CHANNEL, "topic": topic, "refs": list(refs)},
        )


async def follow(db: Database, poll_interval: float) -> AsyncGenerator[Change, None]:
    """Every change other transactions commit from now on, in commit order, forever."""
    source = _follow_sqlite(db, poll_interval) if db.is_sqlite else _follow_postgres(db)
    async for change in source:
        yield change


async def _follow_sqlite(db: Database, poll_interval: float) -> AsyncIterator[Change]:
    last_id: int | None = None
    last_prune = time.monotonic()
    while True:
        db.committed.clear()  # before reading: a commit from now on wakes the wait below
        try:
            async with db.read() as conn:
                if last_id is None:
                    last_id = (
                        await conn.scalar(
                            sa.select(sa.func.coalesce(sa.func.max(change_events.c.id), 0))
                        )
                    ) or 0
                    rows: list[tuple[int, str, str]] = []
                else:
                    result = await conn.execute(
                        sa.select(change_events.c.id, change_events.c.topic, change_events.c.ref)
                        .where(change_events.c.id > last_id)
                        .order_by(change_events.c.id)
                        .limit(10_000)
                    )
                    rows = [(row[0], row[1], row[2]) for row in result]
        except Unavailable:
            log.warning("change feed: database unavailable; retrying")
            await asyncio.sleep(poll_interval * 10)
            continue
        for event_id, topic, ref in rows:
            last_id = event_id
            yield topic, ref
        if time.monotonic() - last_prune > _KEEP_EVENTS_S / 10:
            last_prune = time.monotonic()
            await _prune(db)
        if not rows:
            # Other processes' changes are read every poll_interval; this process's own at
            # once, so that a callback it took is seen by its clients without that wait.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(db.committed.wait(), poll_interval)


async def _prune(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(
            change_events.delete().where(
                change_events.c.created_at < int(time.time()) - _KEEP_EVENTS_S
            )
        )


async def _follow_postgres(db: Database) -> AsyncIterator[Change]:
    queue: asyncio.Queue[Change] = asyncio.Queue()

    def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        topic, _, ref = payload.partition(":")
        queue.put_nowait((topic, ref))

    def on_lost(_conn: object) -> None:
        queue.put_nowait(RESYNC)

    first = True
    while True:
        try:
            listener = await asyncpg.connect(db.driver_dsn(), timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("change feed: cannot connect (%s); retrying", exc)
            await asyncio.sleep(1)
            continue
        try:
            listener.add_termination_listener(on_lost)
            await listener.add_listener(CHANNEL, on_notify)
            if not first:
                yield RESYNC
            first = False
            while not listener.is_closed():
                change = await queue.get()
                yield change
                if change == RESYNC:
                    break
        finally:
            if not listener.is_closed():
                await listener.close()
