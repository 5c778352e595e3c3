"""Accepting a task: the create path's two writes, on the bare drivers (see :mod:`.lanes`).

Every client's create makes these two writes, so each is one round trip on PostgreSQL and one
thread hop on SQLite. The SQL is written out here, per database, and built only from the
constants below, never from input: values always travel as parameters.

The first write (the task and its reservation) is durable before the upstream is asked. The
second (the upstream's id) is grouped with those of other creates, the create's answer does not
wait for it, and on PostgreSQL it does not wait for the disk (see :class:`.lanes.PostgresLane`):
should a crash lose it, the task is one whose create went unanswered, which its callback finds
again or which ends with its money released (see ``domain.lifecycle``), and nothing is ever
sent twice.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from dataclasses import dataclass
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]
import orjson
import sqlalchemy as sa

from reelgate.domain.idempotency import Claim, Phase
from reelgate.domain.limits import usd
from reelgate.domain.task import (
    UNFINISHED_STATES,
    BillingStatus,
    LedgerKind,
    NewTask,
    Submission,
    TaskState,
)
from reelgate.errors import InsufficientBalance, KeyBudgetExceeded, RateLimited
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


@dataclass(frozen=True, slots=True)
class Guard:
    """What a create must check and write beside its task, in the same transaction: its
    Idempotency-Key, and its key's limits counted from the tasks themselves (so that they hold
    exactly across processes). Creates without one take the batched path alone."""

    claim: Claim | None = None
    max_in_flight: int | None = None
    budget_micro_usdc: int | None = None
    budget_since_s: int = 0
    retry_in_flight_s: int = 1
    """What a refusal for tasks in flight tells the client to wait."""


# Why a guarded create was not stored, with a figure for the message.
_SHORT, _TAKEN, _IN_FLIGHT, _OVER_BUDGET = "short", "taken", "in_flight", "over_budget"
Refusal = tuple[str, int]

# A key's tasks in flight, and its spending since a time: ix_tasks_key_id_state_created_at.
_LIVE: Final = ", ".join(f"'{s.value}'" for s in UNFINISHED_STATES)
_SPENDING: Final = ", ".join(f"'{s.value}'" for s in (*UNFINISHED_STATES, TaskState.SUCCESS))
_COUNT_IN_FLIGHT: Final = f"SELECT count(*) FROM tasks WHERE key_id = {{p}} AND state IN ({_LIVE})"
_SPENT: Final = (
    "SELECT coalesce(sum(cost_micro_usdc), 0) FROM tasks "
    f"WHERE key_id = {{p}} AND state IN ({_SPENDING}) AND created_at >= {{q}}"
)
_CLAIM_COLUMNS: Final = (
    "account_id, key, fingerprint, task_id, phase, status, body, location, created_at_ms, "
    "pending_until_ms, expires_at_ms"
)
_PG_CLAIM: Final = f"""
INSERT INTO idempotency_keys ({_CLAIM_COLUMNS})
VALUES ($1, $2, $3, $4, '{Phase.PENDING.value}', $5, $6, $7, $8, $9, $10)
ON CONFLICT (account_id, key) DO UPDATE SET
    fingerprint = excluded.fingerprint, task_id = excluded.task_id, phase = excluded.phase,
    status = excluded.status, body = excluded.body, location = excluded.location,
    created_at_ms = excluded.created_at_ms, pending_until_ms = excluded.pending_until_ms,
    expires_at_ms = excluded.expires_at_ms
WHERE idempotency_keys.expires_at_ms <= excluded.created_at_ms
RETURNING 1
"""
_PG_LOCK_KEY: Final = "SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE"
_SQLITE_DROP_EXPIRED: Final = (
    "DELETE FROM idempotency_keys WHERE account_id = ? AND key = ? AND expires_at_ms <= ?"
)
_SQLITE_FIND_CLAIM: Final = "SELECT 1 FROM idempotency_keys WHERE account_id = ? AND key = ?"
_SQLITE_CLAIM: Final = f"""
INSERT INTO idempotency_keys ({_CLAIM_COLUMNS})
VALUES (?, ?, ?, ?, '{Phase.PENDING.value}', ?, ?, ?, ?, ?, ?)
"""


def _claim_values(new: NewTask, claim: Claim) -> tuple[Any, ...]:
    answer = claim.answer
    return (
        new.account_id,
        claim.key,
        claim.fingerprint,
        new.id,
        answer.status,
        answer.body,
        answer.location,
        claim.created_at_ms,
        claim.pending_until_ms,
        claim.expires_at_ms,
    )


async def insert(lane: PostgresLane | SqliteLane, new: NewTask, guard: Guard | None = None) -> bool:
    """Store the task and hold its cost; or raise (InsufficientBalance, KeyBudgetExceeded,
    RateLimited) and store nothing. False, storing nothing, when the guard's Idempotency-Key
    is already taken."""
    values = _values(new)
    refusal: Refusal | None
    if guard is not None:
        if isinstance(lane, PostgresLane):
            refusal = await _pg_insert_guarded(lane, values, new, guard)
        else:
            refusal = await lane.batcher("insert", functools.partial(_sqlite_insert, lane)).submit(
                (values, new, guard)
            )
    else:
        if isinstance(lane, PostgresLane):
            write = functools.partial(_pg_insert, lane)
        else:
            write = functools.partial(_sqlite_insert, lane)
        short = await lane.batcher("insert", write).submit(values)
        refusal = None if short is None else (_SHORT, short)
    if refusal is None:
        return True
    kind, figure = refusal
    if kind == _TAKEN:
        return False
    if kind == _IN_FLIGHT:
        raise RateLimited(
            f"this API key has {figure} tasks in flight, the most it may have; wait for one to end",
            retry_after_s=guard.retry_in_flight_s if guard else 1,
            code="concurrency_limit",
        )
    if kind == _OVER_BUDGET:
        budget = 0 if guard is None else guard.budget_micro_usdc or 0
        raise KeyBudgetExceeded(
            f"this task costs {usd(new.quote.cost_micro_usdc)} USD and this API key has spent "
            f"{usd(figure)} of its {usd(budget)} USD budget for the period"
        )
    raise InsufficientBalance(
        f"this task costs {new.quote.cost_micro_usdc} micro-USDC but the account has "
        f"{figure} micro-USDC available"
    )


class _Refused(Exception):
    """Rolls a guarded create's transaction back, carrying why."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal[0])
        self.refusal = refusal


async def _pg_insert_guarded(
    lane: PostgresLane, values: tuple[Any, ...], new: NewTask, guard: Guard
) -> Refusal | None:
    """One create in a transaction of its own: its Idempotency-Key claimed first (a repeat
    running at the same time waits here for this one to end, then finds the key taken), the
    key's row locked while its tasks are counted, then the task and its reservation."""
    async with lane.connection() as conn:
        try:
            async with conn.transaction():
                if guard.claim is not None:
                    claimed = await conn.fetchval(_PG_CLAIM, *_claim_values(new, guard.claim))
                    if claimed is None:
                        return (_TAKEN, 0)
                if guard.max_in_flight is not None or guard.budget_micro_usdc is not None:
                    await conn.execute(_PG_LOCK_KEY, new.key_id)
                    refusal = await _pg_limits(conn, new, guard)
                    if refusal is not None:
                        raise _Refused(refusal)
                if await conn.fetchval(_PG_INSERT, *values) is None:
                    raise _Refused(
                        (_SHORT, await conn.fetchval(_PG_AVAILABLE, new.account_id) or 0)
                    )
        except _Refused as refused:
            return refused.refusal
    return None


async def _pg_limits(conn: Any, new: NewTask, guard: Guard) -> Refusal | None:
    if guard.max_in_flight is not None:
        live = await conn.fetchval(_COUNT_IN_FLIGHT.format(p="$1"), new.key_id)
        if live >= guard.max_in_flight:
            return (_IN_FLIGHT, live)
    if guard.budget_micro_usdc is not None:
        spent = await conn.fetchval(_SPENT.format(p="$1", q="$2"), new.key_id, guard.budget_since_s)
        if spent + new.quote.cost_micro_usdc > guard.budget_micro_usdc:
            return (_OVER_BUDGET, spent)
    return None


def _sqlite_limits(conn: sqlite3.Connection, new: NewTask, guard: Guard) -> Refusal | None:
    if guard.claim is not None:
        claim = guard.claim
        conn.execute(_SQLITE_DROP_EXPIRED, (new.account_id, claim.key, claim.created_at_ms))
        if conn.execute(_SQLITE_FIND_CLAIM, (new.account_id, claim.key)).fetchone():
            return (_TAKEN, 0)
    if guard.max_in_flight is not None:
        live = conn.execute(_COUNT_IN_FLIGHT.format(p="?"), (new.key_id,)).fetchone()[0]
        if live >= guard.max_in_flight:
            return (_IN_FLIGHT, live)
    if guard.budget_micro_usdc is not None:
        spent = conn.execute(
            _SPENT.format(p="?", q="?"), (new.key_id, guard.budget_since_s)
        ).fetchone()[0]
        if spent + new.quote.cost_micro_usdc > guard.budget_micro_usdc:
            return (_OVER_BUDGET, spent)
    return None


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


async def _sqlite_insert(lane: SqliteLane, batch: list[Any]) -> list[Any]:
    """A batch of creates in one transaction of the writer thread, each as it would be alone:
    None for each one stored, else what its account has available (or, for a guarded create,
    why it was refused). A guarded create comes as (values, new task, guard): checked in the
    same transaction it is stored in, and SQLite has one writer at a time, so its counts hold."""
    return await lane.run(functools.partial(_sqlite_insert_all, batch))


def _sqlite_insert_all(batch: list[Any], conn: sqlite3.Connection) -> list[Any]:
    results: list[Any] = []
    with immediate(conn):
        for item in batch:
            guard: Guard | None = None
            if isinstance(item[0], tuple):
                values, new, guard = item
                refusal = _sqlite_limits(conn, new, guard)
                if refusal is not None:
                    results.append(refusal)
                    continue
            else:
                values = item
            account, cost = values[_ACCOUNT], values[_COST]
            if conn.execute(_SQLITE_HOLD, (cost, account, cost)).rowcount != 1:
                row = conn.execute(_SQLITE_AVAILABLE, (account,)).fetchone()
                available = int(row[0]) if row else 0
                results.append(available if guard is None else (_SHORT, available))
                continue
            conn.execute(_SQLITE_INSERT, values)
            conn.execute(_SQLITE_RESERVE, (account, values[_ID], cost, values[_CREATED]))
            if guard is not None and guard.claim is not None:
                conn.execute(_SQLITE_CLAIM, _claim_values(new, guard.claim))
            results.append(None)
    return results


def accept(
    lane: PostgresLane | SqliteLane, task_id: str, upstream_task_id: str, now_s: int
) -> asyncio.Future[None]:
    """Record the upstream's id for the task, unless one is recorded; done once written. Ids
    arriving together are written together: on PostgreSQL in one round trip on a connection
    that does not wait for the disk (see :meth:`.lanes.PostgresLane.grouped`), on SQLite in one
    transaction of the writer thread."""
    if isinstance(lane, PostgresLane):
        return lane.grouped(_PG_ACCEPT, (task_id, upstream_task_id, now_s))
    batcher = lane.batcher("accept", functools.partial(_sqlite_accept_all, lane))
    return batcher.post((upstream_task_id, now_s, task_id))


async def _sqlite_accept_all(lane: SqliteLane, calls: list[tuple[str, int, str]]) -> list[None]:
    def write(conn: sqlite3.Connection) -> list[None]:
        with immediate(conn):
            conn.executemany(_SQLITE_ACCEPT, calls)
        return [None] * len(calls)

    return await lane.run(write)
