"""The task store's compare-and-swaps and the engine's schedule, on both databases."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event

from reelgate.domain.ids import new_id
from reelgate.domain.lifecycle import Advance, CheckOutcome, Fail, Made
from reelgate.domain.pricing import Quote
from reelgate.domain.task import NewTask, TaskState
from reelgate.errors import InsufficientBalance
from reelgate.store.accounts import AccountStore
from reelgate.store.audit import audit
from reelgate.store.database import Database
from reelgate.store.tasks import TaskStore
from tests.conftest import open_database

QUOTE = Quote("480p_no_video", 77_500, 4, 1_000_000, 310_000)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = open_database(database_url)
    yield database
    await database.dispose()


async def _tasks(db: Database, count: int, due_in_ms: int = 0) -> list[str]:
    accounts = AccountStore(db)
    account = await accounts.create(f"acct-{new_id('x')[-6:]}", 100_000_000)
    key = await accounts.add_key(account.name, new_id("hash"), "rg_test")
    store, now_ms, ids = TaskStore(db), int(time.time() * 1000), []
    for _ in range(count):
        record = await store.create(
            NewTask(
                id=new_id("task"),
                account_id=account.id,
                key_id=key.id,
                model="seedance-2-fast",
                request={"prompt": "a boat"},
                channel="kie",
                quote=QUOTE,
                created_at_ms=now_ms,
                first_poll_at_ms=now_ms + due_in_ms,
                deadline_at_ms=now_ms + 3_600_000,
            )
        )
        ids.append(record.id)
    return ids


async def test_progress_moves_forward_only_and_never_falls(db: Database) -> None:
    store = TaskStore(db)
    [task_id] = await _tasks(db, 1)
    generating = TaskState.GENERATING
    assert await store.apply(task_id, Advance(generating, 40))
    assert not await store.apply(task_id, Advance(TaskState.QUEUING, 60)), "a state back"
    assert not await store.apply(task_id, Advance(generating, 30)), "progress down"
    assert not await store.apply(task_id, Advance(generating, 40)), "a repeat"
    assert await store.apply(task_id, Advance(generating, 41))
    record = await store.get(task_id)
    assert record is not None
    assert (record.state, record.progress) == (generating, 41)


async def test_a_finished_task_takes_no_progress(db: Database) -> None:
    store = TaskStore(db)
    [task_id] = await _tasks(db, 1)
    assert await store.apply(task_id, Fail({"code": "x", "message": "y"}))
    assert not await store.apply(task_id, Advance(TaskState.GENERATING, 50))
    record = await store.get(task_id)
    assert record is not None
    assert (record.state, record.progress) == (TaskState.FAIL, 0)


async def test_checks_written_together_each_keep_the_rules_and_give_leases_back(
    db: Database,
) -> None:
    store = TaskStore(db)
    ids = await _tasks(db, 3)
    claimed = await store.claim_due("engine-a", 10, 60_000)
    assert sorted(c.task.id for c in claimed) == sorted(ids)
    assert await store.claim_due("engine-b", 10, 60_000) == [], "leased tasks are not handed out"
    assert await store.apply(ids[2], Advance(TaskState.GENERATING, 50))
    soon = int(time.time() * 1000) + 60_000
    await store.record_checks(
        "engine-a",
        [
            CheckOutcome(ids[0], soon, Advance(TaskState.QUEUING, 5)),
            CheckOutcome(ids[1], soon),
            CheckOutcome(ids[2], soon, Advance(TaskState.QUEUING, 10)),  # behind: no effect
        ],
    )
    records = [await store.get(task_id) for task_id in ids]
    assert [(r.state, r.progress, r.polls) for r in records if r] == [
        (TaskState.QUEUING, 5, 1),
        (TaskState.WAITING, 0, 1),
        (TaskState.GENERATING, 50, 1),
    ]
    assert await store.claim_due("engine-b", 10, 60_000) == [], "not due until their next time"


async def test_a_check_never_postpones_a_task_a_callback_made_due(db: Database) -> None:
    store = TaskStore(db)
    [task_id] = await _tasks(db, 1)
    [claimed] = await store.claim_due("engine-a", 1, 60_000)
    assert await store.apply(task_id, Made(("https://cdn.example/v.mp4",)))
    later = int(time.time() * 1000) + 60_000
    await store.record_checks("engine-a", [CheckOutcome(claimed.task.id, later)])
    [again] = await store.claim_due("engine-a", 1, 60_000)
    assert again.task.origin_urls == ("https://cdn.example/v.mp4",)


async def test_a_claim_tells_when_each_task_was_due(db: Database) -> None:
    """The engine's due-lag metric is how long after its time each task was claimed."""
    store = TaskStore(db)
    ids = await _tasks(db, 2, due_in_ms=-1_500)
    claimed = await store.claim_due("engine-a", 10, 60_000)
    assert sorted(c.task.id for c in claimed) == sorted(ids)
    for claim in claimed:
        record = await store.get(claim.task.id)
        assert record is not None
        assert claim.due_at_ms is not None
        assert claim.claimed_at_ms - claim.due_at_ms >= 1_500
        assert claim.lag_s >= 1.5
    # The lease moved the schedule on: what was returned is the time before the claim.
    assert all(c.due_at_ms is not None and c.due_at_ms < c.claimed_at_ms for c in claimed)


async def test_another_engines_outcome_does_not_release_a_lease(db: Database) -> None:
    store = TaskStore(db)
    [task_id] = await _tasks(db, 1)
    await store.claim_due("engine-a", 1, 60_000)
    await store.record_checks("engine-b", [CheckOutcome(task_id, 0)])
    record = await store.get(task_id)
    assert record is not None
    assert record.polls == 0
    assert await store.claim_due("engine-b", 1, 60_000) == []


async def test_claiming_due_tasks_uses_the_partial_index(db: Database) -> None:
    """With 100,000 tasks in flight a scan would cost tens of milliseconds per claim."""
    await _tasks(db, 3)
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "UPDATE TASKS SET" in statement.upper():  # on SQLite after a WITH
            seen.append((statement, params))

    event.listen(db.pool.sync_engine, "before_cursor_execute", capture)
    try:
        await TaskStore(db).claim_due("engine-a", 10, 60_000)
    finally:
        event.remove(db.pool.sync_engine, "before_cursor_execute", capture)
    [(statement, params)] = seen
    async with db.pool.connect() as conn:
        if db.is_sqlite:
            explain = f"EXPLAIN QUERY PLAN {statement}"
        else:
            await conn.exec_driver_sql("SET enable_seqscan = off")
            explain = f"EXPLAIN {statement}"
        rows = await conn.exec_driver_sql(explain, params)
        plan = " ".join(str(row[-1]) for row in rows)
    assert "ix_tasks_due" in plan, plan


async def test_creates_arriving_together_hold_exactly_what_each_account_covers(
    db: Database,
) -> None:
    """Creates that arrive at once are stored together (in one statement on PostgreSQL):
    each account gets exactly as many tasks as its balance covers, as one by one."""
    accounts = AccountStore(db)
    cost = QUOTE.cost_micro_usdc
    covered = {"rich": 10, "some": 3, "none": 0}
    owners = {}
    for name, tasks in covered.items():
        account = await accounts.create(name, tasks * cost + cost // 2)
        key = await accounts.add_key(name, new_id("hash"), "rg_test")
        owners[name] = (account.id, key.id)
    now_ms = int(time.time() * 1000)
    store = TaskStore(db)

    async def create(name: str) -> str | None:
        account_id, key_id = owners[name]
        try:
            record = await store.create(
                NewTask(
                    id=new_id("task"),
                    account_id=account_id,
                    key_id=key_id,
                    model="seedance-2-fast",
                    request={"prompt": "a boat"},
                    channel="kie",
                    quote=QUOTE,
                    created_at_ms=now_ms,
                    first_poll_at_ms=now_ms + 60_000,
                    deadline_at_ms=now_ms + 3_600_000,
                )
            )
        except InsufficientBalance:
            return None
        return record.id

    names = [name for name in covered for _ in range(10)]
    created = await asyncio.gather(*(create(name) for name in names))
    accepted = {name: 0 for name in covered}
    for name, task_id in zip(names, created, strict=True):
        if task_id is not None:
            accepted[name] += 1
            assert await store.get(task_id) is not None
    assert accepted == covered
    for name, tasks in covered.items():
        account = await accounts.get(name)
        assert account.reserved_micro_usdc == tasks * cost
    assert await audit(db) == []
