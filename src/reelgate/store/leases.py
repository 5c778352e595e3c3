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
) -> sa.Update:
    """The UPDATE that leases up to ``limit`` due rows (setting ``lease``); add RETURNING.

    ``due`` is spelled as the partial index over the due rows is, so that both databases use
    it rather than scan the table."""
    picked = (
        sa.select(key)
        .where(
            due,
            due_at <= now_ms,
            sa.or_(table.c.lease_until_ms.is_(None), table.c.lease_until_ms < now_ms),
        )
        .order_by(due_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        picked = picked.with_for_update(skip_locked=True)
    return table.update().where(key.in_(picked.scalar_subquery())).values(**lease)


def new_owner() -> str:
    """A name for one process's leases, unique across hosts and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
