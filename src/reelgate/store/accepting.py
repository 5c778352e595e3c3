"""Accepting a task: the create path's two writes, on the bare drivers (see :mod:`.lanes`).

Every client's create makes these two writes, so each is one round trip on PostgreSQL and one
thread hop on SQLite. The SQL is written out here, per database, and built only from the
constants below, never from input: values always travel as parameters.
"""

from __future__ import annotations

import functools
import sqlite3
from typing import Any, Final

import orjson

from reelgate.domain.task import BillingStatus, LedgerKind, NewTask, Submission, TaskState
from reelgate.errors import InsufficientBalance
from reelgate.store.lanes import PostgresLane, SqliteLane, immediate

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
)
"""The columns a new task sets; the others take their defaults."""
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
    available = 0
    if isinstance(lane, PostgresLane):
        async with lane.connection() as conn:
            stored = await conn.fetchval(_PG_INSERT, *values)
            if stored is None:
                available = await conn.fetchval(_PG_AVAILABLE, new.account_id) or 0
    else:
        stored, available = await lane.run(functools.partial(_sqlite_insert, values))
    if stored is None:
        raise InsufficientBalance(
            f"this task costs {new.quote.cost_micro_usdc} micro-USDC but the account has "
            f"{available} micro-USDC available"
        )


def _sqlite_insert(values: tuple[Any, ...], conn: sqlite3.Connection) -> tuple[str | None, int]:
    """In the writer thread: the task's id, or None and what the account has available."""
    account, cost = values[_ACCOUNT], values[_COST]
    with immediate(conn):
        if conn.execute(_SQLITE_HOLD, (cost, account, cost)).rowcount != 1:
            row = conn.execute(_SQLITE_AVAILABLE, (account,)).fetchone()
            return None, int(row[0]) if row else 0
        conn.execute(_SQLITE_INSERT, values)
        conn.execute(_SQLITE_RESERVE, (account, values[_ID], cost, values[_CREATED]))
    return str(values[_ID]), 0


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
