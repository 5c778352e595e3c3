"""Each channel's circuit and recent calls, kept where every process of a deployment sees them.

Only changes are written: a failure, the first success after failures, a probe claimed, and
every few seconds the count of calls that went well. The decisions themselves are
:mod:`reelgate.domain.channels`'.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from reelgate.domain.channels import Circuit, after_failure
from reelgate.store.database import Database
from reelgate.store.schema import UNFINISHED_SQL, channel_circuits, tasks

WINDOW_MS: Final = 5 * 60 * 1000
"""How far back the recent error rate looks (roughly: the window restarts when it is over)."""

_c = channel_circuits.c


@dataclass(frozen=True, slots=True)
class CircuitRow:
    channel: str
    circuit: Circuit
    last_error: str | None = None
    last_error_at_ms: int | None = None
    calls: int = 0
    errors: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


def _row(row: sa.Row[tuple[object, ...]]) -> CircuitRow:
    m = row._mapping
    return CircuitRow(
        channel=m["channel"],
        circuit=Circuit(m["failures"], m["open_until_ms"], m["probe_until_ms"]),
        last_error=m["last_error"],
        last_error_at_ms=m["last_error_at_ms"],
        calls=m["calls"],
        errors=m["errors"],
    )


async def ensure(db: Database, channels: Iterable[str]) -> None:
    """A row for every channel, made once; rows of channels no longer configured are kept."""
    async with db.read() as conn:
        known = set((await conn.execute(sa.select(_c.channel))).scalars())
    for channel in channels:
        if channel in known:
            continue
        try:
            async with db.write() as conn:
                await conn.execute(channel_circuits.insert().values(channel=channel))
        except IntegrityError:
            pass  # another process made it meanwhile


async def read_all(db: Database) -> dict[str, CircuitRow]:
    async with db.read() as conn:
        rows = await conn.execute(sa.select(channel_circuits))
        return {row.channel: _row(row) for row in rows}


def _window(now_ms: int) -> dict[str, object]:
    """Values that restart the call counts when the window is over (else keep them)."""
    over = _c.window_started_ms < now_ms - WINDOW_MS
    return {
        "window_started_ms": sa.case((over, now_ms), else_=_c.window_started_ms),
        "calls": sa.case((over, 0), else_=_c.calls),
        "errors": sa.case((over, 0), else_=_c.errors),
    }


async def record_failure(
    db: Database, channel: str, code: str, now_ms: int, threshold: int, cool_down_s: float
) -> Circuit:
    """One more consecutive failure; the circuit as it now stands."""
    async with db.write() as conn:
        row = (
            await conn.execute(
                sa.select(channel_circuits).where(_c.channel == channel).with_for_update()
            )
        ).one_or_none()
        current = _row(row).circuit if row is not None else Circuit()
        circuit = after_failure(current, now_ms, threshold=threshold, cool_down_s=cool_down_s)
        await conn.execute(
            channel_circuits.update().where(_c.channel == channel).values(**_window(now_ms))
        )
        await conn.execute(
            channel_circuits.update()
            .where(_c.channel == channel)
            .values(
                failures=circuit.failures,
                open_until_ms=circuit.open_until_ms,
                probe_until_ms=circuit.probe_until_ms,
                last_error=code[:100],
                last_error_at_ms=now_ms,
                calls=_c.calls + 1,
                errors=_c.errors + 1,
            )
        )
        return circuit


async def record_success(db: Database, channel: str) -> None:
    """The circuit closes (a call went well after failures, or a probe succeeded)."""
    async with db.write() as conn:
        await conn.execute(
            channel_circuits.update()
            .where(_c.channel == channel)
            .values(failures=0, open_until_ms=None, probe_until_ms=None)
        )


async def add_calls(db: Database, counts: dict[str, int], now_ms: int) -> None:
    """Calls that went well, counted in this process since the last time."""
    async with db.write() as conn:
        for channel, calls in counts.items():
            await conn.execute(
                channel_circuits.update().where(_c.channel == channel).values(**_window(now_ms))
            )
            await conn.execute(
                channel_circuits.update()
                .where(_c.channel == channel)
                .values(calls=_c.calls + calls)
            )


async def claim_probe(db: Database, channel: str, now_ms: int, hold_ms: int) -> bool:
    """Take the one probe of a half-open channel: True for the one caller that got it."""
    async with db.write() as conn:
        claimed = await conn.execute(
            channel_circuits.update()
            .where(
                _c.channel == channel,
                _c.open_until_ms.is_not(None),
                _c.open_until_ms <= now_ms,
                sa.or_(_c.probe_until_ms.is_(None), _c.probe_until_ms <= now_ms),
            )
            .values(probe_until_ms=now_ms + hold_ms)
        )
        return bool(claimed.rowcount)


async def in_flight(db: Database, channels: Iterable[str] | None = None) -> dict[str, int]:
    """Unfinished tasks per channel (only ``channels`` when given)."""
    query = (
        sa.select(tasks.c.channel, sa.func.count())
        .where(sa.text(UNFINISHED_SQL))
        .group_by(tasks.c.channel)
    )
    if channels is not None:
        query = query.where(tasks.c.channel.in_(list(channels)))
    async with db.read() as conn:
        return {channel: int(count) for channel, count in await conn.execute(query)}
