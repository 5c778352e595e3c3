"""The first answers to creates sent with an Idempotency-Key (stored beside their tasks by
:mod:`.accepting`): found again, marked done, pruned."""

from __future__ import annotations

import sqlalchemy as sa

from reelgate.domain.idempotency import Phase, Stored, StoredAnswer
from reelgate.store.database import Database
from reelgate.store.schema import idempotency_keys

_K = idempotency_keys


async def find(db: Database, account_id: str, key: str, now_ms: int) -> Stored | None:
    """The key's stored answer, unless there is none or it has expired."""
    async with db.read() as conn:
        row = (
            await conn.execute(
                sa.select(
                    _K.c.fingerprint,
                    _K.c.phase,
                    _K.c.status,
                    _K.c.body,
                    _K.c.location,
                    _K.c.pending_until_ms,
                    _K.c.task_id,
                ).where(_K.c.account_id == account_id, _K.c.key == key, _K.c.expires_at_ms > now_ms)
            )
        ).one_or_none()
    if row is None:
        return None
    return Stored(
        fingerprint=row.fingerprint,
        phase=Phase(row.phase),
        answer=StoredAnswer(row.status, bytes(row.body), row.location),
        pending_until_ms=row.pending_until_ms,
        task_id=row.task_id,
    )


async def finish(
    db: Database, account_id: str, key: str, task_id: str, answer: StoredAnswer | None
) -> None:
    """The create with this key has answered: with the answer stored at first, or (after the
    upstream refused the task) with ``answer``. Only the row of that task changes."""
    values: dict[str, object] = {"phase": Phase.DONE.value}
    if answer is not None:
        values.update(status=answer.status, body=answer.body, location=answer.location)
    async with db.write() as conn:
        await conn.execute(
            _K.update()
            .where(_K.c.account_id == account_id, _K.c.key == key, _K.c.task_id == task_id)
            .values(values)
        )


async def prune(db: Database, now_ms: int) -> int:
    """Forget the keys whose time is up; how many."""
    async with db.write() as conn:
        result = await conn.execute(_K.delete().where(_K.c.expires_at_ms <= now_ms))
        return result.rowcount
