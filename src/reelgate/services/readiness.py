"""Whether this process should be sent work: what ``GET /readyz`` answers.

Ready means: not shutting down; the database answers, within a bound; its schema is the one
this reelgate needs; the engine loops this process runs are running; and the upstream is not
known dead (judged from the calls the gateway makes anyway, see
:class:`~reelgate.services.observed_provider.ObservedProvider`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from reelgate.domain.health import LoopHealth
from reelgate.errors import ReelgateError
from reelgate.services.observed_provider import ObservedProvider
from reelgate.store.database import Database
from reelgate.store.migrate import current_revision, head_revision

DATABASE_TIMEOUT_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


class Readiness:
    def __init__(self, db: Database, providers: Sequence[ObservedProvider] = ()) -> None:
        self.db = db
        self.providers = tuple(providers)
        """The upstream channels this process talks to; ready while any of them can take
        tasks (none: a process that talks to no upstream)."""
        self.head = head_revision()
        self.loops: tuple[LoopHealth, ...] = ()
        """The engine loops this process runs, when it runs them."""

    async def checks(self, draining: bool = False) -> list[Check]:
        """Every check, named; the process is ready when all of them pass. ``draining``: the
        process has begun to shut down (it still serves, but wants no new work)."""
        shutdown = "shutting down: send new work elsewhere" if draining else "serving"
        checks = [Check("shutdown", not draining, shutdown)]
        checks.extend(await self._database())
        checks.append(self._engine())
        if self.providers:
            checks.append(await self._upstreams())
        return checks

    async def _database(self) -> list[Check]:
        try:
            async with asyncio.timeout(DATABASE_TIMEOUT_S):
                current = await current_revision(self.db)
        except TimeoutError:
            detail = f"the database did not answer within {DATABASE_TIMEOUT_S:g} s"
            return [Check("database", False, detail), Check("schema", False, "unknown")]
        except ReelgateError as exc:
            return [Check("database", False, exc.message), Check("schema", False, "unknown")]
        answered = Check("database", True, "answers")
        if current == self.head:
            return [answered, Check("schema", True, f"at {current}")]
        found = "never migrated" if current is None else f"at {current}"
        detail = f"{found}, this reelgate needs {self.head}: run `reelgate migrate`"
        return [answered, Check("schema", False, detail)]

    def _engine(self) -> Check:
        if not self.loops:
            return Check("engine", True, "this process runs no engine")
        stopped = [loop.name for loop in self.loops if not loop.running]
        if stopped:
            # Why is for the logs: this answer goes to whoever asks.
            detail = f"not running: {', '.join(stopped)} (failed; restarting, see the logs)"
            return Check("engine", False, detail)
        return Check("engine", True, f"running: {', '.join(loop.name for loop in self.loops)}")

    async def _upstreams(self) -> Check:
        failing = []
        for provider in self.providers:
            if await provider.alive():
                return Check("upstream", True, f"the {provider.channel} channel can take tasks")
            health = provider.health
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(health.failing_since or 0))
            failing.append(
                f"every call to the {provider.channel} channel has failed since {since} "
                f"(last: {health.last_error})"
            )
        return Check("upstream", False, "; ".join(failing))
