"""Indexes for task lists, statements and usage.

- ``tasks (account_id, id)`` replaces ``tasks (account_id, created_at)``: lists run newest
  first by id, and find a creation window through the time each id carries. One index for
  one: every upstream check rewrites a task row, and on PostgreSQL each index of the table.
- ``ledger (account_id, id)`` replaces ``ledger (account_id)``: an account's statement,
  newest first (on PostgreSQL the old one held the entries in no useful order).
- ``ledger (account_id, created_at)`` and ``ledger (created_at)``, of settlements only: usage
  of a period, of one account or of all. Reservations, half the ledger, are left out.

Only indexes change: no table is rebuilt, so the ledger's append-only triggers stay as they are.

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None

# As reelgate.store.schema has it at this revision, written out so that this migration never
# changes.
SETTLED = "kind IN ('commit', 'release')"


def upgrade() -> None:
    op.create_index("ix_tasks_account_id_id", "tasks", ["account_id", "id"])
    op.drop_index("ix_tasks_account_id_created_at", "tasks")
    op.create_index("ix_ledger_account_id_id", "ledger", ["account_id", "id"])
    op.drop_index("ix_ledger_account_id", "ledger")
    op.create_index(
        "ix_ledger_settled_account_id_created_at",
        "ledger",
        ["account_id", "created_at"],
        sqlite_where=sa.text(SETTLED),
        postgresql_where=sa.text(SETTLED),
    )
    op.create_index(
        "ix_ledger_settled_created_at",
        "ledger",
        ["created_at"],
        sqlite_where=sa.text(SETTLED),
        postgresql_where=sa.text(SETTLED),
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_settled_created_at", "ledger")
    op.drop_index("ix_ledger_settled_account_id_created_at", "ledger")
    op.create_index("ix_ledger_account_id", "ledger", ["account_id"])
    op.drop_index("ix_ledger_account_id_id", "ledger")
    op.create_index("ix_tasks_account_id_created_at", "tasks", ["account_id", "created_at"])
    op.drop_index("ix_tasks_account_id_id", "tasks")
