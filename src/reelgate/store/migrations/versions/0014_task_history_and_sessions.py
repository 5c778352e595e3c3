"""The console's gaps: each task's changes of state (its timeline), each webhook delivery
attempt, and console sessions signed out before their expiry.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# As reelgate.store.schema has them at this revision, written out so that this migration never
# changes.
ENTERED_STATE = "state IN ('queuing', 'generating', 'success', 'fail')"


def upgrade() -> None:
    op.create_table(
        "task_events",
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("progress", sa.SmallInteger, nullable=False),
        sa.Column("detail", sa.String(64), nullable=True),
        sa.CheckConstraint(ENTERED_STATE, name="ck_task_events_entered_state"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_task_events_task_id_tasks"),
        sa.PrimaryKeyConstraint("task_id", "state", name="pk_task_events"),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("response_code", sa.Integer, nullable=True),
        sa.Column("error", sa.String(300), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["webhook_deliveries.task_id"],
            name="fk_webhook_attempts_task_id_webhook_deliveries",
        ),
        sa.PrimaryKeyConstraint("task_id", "attempt", name="pk_webhook_attempts"),
    )
    op.create_table(
        "console_sessions_revoked",
        sa.Column("sid", sa.String(64), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("sid", name="pk_console_sessions_revoked"),
    )
    op.create_index(
        "ix_console_sessions_revoked_expires_at_ms",
        "console_sessions_revoked",
        ["expires_at_ms"],
    )


def downgrade() -> None:
    op.drop_index("ix_console_sessions_revoked_expires_at_ms", "console_sessions_revoked")
    op.drop_table("console_sessions_revoked")
    op.drop_table("webhook_attempts")
    op.drop_table("task_events")
