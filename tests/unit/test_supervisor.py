"""The engine's supervisor: a loop that raises is logged, restarted after a pause, and shown
failing until it runs again; stopping ends it for good."""

from __future__ import annotations

import asyncio
import logging

import pytest

from reelgate.domain.health import LoopHealth
from reelgate.engine import supervisor
from reelgate.engine.jobs import Jobs


@pytest.fixture(autouse=True)
def _short_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "FIRST_BACKOFF_S", 0.01)


async def test_a_loop_that_raises_is_restarted_and_shown_failing_meanwhile(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop, health, runs = asyncio.Event(), LoopHealth("poller"), []

    async def flaky(stop: asyncio.Event) -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("the database said no")
        await stop.wait()

    with caplog.at_level(logging.ERROR):
        supervised = asyncio.create_task(
            supervisor.supervise("poller", flaky, stop, health, recovered_after_s=0.2)
        )
        for _ in range(200):
            if len(runs) >= 3:
                break
            await asyncio.sleep(0.01)
        failing = (health.running, health.restarts, health.healthy, health.last_error)
        await asyncio.sleep(0.3)  # runs past recovered_after_s without failing
        recovered = (health.running, health.healthy, health.failing_since, health.last_error)
        stop.set()
        await asyncio.wait_for(supervised, 2)
    assert failing == (True, 2, False, "RuntimeError: the database said no")
    assert recovered == (True, True, None, None)
    assert not health.running, "stopped for good"
    failures = [r for r in caplog.records if "'poller' failed" in r.getMessage()]
    assert len(failures) == 2
    assert all(r.exc_info is not None for r in failures), "logged with the exception"


@pytest.mark.parametrize(
    ("failures", "pause"), [(1, 0.01), (2, 0.02), (3, 0.04), (6, 0.32), (20, 30.0)]
)
def test_a_loop_failing_again_and_again_waits_twice_as_long_each_time_up_to_a_cap(
    failures: int, pause: float
) -> None:
    assert supervisor.pause_s(failures) == pytest.approx(pause)


async def test_stopping_gives_work_under_way_its_grace_then_cancels_the_rest() -> None:
    finished, cancelled = [], []

    async def quick() -> None:
        await asyncio.sleep(0.01)
        finished.append("quick")

    async def stuck() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append("stuck")
            raise

    jobs = Jobs(limit=4)
    jobs.start(quick())
    jobs.start(stuck())
    assert (jobs.running, jobs.room) == (2, 2)
    await asyncio.wait_for(jobs.drain(grace_s=0.1), 2)
    assert (finished, cancelled, jobs.running) == (["quick"], ["stuck"], 0)
