"""The list, ledger and usage queries find their rows through the indexes made for them (on
PostgreSQL with sequential scans discouraged, as a table of 100,000 tasks does;
bench/list_plans.py shows the plans and timings at that size)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import pytest
from sqlalchemy import event

from reelgate.domain.listing import TaskFilter
from reelgate.domain.task import TaskState
from reelgate.domain.usage import GroupBy, LedgerFilter, UsageQuery
from reelgate.store.accounts import AccountStore
from reelgate.store.database import Database
from reelgate.store.tasks import TaskStore
from reelgate.store.usage import UsageStore
from tests.conftest import open_database
from tests.integration.list_helpers import store_tasks

DAY: Final = 86_400


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = open_database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def account_id(db: Database, database_url: str) -> str:
    """An account with tasks made over three days and ended, and two under way."""
    accounts = AccountStore(db)
    account = await accounts.create("planner", 10**12)
    key = await accounts.add_key("planner", "hash", "rg_test")
    key_row = {"id": key.id, "account_id": account.id}
    now = int(time.time())
    for days in (3, 2, 1):
        await store_tasks(
            database_url, key_row, 2, created_s=now - days * DAY, end=TaskState.SUCCESS
        )
    await store_tasks(database_url, key_row, 2)
    return account.id


async def plan(db: Database, run: Callable[[], Awaitable[object]]) -> str:
    """The plan of the last SELECT that ``run`` sends."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    event.listen(db.pool.sync_engine, "before_cursor_execute", capture)
    try:
        await run()
    finally:
        event.remove(db.pool.sync_engine, "before_cursor_execute", capture)
    statement, params = seen[-1]
    async with db.pool.connect() as conn:
        if db.is_sqlite:
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
        else:
            await conn.exec_driver_sql("SET enable_seqscan = off")
            rows = await conn.exec_driver_sql(f"EXPLAIN {statement}", params)
        return " ".join(str(row[-1]) for row in rows)


async def test_an_accounts_tasks_are_read_from_its_index_newest_first(
    db: Database, account_id: str
) -> None:
    store = TaskStore(db)
    first = await plan(db, lambda: store.find(TaskFilter(account_id), None, 21))
    later = await plan(db, lambda: store.find(TaskFilter(account_id), "task_7", 21))
    for found in (first, later):
        assert "ix_tasks_account_id_id" in found, found
        assert "TEMP B-TREE" not in found, found  # no sort: the index is in order
        assert "Sort" not in found, found


async def test_a_creation_window_is_read_as_a_range_of_ids(db: Database, account_id: str) -> None:
    now = int(time.time())
    window = TaskFilter(account_id, created_after=now - 2 * DAY - 10, created_before=now - DAY)
    found = await plan(db, lambda: TaskStore(db).find(window, None, 21))
    if db.is_sqlite:
        assert "ix_tasks_account_id_id (account_id=? AND id>? AND id<?)" in found, found
    else:
        assert "Index Cond" in found, found
        assert "(id)::text >= " in found, found
        assert "(id)::text < " in found, found


async def test_the_ledger_is_read_from_the_accounts_index(db: Database, account_id: str) -> None:
    found = await plan(db, lambda: UsageStore(db).entries(LedgerFilter(account_id), None, 21))
    assert "ix_ledger_account_id_id" in found, found


@pytest.mark.parametrize("group_by", list(GroupBy))
async def test_usage_reads_only_the_settlements_of_its_period(
    db: Database, account_id: str, group_by: GroupBy
) -> None:
    now = int(time.time())
    usage = UsageStore(db)
    mine = await plan(db, lambda: usage.usage(UsageQuery(account_id, group_by, now - DAY)))
    everyone = await plan(db, lambda: usage.usage(UsageQuery(None, group_by, now - DAY, now)))
    assert "ix_ledger_settled_" in mine, mine
    assert "ix_ledger_settled_" in everyone, everyone
    if db.is_sqlite:
        # PostgreSQL picks either of the two on a table this small.
        assert "ix_ledger_settled_account_id_created_at (account_id=? AND created_at>?)" in mine
        assert "ix_ledger_settled_created_at (created_at>? AND created_at<?)" in everyone
