"""What results and client webhooks need: the upstream's result URLs and the stored copies of
each task's video, a webhook secret per account, and the outbox of webhook deliveries.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import base64
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PENDING = "status = 'pending'"


def _webhook_secret() -> str:
    # As reelgate.domain.webhooks makes them; written out so this migration never changes.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("origin_urls", sa.Text, nullable=True))
        batch.add_column(sa.Column("media", sa.Text, nullable=True))
    # Accounts made before webhooks existed get a secret of their own, then the column is
    # required.
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("webhook_secret", sa.String(64), nullable=True))
        batch.add_column(sa.Column("previous_webhook_secret", sa.String(64), nullable=True))
        batch.add_column(sa.Column("webhook_secret_rotated_at", sa.BigInteger, nullable=True))
    bind = op.get_bind()
    accounts = sa.table("accounts", sa.column("id"), sa.column("webhook_secret"))
    for (account_id,) in bind.execute(sa.select(accounts.c.id)).all():
        bind.execute(
            accounts.update()
            .where(accounts.c.id == account_id)
            .values(webhook_secret=_webhook_secret())
        )
    with op.batch_alter_table("accounts") as batch:
        batch.alter_column("webhook_secret", existing_type=sa.String(64), nullable=False)
    op.create_table(
        "webhook_deliveries",
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("webhook_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, server_default="0", nullable=False),
        sa.Column("last_response_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("next_attempt_at_ms", sa.BigInteger, nullable=True),
        sa.Column("last_attempt_at_ms", sa.BigInteger, nullable=True),
        sa.Column("delivered_at_ms", sa.BigInteger, nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until_ms", sa.BigInteger, nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name="fk_webhook_deliveries_task_id_tasks"
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_webhook_deliveries_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("task_id", name="pk_webhook_deliveries"),
        sa.UniqueConstraint("webhook_id", name="uq_webhook_deliveries_webhook_id"),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at_ms"],
        sqlite_where=sa.text(PENDING),
        postgresql_where=sa.text(PENDING),
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_due", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("webhook_secret_rotated_at")
        batch.drop_column("previous_webhook_secret")
        batch.drop_column("webhook_secret")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("media")
        batch.drop_column("origin_urls")
