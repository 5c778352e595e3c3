"""The ledger's invariants, checked from the ledger itself."""

from __future__ import annotations

import sqlalchemy as sa

from reelgate.domain.task import FINAL_STATES, BillingStatus, LedgerKind, TaskState
from reelgate.store.database import Database
from reelgate.store.schema import accounts, ledger, tasks


def _sum_of(kind: LedgerKind) -> sa.ColumnElement[int]:
    return sa.func.coalesce(
        sa.func.sum(sa.case((ledger.c.kind == kind, ledger.c.amount_micro_usdc), else_=0)), 0
    )


async def audit(db: Database) -> list[str]:
    """Every violation of the ledger's invariants, one sentence each; empty when all hold."""
    violations: list[str] = []
    per_account = (
        sa.select(
            ledger.c.account_id,
            _sum_of(LedgerKind.CREDIT).label("credits"),
            _sum_of(LedgerKind.RESERVE).label("reserves"),
            _sum_of(LedgerKind.COMMIT).label("commits"),
            _sum_of(LedgerKind.RELEASE).label("releases"),
        )
        .group_by(ledger.c.account_id)
        .subquery()
    )
    per_task = (
        sa.select(
            ledger.c.task_id,
            sa.func.count().filter(ledger.c.kind == LedgerKind.RESERVE).label("reserves"),
            sa.func.count().filter(ledger.c.kind == LedgerKind.COMMIT).label("commits"),
            sa.func.count().filter(ledger.c.kind == LedgerKind.RELEASE).label("releases"),
            _sum_of(LedgerKind.RESERVE).label("reserved"),
            (_sum_of(LedgerKind.COMMIT) + _sum_of(LedgerKind.RELEASE)).label("settled"),
        )
        .where(ledger.c.task_id.is_not(None))
        .group_by(ledger.c.task_id)
        .subquery()
    )
    async with db.read() as conn:
        account_rows = await conn.execute(
            sa.select(
                accounts.c.name,
                accounts.c.balance_micro_usdc,
                accounts.c.reserved_micro_usdc,
                sa.func.coalesce(per_account.c.credits, 0),
                sa.func.coalesce(per_account.c.reserves, 0),
                sa.func.coalesce(per_account.c.commits, 0),
                sa.func.coalesce(per_account.c.releases, 0),
            ).select_from(
                accounts.outerjoin(per_account, per_account.c.account_id == accounts.c.id)
            )
        )
        for row in account_rows:
            # PostgreSQL sums bigints as numeric: back to plain integers before comparing.
            name = row[0]
            balance, reserved, credits, reserves, commits, releases = (int(v) for v in row[1:])
            if balance != credits - commits:
                violations.append(
                    f"account {name!r}: balance {balance} != credits {credits} - commits {commits}"
                )
            open_reserved = reserves - commits - releases
            if reserved != open_reserved:
                violations.append(
                    f"account {name!r}: reserved {reserved} != open reservations {open_reserved}"
                )
        task_rows = await conn.execute(
            sa.select(
                tasks.c.id,
                tasks.c.state,
                tasks.c.billing_status,
                tasks.c.cost_micro_usdc,
                sa.func.coalesce(per_task.c.reserves, 0),
                sa.func.coalesce(per_task.c.commits, 0),
                sa.func.coalesce(per_task.c.releases, 0),
                sa.func.coalesce(per_task.c.reserved, 0),
                sa.func.coalesce(per_task.c.settled, 0),
            ).select_from(tasks.outerjoin(per_task, per_task.c.task_id == tasks.c.id))
        )
        for task_row in task_rows:
            task_id, state, billing = task_row[0], task_row[1], task_row[2]
            cost, reserves, commits, releases, reserved, settled = (int(v) for v in task_row[3:])
            where = f"task {task_id} ({state}, {billing})"
            if reserves != 1 or reserved != cost:
                violations.append(
                    f"{where}: {reserves} reservation(s) of {reserved}, expected one of {cost}"
                )
            settlements = commits + releases
            if state in FINAL_STATES:
                expected = (
                    (1, 0, BillingStatus.COMMITTED)
                    if state == TaskState.SUCCESS
                    else (0, 1, BillingStatus.RELEASED)
                )
                if state == TaskState.SUCCESS and releases == 1 and commits == 1:
                    # A failover to a cheaper channel: its price committed, the rest released.
                    expected = (1, 1, BillingStatus.COMMITTED)
                if (commits, releases, billing) != expected or settled != cost:
                    violations.append(
                        f"{where}: finished task settled by {commits} commit(s) and "
                        f"{releases} release(s) of {settled}, expected exactly one "
                        f"{'commit' if expected[0] else 'release'} of {cost}"
                    )
            elif settlements or billing != BillingStatus.RESERVED:
                violations.append(f"{where}: unfinished task is already settled")
    return violations
