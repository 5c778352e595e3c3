"""The migrations build exactly the schema the code describes."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from subprocess import STDOUT
from typing import Any, Final

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
from tests.conftest import TEST_SECRET_KEY, _pg_admin, _pg_url, _postgres_unavailable


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


# 0005: the money bounds

# Rows as a database at 0004 may hold them: an account with a credit and a reserved task.
ROWS_AT_0004: Final = (
    "INSERT INTO accounts (id, name, balance_micro_usdc, reserved_micro_usdc, created_at, "
    "webhook_secret) VALUES ('acct_1', 'studio', 10000000, 825000, 1, 'whsec_x')",
    "INSERT INTO api_keys (id, account_id, key_hash, prefix, created_at) "
    "VALUES ('key_1', 'acct_1', 'hash', 'rg_x', 1)",
    "INSERT INTO tasks (id, account_id, key_id, model, state, request, channel, billing_status, "
    "tier, price_per_second_micro_usdc, duration, margin_ppm, cost_micro_usdc, created_at, "
    "updated_at) VALUES ('task_1', 'acct_1', 'key_1', 'seedance-2-fast', 'waiting', '{}', 'kie', "
    "'reserved', '720p_no_video', 165000, 5, 1000000, 825000, 1, 1)",
    "INSERT INTO ledger (account_id, task_id, kind, amount_micro_usdc, created_at, note) "
    "VALUES ('acct_1', NULL, 'credit', 10000000, 1, 'opening credit')",
    "INSERT INTO ledger (account_id, task_id, kind, amount_micro_usdc, created_at) "
    "VALUES ('acct_1', 'task_1', 'reserve', 825000, 1)",
)
TABLES: Final = ("accounts", "api_keys", "tasks", "ledger", "webhook_deliveries", "meta")


async def _execute(url: str, *statements: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


async def _snapshot(url: str) -> dict[str, list[Any]]:
    """Every row of reelgate's tables, every table's name, and the definition of every index
    and trigger."""
    engine = create_async_engine(url)
    if engine.dialect.name == "sqlite":
        objects = (
            "SELECT type, name, CASE type WHEN 'table' THEN '' ELSE sql END FROM sqlite_master"
        )
    else:
        objects = (
            "SELECT 'table', tablename, '' FROM pg_tables WHERE schemaname = 'public' UNION ALL "
            "SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "UNION ALL SELECT 'trigger', tgname, pg_get_triggerdef(oid) FROM pg_trigger "
            "WHERE NOT tgisinternal"
        )
    try:
        async with engine.connect() as conn:
            snapshot = {
                table: [tuple(row) for row in await conn.execute(sa.text(f"SELECT * FROM {table}"))]
                for table in TABLES
            }
            snapshot["objects"] = sorted(tuple(row) for row in await conn.execute(sa.text(objects)))
            snapshot["version"] = list(
                (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
            )
    finally:
        await engine.dispose()
    return snapshot


async def test_money_bounds_keep_existing_rows_indexes_and_triggers_unchanged(
    empty_database_url: str,
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0004")
    await _execute(empty_database_url, *ROWS_AT_0004)
    before = await _snapshot(empty_database_url)
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0005")
    after = await _snapshot(empty_database_url)
    assert after.pop("version") == [("0005",)]
    before.pop("version")
    assert after == before
    assert len(after["ledger"]) == 2


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger SET amount_micro_usdc = amount_micro_usdc + 1",
        "DELETE FROM ledger",
    ],
    ids=["update", "delete"],
)
async def test_ledger_migrated_through_the_money_bounds_is_still_append_only(
    empty_database_url: str, statement: str
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0004")
    await _execute(empty_database_url, *ROWS_AT_0004)
    await upgrade_async(empty_database_url)
    with pytest.raises(sa.exc.IntegrityError, match="margin_ppm_bounds"):
        await _execute(empty_database_url, "UPDATE tasks SET margin_ppm = 0")
    before = await _snapshot(empty_database_url)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        await _execute(empty_database_url, statement)
    assert await _snapshot(empty_database_url) == before


async def test_money_bounds_refuse_rows_out_of_bounds_naming_them_and_change_nothing(
    empty_database_url: str,
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0004")
    await _execute(empty_database_url, *ROWS_AT_0004)
    # What the overflow left behind: on SQLite the float a sum past 2**63 became, on
    # PostgreSQL (which refused that sum) a balance over the limit.
    damaged = "1e19" if empty_database_url.startswith("sqlite") else "2000000000000000"
    await _execute(
        empty_database_url,
        f"UPDATE accounts SET balance_micro_usdc = {damaged} WHERE name = 'studio'",
    )
    before = await _snapshot(empty_database_url)
    with pytest.raises(RuntimeError, match=r"accounts studio: balance_micro_usdc = "):
        await upgrade_async(empty_database_url)
    assert await _snapshot(empty_database_url) == before


async def test_downgrading_the_money_bounds_keeps_rows_and_the_append_only_ledger(
    empty_database_url: str,
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0004")
    await _execute(empty_database_url, *ROWS_AT_0004)
    at_0004 = await _snapshot(empty_database_url)
    await upgrade_async(empty_database_url)
    with pytest.raises(sa.exc.IntegrityError, match="margin_ppm_bounds"):
        await _execute(empty_database_url, "UPDATE tasks SET margin_ppm = 0")
    await asyncio.to_thread(command.downgrade, alembic_config(empty_database_url), "0004")
    assert await _snapshot(empty_database_url) == at_0004
    # The bounds are gone, the ledger's guard is not.
    await _execute(empty_database_url, "UPDATE tasks SET margin_ppm = 0")
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        await _execute(empty_database_url, "DELETE FROM ledger")


# 0006: room for sealed secrets

SEALED_LOOKING: Final = "enc1:" + "A" * 200


async def test_sealed_secrets_widen_the_columns_and_keep_rows_and_constraints(
    empty_database_url: str,
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0005")
    await _execute(empty_database_url, *ROWS_AT_0004)
    before = await _snapshot(empty_database_url)
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0006")
    after = await _snapshot(empty_database_url)
    assert (before.pop("version"), after.pop("version")) == ([("0005",)], [("0006",)])
    assert after == before
    # A sealed secret fits (PostgreSQL refused more than 64 characters before).
    await _execute(
        empty_database_url,
        f"UPDATE accounts SET webhook_secret = '{SEALED_LOOKING}', "
        f"previous_webhook_secret = '{SEALED_LOOKING}'",
    )
    # The money bounds are still there after SQLite rebuilt the table.
    with pytest.raises(sa.exc.IntegrityError, match="balance_micro_usdc_bounds"):
        await _execute(
            empty_database_url, "UPDATE accounts SET balance_micro_usdc = 2000000000000000"
        )


async def test_downgrading_below_0006_refuses_while_secrets_are_sealed_and_changes_nothing(
    empty_database_url: str,
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0005")
    await _execute(empty_database_url, *ROWS_AT_0004)
    # At 0006 itself: on SQLite a downgrade through several revisions is not one transaction.
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0006")
    await _execute(empty_database_url, f"UPDATE accounts SET webhook_secret = '{SEALED_LOOKING}'")
    before = await _snapshot(empty_database_url)
    with pytest.raises(RuntimeError, match="1 accounts keep their webhook secrets sealed"):
        await asyncio.to_thread(command.downgrade, alembic_config(empty_database_url), "0005")
    assert await _snapshot(empty_database_url) == before
    await _execute(empty_database_url, "UPDATE accounts SET webhook_secret = 'whsec_x'")
    await asyncio.to_thread(command.downgrade, alembic_config(empty_database_url), "0005")
    assert (await _snapshot(empty_database_url))["version"] == [("0005",)]


# 0010: indexes for lists and usage


def _indexes(snapshot: dict[str, list[Any]]) -> set[str]:
    return {name for kind, name, _ in snapshot["objects"] if kind == "index"}


async def test_list_indexes_replace_two_and_keep_rows_and_triggers(
    empty_database_url: str,
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0006")
    await _execute(empty_database_url, *ROWS_AT_0004)
    before = await _snapshot(empty_database_url)
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0010")
    after = await _snapshot(empty_database_url)
    assert _indexes(after) - _indexes(before) == {
        "ix_tasks_account_id_id",
        "ix_ledger_account_id_id",
        "ix_ledger_settled_account_id_created_at",
        "ix_ledger_settled_created_at",
    }
    assert _indexes(before) - _indexes(after) == {
        "ix_tasks_account_id_created_at",
        "ix_ledger_account_id",
    }
    unchanged = [(kind, name, sql) for kind, name, sql in after["objects"] if kind != "index"]
    assert unchanged == [
        (kind, name, sql) for kind, name, sql in before["objects"] if kind != "index"
    ]
    assert {table: after[table] for table in TABLES} == {table: before[table] for table in TABLES}
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        await _execute(empty_database_url, "DELETE FROM ledger")
    await asyncio.to_thread(command.downgrade, alembic_config(empty_database_url), "0006")
    assert await _snapshot(empty_database_url) == before


# 0011: each task's request id


async def test_request_ids_are_added_empty_and_dropped_again_keeping_every_row(
    empty_database_url: str,
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0010")
    await _execute(empty_database_url, *ROWS_AT_0004)
    at_0010 = await _snapshot(empty_database_url)
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0011")
    assert _indexes(await _snapshot(empty_database_url)) - _indexes(at_0010) == {
        "ix_tasks_succeeded"
    }
    engine = create_async_engine(empty_database_url)
    try:
        async with engine.connect() as conn:
            kept = (await conn.execute(sa.text("SELECT id, request_id FROM tasks"))).all()
    finally:
        await engine.dispose()
    assert [tuple(row) for row in kept] == [("task_1", None)]
    await asyncio.to_thread(command.downgrade, alembic_config(empty_database_url), "0010")
    assert await _snapshot(empty_database_url) == at_0010


async def test_processes_migrating_an_empty_database_together_leave_it_at_head_once(
    empty_database_url: str,
) -> None:
    # Every `serve` applies migrations at start: several starting together on one new database.
    # Processes, not threads: Alembic keeps its migration context in a module global.
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")},
        "REELGATE_DATABASE_URL": empty_database_url,
        "REELGATE_SECRET_KEY": TEST_SECRET_KEY,
    }
    reelgate = str(Path(sys.executable).parent / "reelgate")
    migrations = [
        await asyncio.create_subprocess_exec(
            reelgate, "migrate", env=env, stdout=asyncio.subprocess.PIPE, stderr=STDOUT
        )
        for _ in range(4)
    ]
    outputs = await asyncio.wait_for(
        asyncio.gather(*(migration.communicate() for migration in migrations)), timeout=60
    )
    assert [m.returncode for m in migrations] == [0] * 4, [out for out, _ in outputs]
    engine = create_async_engine(empty_database_url)
    try:
        async with engine.connect() as conn:
            versions = (
                await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            ).all()
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()
    head = ScriptDirectory.from_config(alembic_config(empty_database_url)).get_current_head()
    assert [row[0] for row in versions] == [head]


async def test_key_limits_and_idempotency_are_added_empty_and_dropped_again_keeping_every_row(
    empty_database_url: str,
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0011")
    await _execute(empty_database_url, *ROWS_AT_0004)
    at_0011 = await _snapshot(empty_database_url)
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0012")
    engine = create_async_engine(empty_database_url)
    try:
        async with engine.connect() as conn:
            keys = await conn.execute(sa.text("SELECT id, rate_count, models FROM api_keys"))
            kept = [tuple(row) for row in keys.all()]
            claims = (await conn.execute(sa.text("SELECT count(*) FROM idempotency_keys"))).scalar()
    finally:
        await engine.dispose()
    assert kept
    assert all(row[1:] == (None, None) for row in kept)
    assert claims == 0
    await asyncio.to_thread(command.downgrade, alembic_config(empty_database_url), "0011")
    assert await _snapshot(empty_database_url) == at_0011


# 0014: tasks' timelines, webhook attempts, signed-out console sessions

ROWS_AT_0014: Final = (
    "INSERT INTO task_events (task_id, state, at_ms, progress, detail) "
    "VALUES ('task_1', 'fail', 2000, 0, 'deadline_exceeded')",
    "INSERT INTO webhook_deliveries (task_id, account_id, url, webhook_id, status, attempts, "
    "created_at_ms) VALUES ('task_1', 'acct_1', 'https://hooks.example/cb', 'msg_1', 'pending', "
    "1, 2000)",
    "INSERT INTO webhook_attempts (task_id, attempt, at_ms, duration_ms, response_code, error) "
    "VALUES ('task_1', 1, 2100, 40, 500, 'the receiver answered 500')",
    "INSERT INTO console_sessions_revoked (sid, expires_at_ms) VALUES ('sid-1', 9000)",
)


async def test_the_consoles_tables_are_added_and_dropped_again_keeping_every_row(
    empty_database_url: str,
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0013")
    await _execute(empty_database_url, *ROWS_AT_0004)
    at_0013 = await _snapshot(empty_database_url)
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0014")
    await _execute(empty_database_url, *ROWS_AT_0014)
    with pytest.raises(sa.exc.IntegrityError):
        # A task enters each state once.
        await _execute(empty_database_url, ROWS_AT_0014[0])
    await asyncio.to_thread(command.downgrade, alembic_config(empty_database_url), "0013")
    after = await _snapshot(empty_database_url)
    # Downgrading drops the new tables only (the delivery row was written at 0014).
    await _execute(empty_database_url, "DELETE FROM webhook_deliveries")
    assert await _snapshot(empty_database_url) == at_0013
    assert after["webhook_deliveries"]
    await upgrade_async(empty_database_url)
    engine = create_async_engine(empty_database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            events = (await conn.execute(sa.text("SELECT count(*) FROM task_events"))).scalar()
    finally:
        await engine.dispose()
    assert events == 0


# 0015: a task's row takes its upstream id in place


async def _tasks_storage(url: str) -> tuple[bool, list[str]]:
    """Whether tasks has an index on upstream_task_id, and its storage options (PostgreSQL)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            indexes = await conn.run_sync(lambda c: sa.inspect(c).get_indexes("tasks"))
            options: list[str] = []
            if engine.dialect.name == "postgresql":
                found = await conn.scalar(
                    sa.text("SELECT reloptions FROM pg_class WHERE relname = 'tasks'")
                )
                options = list(found or [])
    finally:
        await engine.dispose()
    indexed = any(index["column_names"] == ["upstream_task_id"] for index in indexes)
    return indexed, options


async def test_tasks_lose_the_upstream_id_index_and_keep_room_for_updates_in_place(
    empty_database_url: str,
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0014")
    await _execute(empty_database_url, *ROWS_AT_0004)
    at_0014 = await _snapshot(empty_database_url)
    assert await _tasks_storage(empty_database_url) == (True, [])
    await upgrade_async(empty_database_url)
    postgres = empty_database_url.startswith("postgresql")
    assert await _tasks_storage(empty_database_url) == (
        False,
        ["fillfactor=85"] if postgres else [],
    )
    await asyncio.to_thread(command.downgrade, alembic_config(empty_database_url), "0014")
    assert await _tasks_storage(empty_database_url) == (True, [])
    assert await _snapshot(empty_database_url) == at_0014
