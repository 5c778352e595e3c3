"""Accepting a task: the create path's two writes, on the bare drivers (see :mod:`.lanes`).

Every client's create makes these two writes, so each is one round trip on PostgreSQL and one
thread hop on SQLite. The SQL is written out here, per database, and built only from the
constants below, never from input: values always travel as parameters.

The first write (the task and its reservation) is durable before the upstream is asked. The
second (the upstream's id) is grouped with those of other creates on PostgreSQL and does not
wait for the disk (see :class:`.lanes.PostgresLane`): should the database server lose it, the
task is one whose create went unanswered, which its callback finds again or which ends with
its money released (see ``domain.lifecycle``), and nothing is ever sent twice.
"""

from __future__ import annotations

import functools
import sqlite3
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]
import orjson
import sqlalchemy as sa

from reelgate.domain.task import BillingStatus, LedgerKind, NewTask, Submission, TaskState
from reelgate.errors import InsufficientBalance
from reelgate.store.lanes import PostgresLane, SqliteLane, immediate
from reelgate.store.schema import tasks

COLUMNS: Final = (
    "id",
    "account_id",
    "key_id",
    "model",
    "state",
    "progress",
    "request",
    "channel",
    "billing_status",
    "tier",
    "price_per_second_micro_usdc",
    "duration",
    "margin_ppm",
    "cost_micro_usdc",
    "created_at",
    "updated_at",
    "next_poll_at_ms",
    "deadline_at_ms",
    "state_since_ms",
    "request_id",
)
"""The columns a new task sets; the others take their defaults."""
# How each column reads out of the JSON of a batch, from the schema's own types.
_PG_TYPES: Final = {
    name: "bigint" if isinstance(tasks.c[name].type, sa.Integer) else "text" for name in COLUMNS
}
_ID, _ACCOUNT, _COST, _CREATED = (
    COLUMNS.index(name) for name in ("id", "account_id", "cost_micro_usdc", "created_at")
)


def _values(new: NewTask) -> tuple[Any, ...]:
    created_at = new.created_at_ms // 1000
    quote = new.quote
    return (
        new.id,
        new.account_id,
        new.key_id,
        new.model,
        TaskState.WAITING.value,
        0,
        orjson.dumps(new.request).decode(),
        new.channel,
        BillingStatus.RESERVED.value,
        quote.tier,
        quote.price_per_second_micro_usdc,
        quote.duration,
        quote.margin_ppm,
        quote.cost_micro_usdc,
        created_at,
        created_at,
        new.first_poll_at_ms,
        new.deadline_at_ms,
        new.created_at_ms,
        new.request_id,
    )


# One statement: hold the money (or change nothing), insert the task from the held row (so
# there is no task without its reservation), and write the reservation to the ledger.
# PostgreSQL re-checks the balance of a row another create updated meanwhile, so concurrent
# creates on one account never hold more than it has.
_PG_INSERT: Final = f"""
WITH held AS (
    UPDATE accounts SET reserved_micro_usdc = reserved_micro_usdc + ${_COST + 1}
    WHERE id = ${_ACCOUNT + 1} AND balance_micro_usdc - reserved_micro_usdc >= ${_COST + 1}
    RETURNING id
), task AS (
    INSERT INTO tasks ({", ".join(COLUMNS)})
    SELECT {", ".join(f"${i + 1}" for i in range(len(COLUMNS)))} FROM held
    RETURNING id, account_id, cost_micro_usdc, created_at
), reservation AS (
    INSERT INTO ledger (account_id, task_id, kind, amount_micro_usdc, created_at)
    SELECT account_id, id, '{LedgerKind.RESERVE.value}', cost_micro_usdc, created_at FROM task
)
SELECT id FROM task
"""
# Many creates in one statement: each account's share of the batch held at once (all of it or
# none), the tasks of the accounts that could hold theirs inserted, and their reservations.
_PG_INSERT_MANY: Final = f"""
WITH input AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS given({
    ", ".join(f"{name} {_PG_TYPES[name]}" for name in COLUMNS)
})
), share AS (
    SELECT account_id, sum(cost_micro_usdc) AS total FROM input GROUP BY account_id
), held AS (
    UPDATE accounts SET reserved_micro_usdc = reserved_micro_usdc + share.total
    FROM share
    WHERE accounts.id = share.account_id
        AND accounts.balance_micro_usdc - accounts.reserved_micro_usdc >= share.total
    RETURNING accounts.id
), task AS (
    INSERT INTO tasks ({", ".join(COLUMNS)})
    SELECT {", ".join(COLUMNS)} FROM input WHERE account_id IN (SELECT id FROM held)
    RETURNING id, account_id, cost_micro_usdc, created_at
), reservation AS (
    INSERT INTO ledger (account_id, task_id, kind, amount_micro_usdc, created_at)
    SELECT account_id, id, '{LedgerKind.RESERVE.value}', cost_micro_usdc, created_at FROM task
)
SELECT id FROM task
"""
_PG_AVAILABLE: Final = "SELECT balance_micro_usdc - reserved_micro_usdc FROM accounts WHERE id = $1"
_PG_ACCEPT: Final = f"""
UPDATE tasks SET upstream_task_id = $2, submission = '{Submission.ACCEPTED.value}',
    updated_at = $3
WHERE id = $1 AND upstream_task_id IS NULL
"""

_SQLITE_HOLD: Final = """
UPDATE accounts SET reserved_micro_usdc = reserved_micro_usdc + ?
WHERE id = ? AND balance_micro_usdc - reserved_micro_usdc >= ?
"""
_SQLITE_AVAILABLE: Final = (
    "SELECT balance_micro_usdc - reserved_micro_usdc FROM accounts WHERE id = ?"
)
_SQLITE_INSERT: Final = (
    f"INSERT INTO tasks ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
)
_SQLITE_RESERVE: Final = (
    "INSERT INTO ledger (account_id, task_id, kind, amount_micro_usdc, created_at) "
    f"VALUES (?, ?, '{LedgerKind.RESERVE.value}', ?, ?)"
)
_SQLITE_ACCEPT: Final = f"""
UPDATE tasks SET upstream_task_id = ?, submission = '{Submission.ACCEPTED.value}', updated_at = ?
WHERE id = ? AND upstream_task_id IS NULL
"""


async def insert(lane: PostgresLane | SqliteLane, new: NewTask) -> None:
    """Store the task and hold its cost, or raise InsufficientBalance and store nothing."""
    values = _values(new)
    if isinstance(lane, PostgresLane):
        write = functools.partial(_pg_insert, lane)
    else:
        write = functools.partial(_sqlite_insert, lane)
    short = await lane.batcher("insert", write).submit(values)
    if short is not None:
        raise InsufficientBalance(
            f"this task costs {new.quote.cost_micro_usdc} micro-USDC but the account has "
            f"{short} micro-USDC available"
        )


async def _pg_insert(lane: PostgresLane, batch: list[tuple[Any, ...]]) -> list[int | None]:
    """A batch of creates (see :class:`.lanes.Batcher`): None for each one stored, else what
    its account has available. Several go in one statement and one commit, each account's
    share held at once; a task whose account cannot hold all of its share in the batch is then
    tried alone, so that what is accepted is exactly what one by one would accept."""
    async with lane.connection() as conn:
        stored: set[str] = set()
        if len(batch) > 1:
            try:
                rows = await conn.fetch(_PG_INSERT_MANY, _as_json(batch))
            except asyncpg.DeadlockDetectedError:
                rows = []  # another process's batch locked its accounts the other way round
            stored = {row[0] for row in rows}
        results: list[int | None] = []
        for values in batch:
            if values[_ID] in stored or await conn.fetchval(_PG_INSERT, *values) is not None:
                results.append(None)
            else:
                results.append(await conn.fetchval(_PG_AVAILABLE, values[_ACCOUNT]) or 0)
        return results


def _as_json(batch: list[tuple[Any, ...]]) -> str:
    return orjson.dumps([dict(zip(COLUMNS, values, strict=True)) for values in batch]).decode()


async def _sqlite_insert(lane: SqliteLane, batch: list[tuple[Any, ...]]) -> list[int | None]:
    """A batch of creates in one transaction of the writer thread, each as it would be alone:
    None for each one stored, else what its account has available."""
    return await lane.run(functools.partial(_sqlite_insert_all, batch))


def _sqlite_insert_all(batch: list[tuple[Any, ...]], conn: sqlite3.Connection) -> list[int | None]:
    results: list[int | None] = []
    with immediate(conn):
        for values in batch:
            account, cost = values[_ACCOUNT], values[_COST]
            if conn.execute(_SQLITE_HOLD, (cost, account, cost)).rowcount != 1:
                row = conn.execute(_SQLITE_AVAILABLE, (account,)).fetchone()
                results.append(int(row[0]) if row else 0)
                continue
            conn.execute(_SQLITE_INSERT, values)
            conn.execute(_SQLITE_RESERVE, (account, values[_ID], cost, values[_CREATED]))
            results.append(None)
    return results


async def accept(
    lane: PostgresLane | SqliteLane, task_id: str, upstream_task_id: str, now_s: int
) -> bool:
    """Record the upstream's id for the task, unless one is recorded: True when this did."""
    if isinstance(lane, PostgresLane):
        async with lane.connection() as conn:
            status: str = await conn.execute(_PG_ACCEPT, task_id, upstream_task_id, now_s)
        return status == "UPDATE 1"
    return await lane.run(functools.partial(_sqlite_accept, (upstream_task_id, now_s, task_id)))


def _sqlite_accept(values: tuple[str, int, str], conn: sqlite3.Connection) -> bool:
    return conn.execute(_SQLITE_ACCEPT, values).rowcount == 1
