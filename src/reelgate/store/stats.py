"""Counts read from the database: tasks by state and money by ledger kind (the metrics), and
the recent creates and completions per minute (the console's dashboard)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from reelgate.domain.ids import first_id_at
from reelgate.store.database import Database
from reelgate.store.schema import SETTLED_SQL, ledger, tasks


@dataclass(frozen=True, slots=True)
class Totals:
    tasks_by_state: dict[str, int]
    micro_usdc_by_kind: dict[str, int]
    """Sums of the ledger's entries: the ledger is append-only, so each only ever grows."""


async def totals(db: Database) -> Totals:
    """Both, from one snapshot."""
    async with db.read() as conn:
        states = await conn.execute(
            sa.select(tasks.c.state, sa.func.count()).group_by(tasks.c.state)
        )
        by_state = {state: int(count) for state, count in states}
        kinds = await conn.execute(
            sa.select(ledger.c.kind, sa.func.sum(ledger.c.amount_micro_usdc)).group_by(
                ledger.c.kind
            )
        )
        by_kind = {kind: int(total or 0) for kind, total in kinds}
    return Totals(by_state, by_kind)


@dataclass(frozen=True, slots=True)
class Activity:
    """Per minute (Unix seconds // 60) since a time: tasks created, and tasks that ended."""

    creates: dict[int, int]
    completions: dict[int, int]


async def activity(db: Database, since_s: int) -> Activity:
    """Both read through indexes: creates by the tasks' ids (which begin with the time they
    were made), completions by the ledger's settlements, each written once when a task ends."""
    created_minute = (tasks.c.created_at // 60).label("minute")
    settled_minute = (ledger.c.created_at // 60).label("minute")
    async with db.read() as conn:
        created = await conn.execute(
            sa.select(created_minute, sa.func.count())
            .where(tasks.c.id >= first_id_at("task", since_s * 1000), tasks.c.created_at >= since_s)
            .group_by(created_minute)
        )
        creates = {int(minute): int(count) for minute, count in created}
        settled = await conn.execute(
            sa.select(settled_minute, sa.func.count())
            .where(sa.text(SETTLED_SQL), ledger.c.created_at >= since_s)
            .group_by(settled_minute)
        )
        completions = {int(minute): int(count) for minute, count in settled}
    return Activity(creates, completions)
