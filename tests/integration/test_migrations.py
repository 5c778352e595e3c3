"""The migrations build exactly the schema the code describes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from reelgate.store.migrate import alembic_config, upgrade_async
from reelgate.store.schema import metadata
from tests.conftest import _pg_admin, _pg_url, _postgres_unavailable


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection)
    return [
        change
        for change in compare_metadata(context, metadata)
        # Alembic's own bookkeeping table is not part of reelgate's schema.
        if not (change[0] == "remove_table" and change[1].name == "alembic_version")
    ]


async def test_migrated_database_matches_the_schema_module(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_upgrading_again_keeps_the_database_at_head(database_url: str) -> None:
    await upgrade_async(database_url)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            versions = (
                await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            ).all()
    finally:
        await engine.dispose()
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert [row[0] for row in versions] == [head]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all, to migrate step by step."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'steps.db'}"
        return
    name = f"reelgate_steps_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        _postgres_unavailable(str(exc))
    try:
        yield _pg_url(name)
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def test_accounts_made_before_webhooks_get_a_secret_of_their_own(
    empty_database_url: str,
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0003")
    engine = create_async_engine(empty_database_url)
    try:
        async with engine.begin() as conn:
            for name in ("old-1", "old-2"):
                await conn.execute(
                    sa.text("INSERT INTO accounts (id, name, created_at) VALUES (:n, :n, 0)"),
                    {"n": name},
                )
        await upgrade_async(empty_database_url)
        async with engine.connect() as conn:
            secrets = (
                (await conn.execute(sa.text("SELECT webhook_secret FROM accounts"))).scalars().all()
            )
    finally:
        await engine.dispose()
    assert len(secrets) == len(set(secrets)) == 2
    assert all(secret.startswith("whsec_") and len(secret) > 40 for secret in secrets)
