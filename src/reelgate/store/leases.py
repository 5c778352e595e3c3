"""Handing due rows to one engine at a time: the engine's tasks and the webhook outbox alike.

A lease is an owner and an end time on the row. Claiming picks due rows whose lease is absent
or over, in due order; on PostgreSQL it skips rows another engine is claiming at that moment
(``FOR UPDATE SKIP LOCKED``), so that no row is handed to two engines at once. SQLite has one
writer at a time, which gives the same.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection


def claim(
    conn: AsyncConnection,
    table: sa.Table,
    *,
    key: sa.Column[Any],
    due: sa.TextClause,
    due_at: sa.Column[Any],
    now_ms: int,
    limit: int,
    lease: dict[str, Any],
) -> tuple[sa.Update, sa.ColumnElement[Any]]:
    """The UPDATE that leases up to ``limit`` due rows (setting ``lease``), and what ``due_at``
    held in each row before: add both to its RETURNING (the engine measures how late each check
    ran by it).

    ``due`` is spelled as the partial index over the due rows is, so that both databases use
    it rather than scan the table."""
    picked = (
        sa.select(key.label("picked_key"), due_at.label("was_due_at"))
        .where(
            due,
            due_at <= now_ms,
            sa.or_(table.c.lease_until_ms.is_(None), table.c.lease_until_ms < now_ms),
        )
        .order_by(due_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        rows = picked.with_for_update(skip_locked=True).subquery("picked")
        leasing = table.update().where(key == rows.c.picked_key).values(**lease)
        return leasing, rows.c.was_due_at
    # SQLite's RETURNING may not name the tables of UPDATE ... FROM, so the picked rows are
    # read back from a CTE, materialized before the update changes them (so it is on PostgreSQL,
    # whose subqueries all see the rows as they were when the statement began).
    chosen = picked.cte("picked").prefix_with("MATERIALIZED")
    leasing = table.update().where(key.in_(sa.select(chosen.c.picked_key))).values(**lease)
    was_due = sa.select(chosen.c.was_due_at).where(chosen.c.picked_key == key).scalar_subquery()
    return leasing, was_due


def new_owner() -> str:
    """A name for one process's leases, unique across hosts and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
