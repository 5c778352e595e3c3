"""Bring a database's schema to the newest migration."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from reelgate.store.database import Database

_MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    # Handed over as an attribute, not an ini option, so that '%' in a password needs no escaping.
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str) -> None:
    """Apply every pending migration. Safe to run again: it does nothing when up to date."""
    command.upgrade(alembic_config(database_url), "head")


async def upgrade_async(database_url: str) -> None:
    # Alembic's environment runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(upgrade, database_url)


def head_revision() -> str | None:
    """The newest migration this reelgate has: the revision a current database is at."""
    head: str | None = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    return head


async def current_revision(db: Database) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    async with db.read() as conn:
        if not await conn.run_sync(lambda sync: sa.inspect(sync).has_table("alembic_version")):
            return None
        version: str | None = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
    return version
