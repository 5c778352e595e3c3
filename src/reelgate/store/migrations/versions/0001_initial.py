"""Accounts, API keys, tasks, the append-only ledger, and the change feed.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("balance_micro_usdc", sa.BigInteger, server_default="0", nullable=False),
        sa.Column("reserved_micro_usdc", sa.BigInteger, server_default="0", nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.CheckConstraint(
            "reserved_micro_usdc >= 0 AND reserved_micro_usdc <= balance_micro_usdc",
            name="ck_accounts_reservations_covered",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("name", name="uq_accounts_name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_api_keys_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_account_id", "api_keys", ["account_id"])
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("model", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("progress", sa.SmallInteger, server_default="0", nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("upstream_task_id", sa.String(200), nullable=True),
        sa.Column("billing_status", sa.String(16), nullable=False),
        sa.Column("tier", sa.String(40), nullable=False),
        sa.Column("price_per_second_micro_usdc", sa.BigInteger, nullable=False),
        sa.Column("duration", sa.SmallInteger, nullable=False),
        sa.Column("margin_ppm", sa.BigInteger, nullable=False),
        sa.Column("cost_micro_usdc", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("completed_at", sa.BigInteger, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_tasks_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name="fk_tasks_key_id_api_keys"),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
    )
    op.create_index("ix_tasks_account_id_created_at", "tasks", ["account_id", "created_at"])
    op.create_table(
        "ledger",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("task_id", sa.String(40), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_micro_usdc", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("note", sa.String(500), nullable=True),
        sa.CheckConstraint("amount_micro_usdc >= 0", name="ck_ledger_non_negative_amount"),
        sa.CheckConstraint(
            "kind IN ('credit', 'reserve', 'commit', 'release')", name="ck_ledger_known_kind"
        ),
        sa.CheckConstraint(
            "(kind = 'credit') = (task_id IS NULL)", name="ck_ledger_task_entries_name_their_task"
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_ledger_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_ledger_task_id_tasks"),
        sa.PrimaryKeyConstraint("id", name="pk_ledger"),
    )
    op.create_index("ix_ledger_account_id", "ledger", ["account_id"])
    op.create_index(
        "uq_ledger_task_reserve",
        "ledger",
        ["task_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'reserve'"),
        postgresql_where=sa.text("kind = 'reserve'"),
    )
    op.create_index(
        "uq_ledger_task_settlement",
        "ledger",
        ["task_id"],
        unique=True,
        sqlite_where=sa.text("kind IN ('commit', 'release')"),
        postgresql_where=sa.text("kind IN ('commit', 'release')"),
    )
    _make_ledger_append_only()
    op.create_table(
        "meta",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_meta"),
    )
    op.create_table(
        "change_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_change_events"),
    )


def _make_ledger_append_only() -> None:
    """Money history is never rewritten: the database refuses UPDATE and DELETE on the ledger."""
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER ledger_no_{action.lower()} BEFORE {action} ON ledger "
                "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION reelgate_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the ledger is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger "
            "FOR EACH ROW EXECUTE FUNCTION reelgate_ledger_append_only()"
        )


def downgrade() -> None:
    for table in ("change_events", "meta", "ledger", "tasks", "api_keys", "accounts"):
        op.drop_table(table)
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP FUNCTION reelgate_ledger_append_only()")
