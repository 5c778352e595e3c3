"""The metrics that describe the whole gateway rather than one process: tasks by state and the
money in the ledger, read from the database and kept for a few seconds.

Money is read from the ledger rather than counted where it moves: the ledger is append-only,
so its sums by kind are counters that every process (and the command line's credits) adds to,
exact to the micro-USDC, unaffected by restarts, and the same whichever process is asked. Both
cost one scan per refresh, hence the cache; ``serve`` exposes them, engines do not (one series
per gateway, not per process).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reelgate.domain.task import LedgerKind, TaskState
from reelgate.errors import Unavailable
from reelgate.store import stats
from reelgate.store.database import Database

log = logging.getLogger(__name__)

FRESH_FOR_S: Final = 5.0


class DatabaseMetrics(Collector):
    def __init__(self, db: Database, fresh_for_s: float = FRESH_FOR_S) -> None:
        self.db = db
        self.fresh_for_s = fresh_for_s
        self._totals: stats.Totals | None = None
        self._read_at = float("-inf")
        self._reading = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the totals again unless they are fresh; one reader at a time, the others wait
        for its answer. A database that cannot answer leaves the last totals in place."""
        if time.monotonic() - self._read_at < self.fresh_for_s:
            return
        async with self._reading:
            if time.monotonic() - self._read_at < self.fresh_for_s:
                return
            try:
                self._totals = await stats.totals(self.db)
            except Unavailable:
                log.warning("metrics: the database did not answer; its totals are not fresh")
                return
            self._read_at = time.monotonic()

    async def current(self) -> stats.Totals | None:
        """The totals, read again unless fresh; None until the database has answered once."""
        await self.refresh()
        return self._totals

    def collect(self) -> Iterable[Metric]:
        tasks = GaugeMetricFamily(
            "reelgate_tasks", "Tasks by state, in the database.", labels=["state"]
        )
        money = CounterMetricFamily(
            "reelgate_ledger_micro_usdc",
            "Micro-USDC moved by the ledger's entries, by kind (reserve, commit, release, "
            "credit), in the database.",
            labels=["kind"],
        )
        totals = self._totals
        if totals is not None:
            for state in TaskState:
                tasks.add_metric([state.value], totals.tasks_by_state.get(state.value, 0))
            for kind in LedgerKind:
                money.add_metric([kind.value], totals.micro_usdc_by_kind.get(kind.value, 0))
        return [tasks, money]
