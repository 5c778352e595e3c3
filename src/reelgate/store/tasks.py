"""Tasks and the money that moves with them: reserve at create, settle once at the end."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.domain.pricing import Quote
from reelgate.domain.task import (
    FINAL_STATES,
    BillingStatus,
    LedgerKind,
    Submission,
    TaskState,
    can_move,
)
from reelgate.errors import InsufficientBalance
from reelgate.store import changes
from reelgate.store.database import Database
from reelgate.store.schema import accounts, ledger, tasks


@dataclass(frozen=True, slots=True)
class TaskRecord:
    id: str
    account_id: str
    key_id: str
    model: str
    state: TaskState
    progress: int
    request: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    channel: str
    upstream_task_id: str | None
    submission: Submission
    billing_status: BillingStatus
    quote: Quote
    created_at: int
    updated_at: int
    completed_at: int | None
    polls: int = 0
    deadline_at_ms: int | None = None
    state_since_ms: int | None = None


@dataclass(frozen=True, slots=True)
class NewTask:
    id: str
    account_id: str
    key_id: str
    model: str
    request: dict[str, Any]
    channel: str
    quote: Quote
    first_poll_at_ms: int
    deadline_at_ms: int


def _record(row: sa.RowMapping) -> TaskRecord:
    return TaskRecord(
        id=row["id"],
        account_id=row["account_id"],
        key_id=row["key_id"],
        model=row["model"],
        state=TaskState(row["state"]),
        progress=row["progress"],
        request=orjson.loads(row["request"]),
        result=None if row["result"] is None else orjson.loads(row["result"]),
        error=None if row["error"] is None else orjson.loads(row["error"]),
        channel=row["channel"],
        upstream_task_id=row["upstream_task_id"],
        submission=Submission(row["submission"]),
        billing_status=BillingStatus(row["billing_status"]),
        quote=Quote(
            tier=row["tier"],
            price_per_second_micro_usdc=row["price_per_second_micro_usdc"],
            duration=row["duration"],
            margin_ppm=row["margin_ppm"],
            cost_micro_usdc=row["cost_micro_usdc"],
        ),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
        polls=row["polls"],
        deadline_at_ms=row["deadline_at_ms"],
        state_since_ms=row["state_since_ms"],
    )


async def _ledger_entry(
    conn: AsyncConnection, account_id: str, task_id: str, kind: LedgerKind, amount: int, now: int
) -> None:
    await conn.execute(
        ledger.insert().values(
            account_id=account_id,
            task_id=task_id,
            kind=kind,
            amount_micro_usdc=amount,
            created_at=now,
        )
    )


async def _get(conn: AsyncConnection, task_id: str) -> TaskRecord | None:
    row = (await conn.execute(sa.select(tasks).where(tasks.c.id == task_id))).one_or_none()
    return None if row is None else _record(row._mapping)


class TaskStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, new: NewTask) -> TaskRecord:
        """Insert the task and reserve its cost in one transaction, or raise InsufficientBalance."""
        now = int(time.time())
        cost = new.quote.cost_micro_usdc
        async with self.db.write() as conn:
            # One conditional update both checks and holds the money, so concurrent creates on
            # one account can never reserve more than it has, on either database.
            reserved = await conn.execute(
                accounts.update()
                .where(
                    accounts.c.id == new.account_id,
                    accounts.c.balance_micro_usdc - accounts.c.reserved_micro_usdc >= cost,
                )
                .values(reserved_micro_usdc=accounts.c.reserved_micro_usdc + cost)
            )
            if reserved.rowcount != 1:
                available = await conn.scalar(
                    sa.select(accounts.c.balance_micro_usdc - accounts.c.reserved_micro_usdc).where(
                        accounts.c.id == new.account_id
                    )
                )
                raise InsufficientBalance(
                    f"this task costs {cost} micro-USDC but the account has {available or 0} "
                    "micro-USDC available"
                )
            await conn.execute(
                tasks.insert().values(
                    id=new.id,
                    account_id=new.account_id,
                    key_id=new.key_id,
                    model=new.model,
                    state=TaskState.WAITING,
                    progress=0,
                    request=orjson.dumps(new.request).decode(),
                    channel=new.channel,
                    billing_status=BillingStatus.RESERVED,
                    tier=new.quote.tier,
                    price_per_second_micro_usdc=new.quote.price_per_second_micro_usdc,
                    duration=new.quote.duration,
                    margin_ppm=new.quote.margin_ppm,
                    cost_micro_usdc=cost,
                    created_at=now,
                    updated_at=now,
                    next_poll_at_ms=new.first_poll_at_ms,
                    deadline_at_ms=new.deadline_at_ms,
                    state_since_ms=now * 1000,
                )
            )
            await _ledger_entry(conn, new.account_id, new.id, LedgerKind.RESERVE, cost, now)
            record = await _get(conn, new.id)
        assert record is not None
        return record

    async def get(self, task_id: str) -> TaskRecord | None:
        async with self.db.read() as conn:
            return await _get(conn, task_id)

    async def record_upstream_id(self, task_id: str, upstream_task_id: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id, tasks.c.upstream_task_id.is_(None))
                .values(
                    upstream_task_id=upstream_task_id,
                    submission=Submission.ACCEPTED,
                    updated_at=int(time.time()),
                )
            )

    async def record_submission_unknown(self, task_id: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id, tasks.c.submission == Submission.PENDING)
                .values(submission=Submission.UNKNOWN, updated_at=int(time.time()))
            )

    async def finish(
        self,
        task_id: str,
        state: TaskState,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> bool:
        """Move an unfinished task to ``success`` (commit) or ``fail`` (release) and settle it.

        The state change is a compare-and-swap: of any number of concurrent callers exactly
        one wins and moves the money, in the same transaction; the others get False.
        """
        if state not in FINAL_STATES:
            raise ValueError(f"{state} is not a final state")
        succeeded = state is TaskState.SUCCESS
        now = int(time.time())
        values: dict[str, Any] = {
            "state": state,
            "billing_status": BillingStatus.COMMITTED if succeeded else BillingStatus.RELEASED,
            "updated_at": now,
            "completed_at": now,
            "state_since_ms": int(time.time() * 1000),
            "next_poll_at_ms": None,
            "lease_owner": None,
            "lease_until_ms": None,
        }
        if succeeded:
            values |= {"progress": 100, "result": orjson.dumps(result or {}).decode()}
        else:
            values["error"] = orjson.dumps(error or {}).decode()
        async with self.db.write() as conn:
            won = (
                await conn.execute(
                    tasks.update()
                    .where(tasks.c.id == task_id, tasks.c.state.not_in(list(FINAL_STATES)))
                    .values(**values)
                    .returning(tasks.c.account_id, tasks.c.cost_micro_usdc)
                )
            ).one_or_none()
            if won is None:
                return False
            account_id, cost = won
            kind = LedgerKind.COMMIT if succeeded else LedgerKind.RELEASE
            await _ledger_entry(conn, account_id, task_id, kind, cost, now)
            balance = accounts.c.balance_micro_usdc - (cost if succeeded else 0)
            await conn.execute(
                accounts.update()
                .where(accounts.c.id == account_id)
                .values(
                    balance_micro_usdc=balance,
                    reserved_micro_usdc=accounts.c.reserved_micro_usdc - cost,
                )
            )
            await changes.publish(conn, changes.TASK, task_id)
            return True

    async def advance(self, task_id: str, state: TaskState, progress: int) -> bool:
        """Move an unfinished task forward to a non-final state, or raise its progress within
        its state. A compare-and-swap: states never go back, progress never falls."""
        if state in FINAL_STATES:
            raise ValueError("final states are reached through finish()")
        earlier = [s for s in TaskState if not s.is_final and can_move(s, state)]
        now_ms = int(time.time() * 1000)
        async with self.db.write() as conn:
            moved = await conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id, tasks.c.state.in_(earlier))
                .values(
                    state=state,
                    progress=sa.func.max(tasks.c.progress, progress)
                    if conn.dialect.name == "sqlite"
                    else sa.func.greatest(tasks.c.progress, progress),
                    state_since_ms=now_ms,
                    updated_at=now_ms // 1000,
                )
            )
            if moved.rowcount == 0:
                moved = await conn.execute(
                    tasks.update()
                    .where(
                        tasks.c.id == task_id,
                        tasks.c.state == state,
                        tasks.c.progress < progress,
                    )
                    .values(progress=progress, updated_at=now_ms // 1000)
                )
            if moved.rowcount:
                await changes.publish(conn, changes.TASK, task_id)
            return bool(moved.rowcount)

    async def claim_due(self, owner: str, limit: int, lease_ms: int) -> list[TaskRecord]:
        """Lease up to ``limit`` unfinished tasks that are due. On PostgreSQL, engines skip the rows
        another engine is claiming, so no task is handed to two engines at once."""
        now_ms = int(time.time() * 1000)
        async with self.db.write() as conn:
            due = (
                sa.select(tasks.c.id)
                .where(
                    tasks.c.state.not_in(list(FINAL_STATES)),
                    tasks.c.next_poll_at_ms <= now_ms,
                    sa.or_(tasks.c.lease_until_ms.is_(None), tasks.c.lease_until_ms < now_ms),
                )
                .order_by(tasks.c.next_poll_at_ms)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            rows = await conn.execute(
                tasks.update()
                .where(tasks.c.id.in_(due.scalar_subquery()))
                .values(lease_owner=owner, lease_until_ms=now_ms + lease_ms)
                .returning(*tasks.c)
            )
            return [_record(row._mapping) for row in rows]

    async def reschedule(self, task_id: str, owner: str, next_poll_at_ms: int) -> None:
        """Give the lease back and say when the task is next due."""
        async with self.db.write() as conn:
            await conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id, tasks.c.lease_owner == owner)
                .values(
                    next_poll_at_ms=next_poll_at_ms,
                    polls=tasks.c.polls + 1,
                    lease_owner=None,
                    lease_until_ms=None,
                )
            )

    async def next_due_ms(self) -> int | None:
        async with self.db.read() as conn:
            value: int | None = await conn.scalar(
                sa.select(sa.func.min(tasks.c.next_poll_at_ms)).where(
                    tasks.c.state.not_in(list(FINAL_STATES))
                )
            )
            return value

    async def by_upstream_id(self, channel: str, upstream_task_id: str) -> TaskRecord | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(tasks).where(
                        tasks.c.channel == channel, tasks.c.upstream_task_id == upstream_task_id
                    )
                )
            ).one_or_none()
            return None if row is None else _record(row._mapping)
