"""The outbox of client webhooks: claimed by engines in batches, each attempt's outcome kept.

Rows are written by :meth:`TaskStore.finish` in the transaction that ends the task, so a
delivery exists if and only if its task ended with a callBackUrl. Each attempt is kept as a
row of its own too (``webhook_attempts``), beside the delivery's latest outcome.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from reelgate.domain.changes import TASK
from reelgate.domain.webhooks import ATTEMPT_ERROR_LENGTH, AttemptRecord, DeliveryStatus
from reelgate.store import changes, leases
from reelgate.store.accounts import account_of
from reelgate.store.database import Database
from reelgate.store.schema import (
    PENDING_DELIVERY_SQL,
    accounts,
    webhook_attempts,
    webhook_deliveries,
)

# Spelled as the partial index ix_webhook_deliveries_due is, so that both databases use it.
_PENDING = sa.text(PENDING_DELIVERY_SQL)


@dataclass(frozen=True, slots=True)
class DueDelivery:
    task_id: str
    url: str
    webhook_id: str
    attempts: int
    created_at_ms: int
    secrets: tuple[str, ...]
    """The account's signing secrets, read when the delivery was claimed."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one attempt went and what happens next."""

    status: DeliveryStatus
    response_code: int | None
    error: str | None
    next_attempt_at_ms: int | None
    at_ms: int
    """When the attempt began."""
    duration_ms: int


class WebhookStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim_due(self, owner: str, limit: int, lease_ms: int) -> list[DueDelivery]:
        """Lease up to ``limit`` deliveries that are due (see :mod:`.leases`)."""
        now_ms = int(time.time() * 1000)
        d = webhook_deliveries
        async with self.db.write() as conn:
            leasing, _ = leases.claim(
                conn,
                d,
                key=d.c.task_id,
                due=_PENDING,
                due_at=d.c.next_attempt_at_ms,
                now_ms=now_ms,
                limit=limit,
                lease={"lease_owner": owner, "lease_until_ms": now_ms + lease_ms},
            )
            claimed = (
                await conn.execute(
                    leasing.returning(
                        d.c.task_id,
                        d.c.account_id,
                        d.c.url,
                        d.c.webhook_id,
                        d.c.attempts,
                        d.c.created_at_ms,
                    )
                )
            ).all()
            if not claimed:
                return []
            owners = {
                row.id: account_of(row, self.db.sealer)
                for row in await conn.execute(
                    sa.select(accounts).where(
                        accounts.c.id.in_({row.account_id for row in claimed})
                    )
                )
            }
        return [
            DueDelivery(
                task_id=row.task_id,
                url=row.url,
                webhook_id=row.webhook_id,
                attempts=row.attempts,
                created_at_ms=row.created_at_ms,
                secrets=owners[row.account_id].signing_secrets(now_ms // 1000),
            )
            for row in claimed
        ]

    async def record(self, task_id: str, owner: str, attempt: Attempt) -> None:
        """Keep an attempt's outcome, on the delivery and as a row of its own, and give the
        lease back; the task's readers see it. Nothing is kept once the lease was lost (another
        engine took the delivery over: its attempt counts instead)."""
        now_ms = int(time.time() * 1000)
        d = webhook_deliveries
        error = None if attempt.error is None else attempt.error[:ATTEMPT_ERROR_LENGTH]
        async with self.db.write() as conn:
            updated = (
                await conn.execute(
                    d.update()
                    .where(d.c.task_id == task_id, d.c.lease_owner == owner)
                    .values(
                        status=attempt.status,
                        attempts=d.c.attempts + 1,
                        last_response_code=attempt.response_code,
                        last_error=error,
                        last_attempt_at_ms=now_ms,
                        next_attempt_at_ms=attempt.next_attempt_at_ms,
                        delivered_at_ms=(
                            now_ms if attempt.status is DeliveryStatus.DELIVERED else None
                        ),
                        lease_owner=None,
                        lease_until_ms=None,
                    )
                    .returning(d.c.attempts)
                )
            ).one_or_none()
            if updated is None:
                return
            await conn.execute(
                webhook_attempts.insert().values(
                    task_id=task_id,
                    attempt=updated.attempts,
                    at_ms=attempt.at_ms,
                    duration_ms=max(0, attempt.duration_ms),
                    response_code=attempt.response_code,
                    error=error,
                )
            )
            await changes.publish(conn, TASK, task_id)

    async def attempts(self, task_id: str) -> list[AttemptRecord]:
        """The task's delivery attempts, first first."""
        a = webhook_attempts
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(a.c.attempt, a.c.at_ms, a.c.duration_ms, a.c.response_code, a.c.error)
                .where(a.c.task_id == task_id)
                .order_by(a.c.attempt)
            )
            return [
                AttemptRecord(
                    attempt=row.attempt,
                    at_ms=row.at_ms,
                    duration_ms=row.duration_ms,
                    response_code=row.response_code,
                    error=row.error,
                )
                for row in rows
            ]
