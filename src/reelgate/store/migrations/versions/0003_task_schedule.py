"""What the task engine needs: when each task is next due, its lease, deadline and progress clock.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UNFINISHED = "state IN ('waiting', 'queuing', 'generating')"


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("next_poll_at_ms", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("polls", sa.Integer, server_default="0", nullable=False))
        batch.add_column(sa.Column("lease_owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_until_ms", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("deadline_at_ms", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("state_since_ms", sa.BigInteger, nullable=True))
    op.create_index(
        "ix_tasks_due",
        "tasks",
        ["next_poll_at_ms"],
        sqlite_where=sa.text(UNFINISHED),
        postgresql_where=sa.text(UNFINISHED),
    )
    op.create_index("ix_tasks_upstream_task_id", "tasks", ["upstream_task_id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_upstream_task_id", "tasks")
    op.drop_index("ix_tasks_due", "tasks")
    with op.batch_alter_table("tasks") as batch:
        for column in (
            "state_since_ms",
            "deadline_at_ms",
            "lease_until_ms",
            "lease_owner",
            "polls",
            "next_poll_at_ms",
        ):
            batch.drop_column(column)
