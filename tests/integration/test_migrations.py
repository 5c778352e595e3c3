"""The migrations build exactly the schema the code describes."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from reelgate.store.migrate import alembic_config, upgrade_async
from reelgate.store.schema import metadata


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
