"""The database refuses amounts of money the code should never write: outside their bounds, or
on SQLite not stored as an integer (SQLite turns an integer sum that overflows into a float).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The limits of reelgate.domain.money as they stand at this revision, written out so that this
# migration never changes: a balance of a billion USD, a price of 1,000 USD per second, a
# hundredfold margin, and the dearest task they allow (1.5 million USD, 15 s at both limits).
MAX_BALANCE = 1_000_000_000_000_000
MAX_LEDGER_ENTRY = 1_000_000_000_000_000
MAX_PRICE_PER_SECOND = 1_000_000_000
MAX_MARGIN_PPM = 100_000_000
MAX_COST = 1_500_000_000_000

# (table, column, least, most), each checked by a constraint named ck_<table>_<column>_bounds.
BOUNDS = (
    ("accounts", "balance_micro_usdc", 0, MAX_BALANCE),
    ("accounts", "reserved_micro_usdc", 0, MAX_BALANCE),
    ("ledger", "amount_micro_usdc", 0, MAX_LEDGER_ENTRY),
    ("tasks", "price_per_second_micro_usdc", 0, MAX_PRICE_PER_SECOND),
    ("tasks", "margin_ppm", 1, MAX_MARGIN_PPM),
    ("tasks", "cost_micro_usdc", 0, MAX_COST),
)
TABLES = ("accounts", "ledger", "tasks")


def _condition(column: str, least: int, most: int) -> str:
    in_range = f"{column} BETWEEN {least} AND {most}"
    if op.get_bind().dialect.name == "sqlite":
        return f"typeof({column}) = 'integer' AND {in_range}"
    return in_range


def _name(table: str, column: str) -> str:
    # op.f: the name as given, not run through the naming convention a second time.
    return op.f(f"ck_{table}_{column}_bounds")


def _refuse_rows_out_of_bounds() -> None:
    """Stop before changing anything when a row already breaks a bound (a balance an overflow
    turned into a float, say), naming each one: they need correcting by hand first, and on
    SQLite a table rebuild failing halfway would leave work behind."""
    bind = op.get_bind()
    found = []
    for table, column, least, most in BOUNDS:
        key = "name" if table == "accounts" else "id"
        query = (
            f"SELECT {key}, {column} FROM {table} "  # noqa: S608 - names from BOUNDS, not input
            f"WHERE NOT ({_condition(column, least, most)}) ORDER BY {key} LIMIT 10"
        )
        rows = bind.execute(sa.text(query)).all()
        found += [f"{table} {row[0]}: {column} = {row[1]!r}" for row in rows]
    if found:
        raise RuntimeError(
            "cannot add the money bounds (an integer of micro-USDC within each limit): these "
            "rows break them and must be corrected first: " + "; ".join(found)
        )


def _make_ledger_append_only_again() -> None:
    """SQLite drops a table's triggers with the table, and batch mode rebuilds the ledger: its
    append-only triggers (revision 0001) are made again. PostgreSQL alters it in place."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER ledger_no_{action.lower()} BEFORE {action} ON ledger "
            "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
        )


def upgrade() -> None:
    _refuse_rows_out_of_bounds()
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for bounded_table, column, least, most in BOUNDS:
                if bounded_table == table:
                    batch.create_check_constraint(
                        _name(table, column), _condition(column, least, most)
                    )
    _make_ledger_append_only_again()


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for bounded_table, column, _least, _most in BOUNDS:
                if bounded_table == table:
                    batch.drop_constraint(_name(table, column), type_="check")
    _make_ledger_append_only_again()
