"""Channels: each channel's circuit shared in the database, tasks in flight counted per
channel, and what a success commits when a failover moved its task to a cheaper channel (one
commit and one release may then settle it).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# As reelgate.store.schema has them at this revision, written out so that this migration never
# changes.
UNFINISHED = "state IN ('waiting', 'queuing', 'generating')"
SETTLED = "kind IN ('commit', 'release')"
COMMIT = "kind = 'commit'"
RELEASE = "kind = 'release'"


def upgrade() -> None:
    op.add_column("tasks", sa.Column("charge_micro_usdc", sa.BigInteger, nullable=True))
    op.create_index(
        "ix_tasks_channel_unfinished",
        "tasks",
        ["channel"],
        sqlite_where=sa.text(UNFINISHED),
        postgresql_where=sa.text(UNFINISHED),
    )
    for name, where in (("uq_ledger_task_commit", COMMIT), ("uq_ledger_task_release", RELEASE)):
        op.create_index(
            name,
            "ledger",
            ["task_id"],
            unique=True,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )
    op.drop_index("uq_ledger_task_settlement", "ledger")
    op.create_table(
        "channel_circuits",
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("open_until_ms", sa.BigInteger, nullable=True),
        sa.Column("probe_until_ms", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.String(100), nullable=True),
        sa.Column("last_error_at_ms", sa.BigInteger, nullable=True),
        sa.Column("window_started_ms", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("calls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("errors", sa.Integer, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("channel", name="pk_channel_circuits"),
    )


def downgrade() -> None:
    op.drop_table("channel_circuits")
    op.create_index(
        "uq_ledger_task_settlement",
        "ledger",
        ["task_id"],
        unique=True,
        sqlite_where=sa.text(SETTLED),
        postgresql_where=sa.text(SETTLED),
    )
    op.drop_index("uq_ledger_task_release", "ledger")
    op.drop_index("uq_ledger_task_commit", "ledger")
    op.drop_index("ix_tasks_channel_unfinished", "tasks")
    op.drop_column("tasks", "charge_micro_usdc")
