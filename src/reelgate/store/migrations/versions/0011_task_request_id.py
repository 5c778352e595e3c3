"""Each task keeps the request id of the create that made it, and recent successes are found by
model through an index (their durations make the ETA hints).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# As reelgate.store.schema has them at this revision, written out so that this migration never
# changes.
REQUEST_ID_LENGTH = 128
SUCCEEDED = "state = 'success'"


def upgrade() -> None:
    # A plain ADD COLUMN on both databases: SQLite does not rebuild the table for it.
    op.add_column("tasks", sa.Column("request_id", sa.String(REQUEST_ID_LENGTH), nullable=True))
    op.create_index(
        "ix_tasks_succeeded",
        "tasks",
        ["model", "completed_at"],
        sqlite_where=sa.text(SUCCEEDED),
        postgresql_where=sa.text(SUCCEEDED),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_succeeded", "tasks")
    op.drop_column("tasks", "request_id")
