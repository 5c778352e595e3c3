"""API keys get a name and limits (rate, tasks in flight, models, budget, expiry); creates sent
with an Idempotency-Key keep their first answer; a key's tasks are found by state and time.

Only columns, a table and an index are added: no table is rebuilt, so the ledger's append-only
triggers stay as they are.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# As reelgate.store.schema has them at this revision, written out so that this migration never
# changes.
KEY_COLUMNS = (
    ("name", sa.String(200)),
    ("rate_count", sa.Integer()),
    ("rate_period_s", sa.Integer()),
    ("rate_burst", sa.Integer()),
    ("max_in_flight", sa.Integer()),
    ("models", sa.String(1000)),
    ("budget_micro_usdc", sa.BigInteger()),
    ("budget_period", sa.String(16)),
    ("expires_at", sa.BigInteger()),
)


def upgrade() -> None:
    for name, type_ in KEY_COLUMNS:
        op.add_column("api_keys", sa.Column(name, type_, nullable=True))
    op.create_index("ix_tasks_key_id_state_created_at", "tasks", ["key_id", "state", "created_at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String(40), nullable=True),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("location", sa.String(300), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("pending_until_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_idempotency_keys_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("account_id", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_expires_at_ms", "idempotency_keys", ["expires_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_expires_at_ms", "idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_tasks_key_id_state_created_at", "tasks")
    # A plain DROP COLUMN on both databases (SQLite 3.35 or later): no table is rebuilt.
    for name, _ in reversed(KEY_COLUMNS):
        op.drop_column("api_keys", name)
