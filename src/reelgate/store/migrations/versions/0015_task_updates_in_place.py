"""A task's row takes its upstream id in place: the unused index on that id is dropped, and on
PostgreSQL each page of tasks keeps room for an updated row.

Nothing looks tasks up by their upstream id (callbacks name the gateway's own task), so the
index only cost every create an entry, and made the create's second write (the upstream's id)
rewrite every index of the table: PostgreSQL updates a row within its page and leaves the
indexes alone (a HOT update) only when no indexed column changes and the page has room.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

FILLFACTOR = 85
"""As reelgate.store.schema has it at this revision; pages already full keep their rows."""


def upgrade() -> None:
    op.drop_index("ix_tasks_upstream_task_id", "tasks")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE tasks SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE tasks RESET (fillfactor)")
    op.create_index("ix_tasks_upstream_task_id", "tasks", ["upstream_task_id"])
