"""Tasks and the money that moves with them: reserve at create, settle once at the end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.domain.changes import DUE, TASK
from reelgate.domain.eta import Finished
from reelgate.domain.ids import new_id
from reelgate.domain.lifecycle import Advance, CheckOutcome, Decision, Fail, Made, Succeed
from reelgate.domain.listing import TaskFilter
from reelgate.domain.pricing import Quote
from reelgate.domain.task import (
    FINAL_STATES,
    ORDER,
    BillingStatus,
    Delivery,
    LedgerKind,
    MediaFile,
    NewTask,
    Submission,
    TaskRecord,
    TaskState,
)
from reelgate.domain.webhooks import DeliveryStatus
from reelgate.store import accepting, changes, leases, task_events
from reelgate.store.database import Database
from reelgate.store.schema import (
    SUCCEEDED_SQL,
    UNFINISHED_SQL,
    accounts,
    ledger,
    tasks,
    webhook_deliveries,
)

# Spelled as the partial indexes ix_tasks_due and ix_tasks_succeeded are, so that both
# databases use them to find due tasks and recent successes.
_UNFINISHED = sa.text(UNFINISHED_SQL)
_SUCCEEDED = sa.text(SUCCEEDED_SQL)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A task an engine leased to check, and how late that was."""

    task: TaskRecord
    due_at_ms: int | None
    claimed_at_ms: int

    @property
    def lag_s(self) -> float:
        """How long after it was due the task was claimed."""
        if self.due_at_ms is None:
            return 0.0
        return max(0, self.claimed_at_ms - self.due_at_ms) / 1000


# The delivery's columns as read alongside a task, under names that cannot clash with its own.
_DELIVERY_COLUMNS = tuple(
    webhook_deliveries.c[name].label(f"wh_{name}")
    for name in (
        "webhook_id",
        "status",
        "attempts",
        "last_response_code",
        "last_error",
        "next_attempt_at_ms",
        "delivered_at_ms",
    )
)


def _delivery(row: sa.RowMapping) -> Delivery | None:
    if row.get("wh_webhook_id") is None:
        return None
    return Delivery(
        webhook_id=row["wh_webhook_id"],
        status=DeliveryStatus(row["wh_status"]),
        attempts=row["wh_attempts"],
        last_response_code=row["wh_last_response_code"],
        last_error=row["wh_last_error"],
        next_attempt_at_ms=row["wh_next_attempt_at_ms"],
        delivered_at_ms=row["wh_delivered_at_ms"],
    )


def _json_or_none(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _record(row: sa.RowMapping) -> TaskRecord:
    origin = _json_or_none(row["origin_urls"])
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
        origin_urls=None if origin is None else tuple(origin),
        media=tuple(MediaFile(**item) for item in _json_or_none(row["media"]) or ()),
        delivery=_delivery(row),
        request_id=row["request_id"],
        charge_micro_usdc=row["charge_micro_usdc"],
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
    query = (
        sa.select(tasks, *_DELIVERY_COLUMNS)
        .select_from(tasks.outerjoin(webhook_deliveries))
        .where(tasks.c.id == task_id)
    )
    row = (await conn.execute(query)).one_or_none()
    return None if row is None else _record(row._mapping)


def _least(conn: AsyncConnection, *values: Any) -> Any:
    return (sa.func.min if conn.dialect.name == "sqlite" else sa.func.least)(*values)


def _greatest(conn: AsyncConnection, *values: Any) -> Any:
    return (sa.func.max if conn.dialect.name == "sqlite" else sa.func.greatest)(*values)


_RANK = sa.case(
    {state.value: rank for state, rank in ORDER.items()}, value=tasks.c.state, else_=len(ORDER)
)


def _advance(conn: AsyncConnection) -> sa.Update:
    """The compare-and-swap that moves a task forward, for one or many tasks (executemany)."""
    state: sa.BindParameter[str] = sa.bindparam("b_state")
    progress: sa.BindParameter[int] = sa.bindparam("b_progress")
    return (
        tasks.update()
        .where(
            tasks.c.id == sa.bindparam("b_id"),
            sa.or_(
                sa.bindparam("b_rank") > _RANK,
                sa.and_(tasks.c.state == state, tasks.c.progress < progress),
            ),
        )
        .values(
            state=state,
            progress=_greatest(conn, tasks.c.progress, progress),
            state_since_ms=sa.case(
                (tasks.c.state == state, tasks.c.state_since_ms), else_=sa.bindparam("b_now_ms")
            ),
            updated_at=sa.bindparam("b_now_s"),
        )
    )


def _advance_params(task_id: str, move: Advance, now_ms: int) -> dict[str, Any]:
    if move.state in FINAL_STATES:
        raise ValueError("final states are reached through finish()")
    return {
        "b_id": task_id,
        "b_state": move.state.value,
        "b_rank": ORDER[move.state],
        "b_progress": move.progress,
        "b_now_ms": now_ms,
        "b_now_s": now_ms // 1000,
    }


def _now_ms() -> int:
    return int(time.time() * 1000)


class TaskStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, new: NewTask, guard: accepting.Guard | None = None) -> TaskRecord | None:
        """Insert the task and reserve its cost in one transaction, or raise InsufficientBalance
        (see :mod:`.accepting`); None, storing nothing, when the guard's Idempotency-Key is
        taken."""
        if not await accepting.insert(self.db.lane, new, guard):
            return None
        return new.as_stored()

    async def get(self, task_id: str) -> TaskRecord | None:
        async with self.db.read() as conn:
            return await _get(conn, task_id)

    def record_upstream_id(self, task_id: str, upstream_task_id: str) -> asyncio.Future[None]:
        """The upstream accepted the task under this id: the first id recorded stays (see
        :mod:`.accepting`). Queued at once; done once written."""
        return accepting.accept(self.db.lane, task_id, upstream_task_id, int(time.time()))

    async def switch_channel(
        self, task_id: str, from_channel: str, to_channel: str, quote: Quote, charge: int
    ) -> bool:
        """Before a create is retried on another channel: the task is that channel's from now
        on, priced at its tier price and margin, ``charge`` being what a success will commit
        (at most the reservation, which stays as it was). Only a task still unsent to any
        upstream moves; True when this call moved it."""
        async with self.db.write() as conn:
            moved = await conn.execute(
                tasks.update()
                .where(
                    tasks.c.id == task_id,
                    tasks.c.channel == from_channel,
                    tasks.c.upstream_task_id.is_(None),
                    tasks.c.submission == Submission.PENDING,
                    _UNFINISHED,
                )
                .values(
                    channel=to_channel,
                    price_per_second_micro_usdc=quote.price_per_second_micro_usdc,
                    margin_ppm=quote.margin_ppm,
                    charge_micro_usdc=charge,
                    updated_at=int(time.time()),
                )
            )
            return bool(moved.rowcount)

    async def record_submission_unknown(self, task_id: str) -> None:
        """The create was sent but its answer never came (or will never come: the process that
        waited for it died): the task may exist upstream and is never sent again."""
        async with self.db.write() as conn:
            await conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id, tasks.c.submission == Submission.PENDING)
                .values(submission=Submission.UNKNOWN, updated_at=int(time.time()))
            )

    async def apply(self, task_id: str, decision: Decision | Succeed) -> bool:
        """Carry out a decision of :mod:`reelgate.domain.lifecycle`; True when it changed the
        task (False when another caller got there first, or it changes nothing)."""
        if isinstance(decision, Advance):
            return await self._advance(task_id, decision)
        if isinstance(decision, Made):
            return await self._record_origin(task_id, decision.urls)
        if isinstance(decision, Fail | Succeed):
            return await self._finish(task_id, decision)
        return False

    async def _finish(self, task_id: str, end: Succeed | Fail) -> bool:
        """Move an unfinished task to ``success`` (commit) or ``fail`` (release) and settle it.

        The state change is a compare-and-swap: of any number of concurrent callers exactly
        one wins and moves the money, in the same transaction; the others get False. The winner
        also records the change for the task's timeline, and queues the client's webhook, when
        the task has a callBackUrl and the decision says to notify (a create the upstream
        refused is answered at once instead).
        """
        succeeded = isinstance(end, Succeed)
        now_ms = _now_ms()
        now = now_ms // 1000
        state = TaskState.SUCCESS if succeeded else TaskState.FAIL
        values: dict[str, Any] = {
            "state": state,
            "billing_status": BillingStatus.COMMITTED if succeeded else BillingStatus.RELEASED,
            "updated_at": now,
            "completed_at": now,
            "state_since_ms": now_ms,
            "next_poll_at_ms": None,
            "lease_owner": None,
            "lease_until_ms": None,
        }
        if isinstance(end, Succeed):
            values |= {
                "progress": 100,
                "result": orjson.dumps(end.result).decode(),
                "media": orjson.dumps(end.media).decode(),
            }
        else:
            values["error"] = orjson.dumps(end.error).decode()
        notify = succeeded or (isinstance(end, Fail) and end.notify)
        async with self.db.write() as conn:
            won = (
                await conn.execute(
                    tasks.update()
                    .where(tasks.c.id == task_id, tasks.c.state.not_in(list(FINAL_STATES)))
                    .values(**values)
                    .returning(
                        tasks.c.account_id,
                        tasks.c.cost_micro_usdc,
                        tasks.c.request,
                        tasks.c.charge_micro_usdc,
                        tasks.c.progress,
                    )
                )
            ).one_or_none()
            if won is None:
                return False
            account_id, cost, request, charge, progress = won
            await task_events.entered(
                conn,
                task_id,
                state,
                now_ms,
                progress,
                None if isinstance(end, Succeed) else end.error.get("code"),
            )
            paid = (cost if charge is None else min(charge, cost)) if succeeded else 0
            if succeeded:
                await _ledger_entry(conn, account_id, task_id, LedgerKind.COMMIT, paid, now)
            if not succeeded or paid < cost:
                # A failure releases it all; a success on a cheaper channel, the difference.
                await _ledger_entry(conn, account_id, task_id, LedgerKind.RELEASE, cost - paid, now)
            balance = accounts.c.balance_micro_usdc - paid
            await conn.execute(
                accounts.update()
                .where(accounts.c.id == account_id)
                .values(
                    balance_micro_usdc=balance,
                    reserved_micro_usdc=accounts.c.reserved_micro_usdc - cost,
                )
            )
            callback_url = orjson.loads(request).get("callBackUrl")
            if notify and callback_url:
                await conn.execute(
                    webhook_deliveries.insert().values(
                        task_id=task_id,
                        account_id=account_id,
                        url=callback_url,
                        webhook_id=new_id("msg"),
                        status=DeliveryStatus.PENDING,
                        attempts=0,
                        created_at_ms=now_ms,
                        next_attempt_at_ms=now_ms,
                    )
                )
            await changes.publish(conn, TASK, task_id)
            return True

    async def _advance(self, task_id: str, move: Advance) -> bool:
        """Move an unfinished task forward to a non-final state, or raise its progress within
        its state. A compare-and-swap: states never go back, progress never falls."""
        now_ms = _now_ms()
        async with self.db.write() as conn:
            moved = await conn.execute(_advance(conn), [_advance_params(task_id, move, now_ms)])
            if moved.rowcount:
                await task_events.moved(conn, [task_id], now_ms)
                await changes.publish(conn, TASK, task_id)
            return bool(moved.rowcount)

    async def _record_origin(self, task_id: str, urls: tuple[str, ...]) -> bool:
        """The upstream made the video: keep where it is and make the task due at once, so an
        engine copies it. True when this call recorded it (the first report wins)."""
        now_ms = _now_ms()
        async with self.db.write() as conn:
            recorded = await conn.execute(
                tasks.update()
                .where(
                    tasks.c.id == task_id,
                    _UNFINISHED,
                    tasks.c.origin_urls.is_(None),
                )
                .values(
                    origin_urls=orjson.dumps(urls).decode(),
                    next_poll_at_ms=_least(conn, tasks.c.next_poll_at_ms, now_ms),
                )
            )
            if recorded.rowcount:
                await changes.publish(conn, DUE, task_id)
            return bool(recorded.rowcount)

    async def make_due(self, task_id: str) -> bool:
        """Check the task as soon as an engine can (its upstream called about it)."""
        now_ms = _now_ms()
        async with self.db.write() as conn:
            updated = await conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id, _UNFINISHED)
                .values(next_poll_at_ms=_least(conn, tasks.c.next_poll_at_ms, now_ms))
            )
            if updated.rowcount:
                await changes.publish(conn, DUE, task_id)
            return bool(updated.rowcount)

    async def record_checks(self, owner: str, outcomes: Sequence[CheckOutcome]) -> None:
        """Write what many checks decided, in one transaction: each task's progress (the same
        compare-and-swap as an :class:`Advance` applied alone) and the changes of state among
        them (see :mod:`.task_events`), then when it is next due, giving its lease back.
        Batching these is what lets one engine keep thousands of tasks checked."""
        if not outcomes:
            return
        now_ms = _now_ms()
        moves = [_advance_params(o.task_id, o.advance, now_ms) for o in outcomes if o.advance]
        async with self.db.write() as conn:
            if moves:
                await conn.execute(_advance(conn), moves)
                moved = [m["b_id"] for m in moves]
                # The batch's changes of state, in one statement as well.
                await task_events.moved(conn, moved, now_ms)
                # Announced whether or not the swap won: a needless refresh is harmless.
                await changes.publish_many(conn, TASK, moved)
            await conn.execute(
                tasks.update()
                .where(
                    tasks.c.id == sa.bindparam("b_id"),
                    tasks.c.lease_owner == sa.bindparam("b_owner"),
                )
                .values(
                    # Never later than someone else (a callback with the result) asked for.
                    next_poll_at_ms=_least(conn, tasks.c.next_poll_at_ms, sa.bindparam("b_next")),
                    polls=tasks.c.polls + 1,
                    lease_owner=None,
                    lease_until_ms=None,
                ),
                [
                    {"b_id": o.task_id, "b_owner": owner, "b_next": o.next_poll_at_ms}
                    for o in outcomes
                ],
            )

    async def claim_due(self, owner: str, limit: int, lease_ms: int) -> list[Claimed]:
        """Lease up to ``limit`` unfinished tasks that are due (see :mod:`.leases`), each with
        when it was due. A leased task is due again when its lease ends, so that the task of
        an engine that died is picked up by another."""
        now_ms = _now_ms()
        async with self.db.write() as conn:
            leasing, was_due = leases.claim(
                conn,
                tasks,
                key=tasks.c.id,
                due=_UNFINISHED,
                due_at=tasks.c.next_poll_at_ms,
                now_ms=now_ms,
                limit=limit,
                lease={
                    "lease_owner": owner,
                    "lease_until_ms": now_ms + lease_ms,
                    "next_poll_at_ms": now_ms + lease_ms,
                },
            )
            rows = await conn.execute(leasing.returning(*tasks.c, was_due.label("was_due_at")))
            return [Claimed(_record(row._mapping), row.was_due_at, now_ms) for row in rows]

    async def recent_successes(self, model: str, since_s: int, limit: int) -> list[Finished]:
        """How long the model's most recent successes (completed since ``since_s``) took."""
        took = tasks.c.completed_at - tasks.c.created_at
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(tasks.c.tier, tasks.c.duration, took)
                .where(_SUCCEEDED, tasks.c.model == model, tasks.c.completed_at >= since_s)
                .order_by(tasks.c.completed_at.desc())
                .limit(limit)
            )
            return [Finished(tier, duration, float(seconds)) for tier, duration, seconds in rows]

    async def lease(self, task_id: str, owner: str, lease_ms: int) -> TaskRecord | None:
        """Lease one unfinished task now, whenever it is due, unless someone holds it: the
        task, or None. Its schedule stays as it was."""
        now_ms = _now_ms()
        async with self.db.write() as conn:
            leased = await conn.execute(
                tasks.update()
                .where(
                    tasks.c.id == task_id,
                    _UNFINISHED,
                    sa.or_(tasks.c.lease_until_ms.is_(None), tasks.c.lease_until_ms < now_ms),
                )
                .values(lease_owner=owner, lease_until_ms=now_ms + lease_ms)
                .returning(*tasks.c)
            )
            row = leased.one_or_none()
            return None if row is None else _record(row._mapping)

    async def release(self, task_id: str, owner: str) -> None:
        """Give back a lease taken with :meth:`lease`."""
        async with self.db.write() as conn:
            await conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id, tasks.c.lease_owner == owner)
                .values(lease_owner=None, lease_until_ms=None)
            )

    async def find(self, where: TaskFilter, after: str | None, limit: int) -> list[TaskRecord]:
        """Up to ``limit`` tasks, newest first (by id), those before ``after`` when it is given.
        The account's index is walked only over the ids the creation window allows."""
        t = tasks
        conditions: list[sa.ColumnElement[bool]] = []
        if where.account_id is not None:
            conditions.append(t.c.account_id == where.account_id)
        if where.key_id is not None:
            conditions.append(t.c.key_id == where.key_id)
        if where.state is not None:
            conditions.append(t.c.state == where.state.value)
        if where.model is not None:
            conditions.append(t.c.model == where.model)
        if where.channel is not None:
            conditions.append(t.c.channel == where.channel)
        low, high = where.id_range()
        if where.created_after is not None:
            conditions += [t.c.created_at > where.created_after, t.c.id >= low]
        if where.created_before is not None:
            conditions += [t.c.created_at < where.created_before, t.c.id < high]
        if after is not None:
            conditions.append(t.c.id < after)
        query = (
            sa.select(t, *_DELIVERY_COLUMNS)
            .select_from(t.outerjoin(webhook_deliveries))
            .where(*conditions)
            .order_by(t.c.id.desc())
            .limit(limit)
        )
        async with self.db.read() as conn:
            return [_record(row._mapping) for row in await conn.execute(query)]
