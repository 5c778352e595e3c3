"""Statements and usage, read from the ledger (and the tasks its entries name)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from reelgate.domain.task import LedgerKind, TaskState
from reelgate.domain.usage import (
    SECONDS_PER_DAY,
    GroupBy,
    LedgerEntry,
    LedgerFilter,
    UsageFigures,
    UsageQuery,
    UsageRow,
    day_label,
)
from reelgate.store.database import Database
from reelgate.store.schema import (
    COMMIT_SQL,
    RELEASE_SQL,
    RESERVE_SQL,
    SETTLED_SQL,
    accounts,
    ledger,
    tasks,
)

# Spelled as the partial indexes on settlements are, so that both databases use them.
_SETTLED = sa.text(SETTLED_SQL)


def _entry(row: sa.RowMapping) -> LedgerEntry:
    return LedgerEntry(
        id=row["id"],
        account_id=row["account_id"],
        task_id=row["task_id"],
        kind=LedgerKind(row["kind"]),
        amount_micro_usdc=row["amount_micro_usdc"],
        created_at=row["created_at"],
        note=row["note"],
    )


def _sum_if(kind: LedgerKind, value: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((ledger.c.kind == kind, value), else_=0)), 0)


_GROUPS: dict[GroupBy, sa.ColumnElement[Any]] = {
    # Unix seconds are never negative: integer division is the day, on both databases. A
    # literal, not a parameter: the grouped expression must be the selected one, to the letter.
    GroupBy.DAY: ledger.c.created_at // sa.literal_column(str(SECONDS_PER_DAY), sa.BigInteger),
    GroupBy.MODEL: tasks.c.model,
    GroupBy.KEY: tasks.c.key_id,
    GroupBy.ACCOUNT: accounts.c.name,
}


class UsageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def task_entries(self, task_id: str) -> list[LedgerEntry]:
        """A task's entries, oldest first: its reservation and what settled it (a commit, a
        release, or both after a failover to a cheaper channel)."""
        # One part per partial unique index on task_id, its condition spelled as the index's
        # (a bound parameter would not match it): each part is one index lookup.
        parts = [
            sa.select(ledger).where(ledger.c.task_id == task_id, sa.text(condition))
            for condition in (RESERVE_SQL, COMMIT_SQL, RELEASE_SQL)
        ]
        query = sa.union_all(*parts).subquery()
        async with self.db.read() as conn:
            rows = await conn.execute(sa.select(query).order_by(query.c.id))
            return [_entry(row._mapping) for row in rows]

    async def entries(
        self, where: LedgerFilter, after: int | None, limit: int
    ) -> list[LedgerEntry]:
        """Up to ``limit`` of the account's entries, newest first, those before ``after``."""
        conditions = [ledger.c.account_id == where.account_id]
        if where.kind is not None:
            conditions.append(ledger.c.kind == where.kind.value)
        if where.created_after is not None:
            conditions.append(ledger.c.created_at > where.created_after)
        if where.created_before is not None:
            conditions.append(ledger.c.created_at < where.created_before)
        if after is not None:
            conditions.append(ledger.c.id < after)
        query = sa.select(ledger).where(*conditions).order_by(ledger.c.id.desc()).limit(limit)
        async with self.db.read() as conn:
            return [_entry(row._mapping) for row in await conn.execute(query)]

    async def usage(self, query: UsageQuery) -> list[UsageRow]:
        """The settlements of the period, summed per group, in the group's order."""
        group = _GROUPS[query.group_by].label("grp")
        committed = ledger.c.kind == LedgerKind.COMMIT.value
        released = ledger.c.kind == LedgerKind.RELEASE.value
        joined = ledger.join(tasks, tasks.c.id == ledger.c.task_id)
        if query.group_by is GroupBy.ACCOUNT:
            joined = joined.join(accounts, accounts.c.id == ledger.c.account_id)
        conditions: list[sa.ColumnElement[bool]] = [
            sa.and_(_SETTLED),
            ledger.c.created_at >= query.from_s,
        ]
        if query.to_s is not None:
            conditions.append(ledger.c.created_at < query.to_s)
        if query.account_id is not None:
            conditions.append(ledger.c.account_id == query.account_id)
        statement = (
            sa.select(
                group,
                sa.func.count().filter(committed),
                # Failed tasks: a success that failed over to a cheaper channel releases too.
                sa.func.count().filter(released, tasks.c.state == TaskState.FAIL.value),
                _sum_if(LedgerKind.COMMIT, tasks.c.duration),
                _sum_if(LedgerKind.COMMIT, ledger.c.amount_micro_usdc),
                _sum_if(LedgerKind.RELEASE, ledger.c.amount_micro_usdc),
            )
            .select_from(joined)
            .where(*conditions)
            .group_by(group)
            .order_by(group)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(statement)).all()
        return [
            UsageRow(
                day_label(int(row[0])) if query.group_by is GroupBy.DAY else str(row[0]),
                # PostgreSQL sums bigints as numeric: back to plain integers.
                UsageFigures(*(int(value) for value in row[1:])),
            )
            for row in rows
        ]
