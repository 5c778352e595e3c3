"""Tasks and the money that moves with them: reserve at create, settle once at the end."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.domain.pricing import Quote
from reelgate.domain.task import FINAL_STATES, BillingStatus, LedgerKind, Submission, TaskState
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


@dataclass(frozen=True, slots=True)
class NewTask:
    id: str
    account_id: str
    key_id: str
    model: str
    request: dict[str, Any]
    channel: str
    quote: Quote


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
