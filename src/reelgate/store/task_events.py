"""Each task's changes of state, kept for its timeline (see :mod:`reelgate.domain.timeline`).

An event is written in the transaction that changes the task's state, by :mod:`.tasks`: the
one place a task's state changes. A task enters each state at most once, and the key
(task_id, state) makes a second record of one change impossible; writes skip it instead of
failing the transaction that made the change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.domain.task import TaskState
from reelgate.domain.timeline import DETAIL_LENGTH, TaskEvent
from reelgate.store.database import Database
from reelgate.store.schema import task_events, tasks


def _insert(conn: AsyncConnection) -> Any:
    """An INSERT that skips a state already recorded for its task."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(task_events)


async def entered(
    conn: AsyncConnection,
    task_id: str,
    state: TaskState,
    at_ms: int,
    progress: int,
    detail: str | None = None,
) -> None:
    """The task entered ``state`` in this transaction."""
    await conn.execute(
        _insert(conn)
        .values(
            task_id=task_id,
            state=state.value,
            at_ms=at_ms,
            progress=progress,
            detail=None if detail is None else detail[:DETAIL_LENGTH],
        )
        .on_conflict_do_nothing()
    )


async def moved(conn: AsyncConnection, task_ids: Sequence[str], now_ms: int) -> None:
    """Record, in one statement, the state of each of ``task_ids`` that this transaction moved
    to a new state at ``now_ms``: those whose current state began then. A move writes a state's
    start only when it changes the state (an advance within a state keeps it), and no state
    but waiting, which no move enters, begins at the task's creation."""
    if not task_ids:
        return
    chosen = sa.select(
        tasks.c.id,
        tasks.c.state,
        sa.literal(now_ms, sa.BigInteger),
        tasks.c.progress,
    ).where(
        tasks.c.id.in_(task_ids),
        tasks.c.state_since_ms == now_ms,
        tasks.c.state != TaskState.WAITING.value,
    )
    await conn.execute(
        _insert(conn)
        .from_select(["task_id", "state", "at_ms", "progress"], chosen)
        .on_conflict_do_nothing()
    )


async def of_task(db: Database, task_id: str) -> list[TaskEvent]:
    """The task's recorded changes, in the order they were written."""
    e = task_events
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(e.c.state, e.c.at_ms, e.c.progress, e.c.detail)
            .where(e.c.task_id == task_id)
            .order_by(e.c.at_ms)
        )
        return [
            TaskEvent(TaskState(row.state), row.at_ms, row.progress, row.detail) for row in rows
        ]
