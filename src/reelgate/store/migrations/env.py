"""Alembic environment: runs migrations on reelgate's async engine (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from alembic import context
from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from reelgate.store.database import SQLITE_BUSY_TIMEOUT_MS
from reelgate.store.schema import metadata

_LOCK_KEY = 0x7265656C67617465  # "reelgate": the advisory lock migrations hold on PostgreSQL


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        # SQLite's DDL is transactional too: one transaction for all, as on PostgreSQL.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Every `serve` migrates at start: processes starting together on one database take
            # turns (the lock ends with the transaction), and each after the first finds the
            # schema at head. SQLite's writers already take turns on the file.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        context.run_migrations()


def _sqlite_migrations_take_turns(engine: AsyncEngine) -> None:
    """The whole migration in one ``BEGIN IMMEDIATE`` transaction: a second process waits for
    the first to commit (up to the busy timeout), then finds the schema at head."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the "begin" event below starts transactions
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


async def _main() -> None:
    engine = create_async_engine(context.config.attributes["database_url"])
    if engine.dialect.name == "sqlite":
        _sqlite_migrations_take_turns(engine)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


asyncio.run(_main())
