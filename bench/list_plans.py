"""Query plans and timings of the list, ledger and usage queries over a large database.

Seeds a fresh database (a SQLite file, or a PostgreSQL database on 127.0.0.1:5432 dropped at the
end) with --tasks tasks over 90 days: one account holds 70 % of them over five keys, the other
--accounts share the rest; 85 % succeeded, 10 % failed, the rest (of the last hour) are
unfinished; each task has its reservation in the ledger and each ended one its settlement. Then
runs each query the way the gateway runs it (the store's own methods; the SQL they send is
captured), prints its plan (SQLite: EXPLAIN QUERY PLAN, without ANALYZE, as a gateway's file is;
PostgreSQL: EXPLAIN after ANALYZE, as autovacuum leaves it) and the median time of --runs runs.

    .venv/bin/python bench/list_plans.py [--database sqlite|postgres] [--tasks 100000] [--runs 5]
        [--accounts 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy import event
from ulid import ULID

from reelgate.domain.listing import TaskFilter
from reelgate.domain.secret_key import SecretKey
from reelgate.domain.task import TaskState
from reelgate.domain.usage import GroupBy, LedgerFilter, UsageQuery
from reelgate.store.database import Database
from reelgate.store.migrate import upgrade
from reelgate.store.schema import accounts, api_keys, ledger, tasks
from reelgate.store.sealing import Sealer
from reelgate.store.tasks import TaskStore
from reelgate.store.usage import UsageStore

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DAY = 86_400
CHUNK = 5_000
COST = 825_000


def _ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}_{i:026d}" for i in range(count)]


async def seed(db: Database, count: int, account_count: int) -> dict[str, Any]:
    now = int(time.time())
    account_ids = _ids("acct", account_count)
    others = account_count - 1
    key_ids = {acct: _ids(f"key{n}", 5 if n == 0 else 1) for n, acct in enumerate(account_ids)}
    task_rows, ledger_rows = [], []
    for n in range(count):
        acct = account_ids[0] if n % 10 < 7 else account_ids[1 + n % others]
        keys = key_ids[acct]
        share = n / count
        if share < 0.85:
            state, created = "success", now - 90 * DAY + int(share / 0.95 * 89 * DAY)
        elif share < 0.95:
            state, created = "fail", now - 90 * DAY + int(share / 0.95 * 89 * DAY)
        else:
            state, created = ("generating" if n % 2 else "waiting"), now - 3600 + n % 3600
        ms = created * 1000 + n % 1000
        task_id = f"task_{ULID.from_timestamp(ms / 1000)}"
        ended = state in ("success", "fail")
        task_rows.append(
            {
                "id": task_id,
                "account_id": acct,
                "key_id": keys[n % len(keys)],
                "model": "seedance-2" if n % 3 == 0 else "seedance-2-fast",
                "state": state,
                "progress": 100 if state == "success" else 0,
                "request": '{"prompt": "a boat"}',
                "channel": "kie",
                "submission": "accepted",
                "billing_status": {"success": "committed", "fail": "released"}.get(
                    state, "reserved"
                ),
                "tier": "720p_no_video",
                "price_per_second_micro_usdc": 165_000,
                "duration": 5,
                "margin_ppm": 1_000_000,
                "cost_micro_usdc": COST,
                "created_at": created,
                "updated_at": created,
                "completed_at": created + 60 if ended else None,
                "next_poll_at_ms": None if ended else ms + 5_000,
                "deadline_at_ms": ms + 3_600_000,
            }
        )
        ledger_rows.append((acct, task_id, "reserve", created))
        if ended:
            kind = "commit" if state == "success" else "release"
            ledger_rows.append((acct, task_id, kind, created + 60))
    ledger_rows.sort(key=lambda row: row[3])  # ids in the order entries were written
    async with db.pool.begin() as conn:
        await conn.execute(
            accounts.insert(),
            [
                {
                    "id": acct,
                    "name": f"account-{n}",
                    "balance_micro_usdc": 10**15,
                    "reserved_micro_usdc": 0,
                    "created_at": now - 91 * DAY,
                    "webhook_secret": "x",
                }
                for n, acct in enumerate(account_ids)
            ],
        )
        await conn.execute(
            api_keys.insert(),
            [
                {"id": key, "account_id": acct, "key_hash": key, "prefix": "rg_", "created_at": 0}
                for acct, keys in key_ids.items()
                for key in keys
            ],
        )
        for start in range(0, len(task_rows), CHUNK):
            await conn.execute(tasks.insert(), task_rows[start : start + CHUNK])
        entries = [
            {
                "account_id": acct,
                "task_id": task_id,
                "kind": kind,
                "amount_micro_usdc": COST,
                "created_at": at,
            }
            for acct, task_id, kind, at in ledger_rows
        ]
        for start in range(0, len(entries), CHUNK):
            await conn.execute(ledger.insert(), entries[start : start + CHUNK])
    if not db.is_sqlite:
        async with db.pool.connect() as conn:
            await conn.execute(sa.text("COMMIT"))
            await conn.execute(sa.text("ANALYZE"))
    by_id = sorted(str(row["id"]) for row in task_rows if row["account_id"] == account_ids[0])
    return {
        "now": now,
        "big": account_ids[0],
        "small": account_ids[5],
        "small_middle_task": sorted(
            str(r["id"]) for r in task_rows if r["account_id"] == account_ids[5]
        )[len([r for r in task_rows if r["account_id"] == account_ids[5]]) // 2],
        "big_key": key_ids[account_ids[0]][3],
        "small_key": key_ids[account_ids[5]][0],
        "middle_task": by_id[len(by_id) // 2],
    }


def queries(db: Database, s: dict[str, Any]) -> dict[str, Callable[[], Awaitable[object]]]:
    task_store, usage = TaskStore(db), UsageStore(db)
    now, big = s["now"], s["big"]
    month_ago = now - 30 * DAY
    return {
        "tasks: an account's first page": lambda: task_store.find(TaskFilter(big), None, 21),
        "tasks: an account's page half way": lambda: task_store.find(
            TaskFilter(big), s["middle_task"], 21
        ),
        "tasks: a small account's first page": lambda: task_store.find(
            TaskFilter(s["small"]), None, 21
        ),
        "tasks: a small account's page half way": lambda: task_store.find(
            TaskFilter(s["small"]), s["small_middle_task"], 21
        ),
        "tasks: state=generating (few, all recent)": lambda: task_store.find(
            TaskFilter(big, state=TaskState.GENERATING), None, 21
        ),
        "tasks: state=queuing (none: the whole account is read)": lambda: task_store.find(
            TaskFilter(big, state=TaskState.QUEUING), None, 21
        ),
        "tasks: state=fail": lambda: task_store.find(
            TaskFilter(big, state=TaskState.FAIL), None, 21
        ),
        "tasks: created in one day a month ago": lambda: task_store.find(
            TaskFilter(big, created_after=month_ago, created_before=month_ago + DAY), None, 21
        ),
        "admin tasks: every account": lambda: task_store.find(TaskFilter(), None, 21),
        "admin tasks: one key": lambda: task_store.find(TaskFilter(key_id=s["big_key"]), None, 21),
        "admin tasks: a small account's key (few among all)": lambda: task_store.find(
            TaskFilter(key_id=s["small_key"]), None, 21
        ),
        "ledger: an account's first page": lambda: usage.entries(LedgerFilter(big), None, 21),
        "usage: an account, by day, last 30 days": lambda: usage.usage(
            UsageQuery(big, GroupBy.DAY, month_ago)
        ),
        "usage: an account, by model, all time": lambda: usage.usage(
            UsageQuery(big, GroupBy.MODEL)
        ),
        "usage: an account, by key, one day": lambda: usage.usage(
            UsageQuery(big, GroupBy.KEY, month_ago, month_ago + DAY)
        ),
        "admin usage: every account, by account, one day": lambda: usage.usage(
            UsageQuery(None, GroupBy.ACCOUNT, month_ago, month_ago + DAY)
        ),
        "admin usage: every account, by day, last 7 days": lambda: usage.usage(
            UsageQuery(None, GroupBy.DAY, now - 7 * DAY)
        ),
    }


async def explain(db: Database, statement: str, params: Any) -> list[str]:
    async with db.pool.connect() as conn:
        if db.is_sqlite:
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            return [str(row[-1]) for row in rows]
        rows = await conn.exec_driver_sql(f"EXPLAIN {statement}", params)
        return [str(row[0]) for row in rows]


async def measure(db: Database, s: dict[str, Any], runs: int) -> None:
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    for name, run in queries(db, s).items():
        await run()  # warm
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            await run()
            times.append((time.perf_counter() - started) * 1000)
        event.listen(db.pool.sync_engine, "before_cursor_execute", capture)
        try:
            await run()
        finally:
            event.remove(db.pool.sync_engine, "before_cursor_execute", capture)
        statement, params = seen[-1]
        print(f"\n{name}: median {statistics.median(times):.2f} ms")
        for line in await explain(db, statement, params):
            print(f"    {line}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--accounts", type=int, default=10, help="one holds 70 %% of the tasks; the rest share"
    )
    opts = parser.parse_args()
    sealer = Sealer(SecretKey.parse("0" * 64))
    with tempfile.TemporaryDirectory() as tmp:
        name = f"reelgate_plans_{uuid.uuid4().hex[:8]}"
        if opts.database == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'plans.db'}"
        else:
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'CREATE DATABASE "{name}"')
            url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}".replace(
                "postgresql://", "postgresql+asyncpg://"
            )
        try:
            await asyncio.to_thread(upgrade, url)
            db = Database(url, sealer)
            try:
                started = time.perf_counter()
                shape = await seed(db, opts.tasks, opts.accounts)
                print(f"seeded {opts.tasks} tasks in {time.perf_counter() - started:.1f} s")
                await measure(db, shape, opts.runs)
            finally:
                await db.dispose()
        finally:
            if opts.database == "postgres":
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
