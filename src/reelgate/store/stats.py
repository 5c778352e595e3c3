"""Counts the metrics read from the database: tasks by state, and money by ledger kind."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from reelgate.store.database import Database
from reelgate.store.schema import ledger, tasks


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
