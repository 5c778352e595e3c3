"""The database schema, as SQLAlchemy Core tables. Migrations in ``migrations/`` create it."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

import sqlalchemy as sa

from reelgate.domain.money import (
    MAX_BALANCE_MICRO_USDC,
    MAX_COST_MICRO_USDC,
    MAX_LEDGER_ENTRY_MICRO_USDC,
    MAX_MARGIN_PPM,
    MAX_PRICE_PER_SECOND_MICRO_USDC,
)
from reelgate.domain.request_ids import REQUEST_ID_LENGTH
from reelgate.domain.task import UNFINISHED_STATES, LedgerKind, TaskState
from reelgate.domain.timeline import DETAIL_LENGTH
from reelgate.domain.webhooks import ATTEMPT_ERROR_LENGTH, DeliveryStatus


def _one_of(column: str, values: Iterable[StrEnum]) -> str:
    """``column IN ('a', 'b')``, spelled from an enum so that the values are written once."""
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


def _bounded(column: str, least: int, most: int) -> tuple[sa.CheckConstraint, sa.CheckConstraint]:
    """The database's own refusal of an amount the code should never write: outside
    ``least..most``, or on SQLite not stored as an integer. SQLite keeps whatever it is given in
    any column and turns an integer sum that overflows into a float; PostgreSQL's BIGINT holds
    only integers and refuses an overflow by itself."""
    in_range = f"{column} BETWEEN {least} AND {most}"
    name = f"{column}_bounds"
    return (
        sa.CheckConstraint(f"typeof({column}) = 'integer' AND {in_range}", name=name).ddl_if(
            dialect="sqlite"
        ),
        sa.CheckConstraint(in_range, name=name).ddl_if(dialect="postgresql"),
    )


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

UNFINISHED_SQL = _one_of("state", UNFINISHED_STATES)
SUCCEEDED_SQL = f"state = '{TaskState.SUCCESS.value}'"
SETTLED_SQL = _one_of("kind", (LedgerKind.COMMIT, LedgerKind.RELEASE))
"""A task's settlement: spelled as the partial indexes are, so that queries can use them."""
RESERVE_SQL = f"kind = '{LedgerKind.RESERVE.value}'"
COMMIT_SQL = f"kind = '{LedgerKind.COMMIT.value}'"
RELEASE_SQL = f"kind = '{LedgerKind.RELEASE.value}'"

SEALED_SECRET_LENGTH = 255
"""A sealed webhook secret takes 109 characters; room is left for another scheme."""

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL wants a 64-bit identity.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    # Both follow from the ledger; they are kept here so that a reservation is one row update.
    sa.Column("balance_micro_usdc", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reserved_micro_usdc", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # Signs the account's webhooks (Standard Webhooks, "whsec_..."): kept sealed (see
    # store/sealing.py), because the gateway signs with it and the account reads it to verify.
    sa.Column("webhook_secret", sa.String(SEALED_SECRET_LENGTH), nullable=False),
    # After a rotation the old secret signs too, for a day, so receivers can switch over.
    sa.Column("previous_webhook_secret", sa.String(SEALED_SECRET_LENGTH), nullable=True),
    sa.Column("webhook_secret_rotated_at", sa.BigInteger, nullable=True),
    sa.CheckConstraint(
        "reserved_micro_usdc >= 0 AND reserved_micro_usdc <= balance_micro_usdc",
        name="reservations_covered",
    ),
    *_bounded("balance_micro_usdc", 0, MAX_BALANCE_MICRO_USDC),
    *_bounded("reserved_micro_usdc", 0, MAX_BALANCE_MICRO_USDC),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
    # The key's limits (see reelgate.domain.limits); NULL is no limit.
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("rate_count", sa.Integer, nullable=True),
    sa.Column("rate_period_s", sa.Integer, nullable=True),
    sa.Column("rate_burst", sa.Integer, nullable=True),
    sa.Column("max_in_flight", sa.Integer, nullable=True),
    # Comma-separated model ids.
    sa.Column("models", sa.String(1000), nullable=True),
    sa.Column("budget_micro_usdc", sa.BigInteger, nullable=True),
    sa.Column("budget_period", sa.String(16), nullable=True),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("key_id", sa.ForeignKey("api_keys.id"), nullable=False),
    sa.Column("model", sa.String(40), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("progress", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("result", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("channel", sa.String(40), nullable=False),
    sa.Column("upstream_task_id", sa.String(200), nullable=True),
    # pending (not yet sent), accepted (the upstream id is known), unknown (sent, no answer:
    # the task may exist upstream and must not be sent again).
    sa.Column("submission", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("billing_status", sa.String(16), nullable=False),
    sa.Column("tier", sa.String(40), nullable=False),
    sa.Column("price_per_second_micro_usdc", sa.BigInteger, nullable=False),
    sa.Column("duration", sa.SmallInteger, nullable=False),
    sa.Column("margin_ppm", sa.BigInteger, nullable=False),
    sa.Column("cost_micro_usdc", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("completed_at", sa.BigInteger, nullable=True),
    # The engine's schedule, in Unix milliseconds: when the task is next due for an upstream
    # check, which engine holds it until when, when it is given up, and when its state began.
    sa.Column("next_poll_at_ms", sa.BigInteger, nullable=True),
    sa.Column("polls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until_ms", sa.BigInteger, nullable=True),
    sa.Column("deadline_at_ms", sa.BigInteger, nullable=True),
    sa.Column("state_since_ms", sa.BigInteger, nullable=True),
    # The upstream's result URLs (JSON), once it reports success: the video is copied from them
    # before the task succeeds, and they are shown as result.origin_data.
    sa.Column("origin_urls", sa.Text, nullable=True),
    # The copies in the media store (JSON: content type and size per file), set on success.
    sa.Column("media", sa.Text, nullable=True),
    # The X-Request-ID of the create that made the task, to find its log lines.
    sa.Column("request_id", sa.String(REQUEST_ID_LENGTH), nullable=True),
    # What a success commits when a failover moved the task to a cheaper channel than its
    # reservation was made at (the rest is released); None: its whole reservation.
    sa.Column("charge_micro_usdc", sa.BigInteger, nullable=True),
    # An account's tasks newest first (ids are ULIDs, in order of creation), and through the
    # time in their ids, those created in a window (see reelgate.domain.listing).
    sa.Index("ix_tasks_account_id_id", "account_id", "id"),
    sa.Index(
        "ix_tasks_due",
        "next_poll_at_ms",
        sqlite_where=sa.text(UNFINISHED_SQL),
        postgresql_where=sa.text(UNFINISHED_SQL),
    ),
    # A key's tasks in flight, and its spending in a budget's window (see accepting.py).
    sa.Index("ix_tasks_key_id_state_created_at", "key_id", "state", "created_at"),
    # Each channel's tasks in flight, counted for its max_in_flight.
    sa.Index(
        "ix_tasks_channel_unfinished",
        "channel",
        sqlite_where=sa.text(UNFINISHED_SQL),
        postgresql_where=sa.text(UNFINISHED_SQL),
    ),
    # The most recent successes of a model, whose durations make the tasks' ETA hints.
    sa.Index(
        "ix_tasks_succeeded",
        "model",
        "completed_at",
        sqlite_where=sa.text(SUCCEEDED_SQL),
        postgresql_where=sa.text(SUCCEEDED_SQL),
    ),
    *_bounded("price_per_second_micro_usdc", 0, MAX_PRICE_PER_SECOND_MICRO_USDC),
    *_bounded("margin_ppm", 1, MAX_MARGIN_PPM),
    *_bounded("cost_micro_usdc", 0, MAX_COST_MICRO_USDC),
    # Room in each page for the row's next version: the create's second write (the upstream's
    # id) and the engine's progress then update the row in its page and no index (HOT). There
    # is deliberately no index on upstream_task_id, which would rule that out (migration 0015).
    postgresql_with={"fillfactor": 85},
)

ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("task_id", sa.ForeignKey("tasks.id"), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("amount_micro_usdc", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("note", sa.String(500), nullable=True),
    sa.CheckConstraint("amount_micro_usdc >= 0", name="non_negative_amount"),
    *_bounded("amount_micro_usdc", 0, MAX_LEDGER_ENTRY_MICRO_USDC),
    sa.CheckConstraint(_one_of("kind", LedgerKind), name="known_kind"),
    sa.CheckConstraint(
        "(kind = 'credit') = (task_id IS NULL)", name="task_entries_name_their_task"
    ),
    # The database itself refuses a second reservation or a second settlement for a task.
    sa.Index(
        "uq_ledger_task_reserve",
        "task_id",
        unique=True,
        sqlite_where=sa.text(RESERVE_SQL),
        postgresql_where=sa.text(RESERVE_SQL),
    ),
    # A success that failed over to a cheaper channel commits its price and releases the rest:
    # at most one commit and one release per task.
    sa.Index(
        "uq_ledger_task_commit",
        "task_id",
        unique=True,
        sqlite_where=sa.text(COMMIT_SQL),
        postgresql_where=sa.text(COMMIT_SQL),
    ),
    sa.Index(
        "uq_ledger_task_release",
        "task_id",
        unique=True,
        sqlite_where=sa.text(RELEASE_SQL),
        postgresql_where=sa.text(RELEASE_SQL),
    ),
    # An account's statement, newest first.
    sa.Index("ix_ledger_account_id_id", "account_id", "id"),
    # Usage: the settlements of a period, of one account or of all.
    sa.Index(
        "ix_ledger_settled_account_id_created_at",
        "account_id",
        "created_at",
        sqlite_where=sa.text(SETTLED_SQL),
        postgresql_where=sa.text(SETTLED_SQL),
    ),
    sa.Index(
        "ix_ledger_settled_created_at",
        "created_at",
        sqlite_where=sa.text(SETTLED_SQL),
        postgresql_where=sa.text(SETTLED_SQL),
    ),
)

# The first answer to each create sent with an Idempotency-Key, written in the transaction that
# stores its task and reservation; kept for REELGATE_IDEMPOTENCY_TTL_S, then pruned.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("account_id", sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    # No foreign key: the row is claimed first in its transaction, before its task is stored,
    # so that a repeat waits on it instead of holding money it would then give back.
    sa.Column("task_id", sa.String(40), nullable=True),
    # pending (the create has not answered yet, or its process died) or done.
    sa.Column("phase", sa.String(16), nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("location", sa.String(300), nullable=True),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("pending_until_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_at_ms", sa.BigInteger, nullable=False, index=True),
)

PENDING_DELIVERY_SQL = f"status = '{DeliveryStatus.PENDING}'"

# The outbox of client webhooks: a row is written in the transaction that ends its task, so a
# finished task's webhook is never lost, and is retried from here until delivered or given up.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("task_id", sa.ForeignKey("tasks.id"), primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("webhook_id", sa.String(40), nullable=False, unique=True),
    # pending (to be sent, or to be retried), delivered, failed (given up).
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_response_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.String(300), nullable=True),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("next_attempt_at_ms", sa.BigInteger, nullable=True),
    sa.Column("last_attempt_at_ms", sa.BigInteger, nullable=True),
    sa.Column("delivered_at_ms", sa.BigInteger, nullable=True),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until_ms", sa.BigInteger, nullable=True),
    sa.Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at_ms",
        sqlite_where=sa.text(PENDING_DELIVERY_SQL),
        postgresql_where=sa.text(PENDING_DELIVERY_SQL),
    ),
)

# Each change of a task's state after its creation (the creation itself is the task row's
# created_at: the create path writes nothing more), written in the transaction that made the
# change. States only move forward, so a task enters each state at most once: the key refuses
# a second record of one change, whichever of a callback and a poll reports it.
task_events = sa.Table(
    "task_events",
    metadata,
    sa.Column("task_id", sa.ForeignKey("tasks.id"), primary_key=True),
    sa.Column("state", sa.String(16), primary_key=True),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    # The task's progress once in the state.
    sa.Column("progress", sa.SmallInteger, nullable=False),
    # A word more: a failure's error code.
    sa.Column("detail", sa.String(DETAIL_LENGTH), nullable=True),
    sa.CheckConstraint(
        _one_of("state", (s for s in TaskState if s is not TaskState.WAITING)),
        name="entered_state",
    ),
)

# Each attempt to deliver a task's webhook, written in the transaction that records its outcome
# on the delivery. How many there are is bounded by the retry policy (domain.webhooks).
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("task_id", sa.ForeignKey("webhook_deliveries.task_id"), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    # The receiver's HTTP status, when it answered; its body is never read, let alone kept.
    sa.Column("response_code", sa.Integer, nullable=True),
    # Why the attempt failed, in the gateway's own words.
    sa.Column("error", sa.String(ATTEMPT_ERROR_LENGTH), nullable=True),
)

# Console sessions signed out before they expire: the session is a sealed cookie, so a copy
# of it would open until its expiry unless its id is refused here. Rows past their expiry are
# pruned (the cookie no longer opens then anyway).
console_sessions_revoked = sa.Table(
    "console_sessions_revoked",
    metadata,
    sa.Column("sid", sa.String(64), primary_key=True),
    sa.Column("expires_at_ms", sa.BigInteger, nullable=False, index=True),
)

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# Other processes on the same SQLite file learn of changes by reading this table in id order
# (SQLite commits one writer at a time, so ids become visible in order). PostgreSQL uses NOTIFY.
change_events = sa.Table(
    "change_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("topic", sa.String(16), nullable=False),
    sa.Column("ref", sa.String(200), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# Each channel's circuit and recent calls, shared by every process of the deployment (see
# reelgate.domain.channels): the CLI, the API processes and the engines see one circuit.
channel_circuits = sa.Table(
    "channel_circuits",
    metadata,
    sa.Column("channel", sa.String(40), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("open_until_ms", sa.BigInteger, nullable=True),
    sa.Column("probe_until_ms", sa.BigInteger, nullable=True),
    sa.Column("last_error", sa.String(100), nullable=True),
    sa.Column("last_error_at_ms", sa.BigInteger, nullable=True),
    sa.Column("window_started_ms", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("calls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("errors", sa.Integer, nullable=False, server_default="0"),
)
