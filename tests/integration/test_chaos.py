"""The fault suite (bench/chaos.py), shortened: processes killed with SIGKILL while tasks flow
through a faulty upstream lose no accepted task, create none upstream twice, keep every video
and bill every task exactly once. On PostgreSQL the API and two engines run apart and each is
killed; on SQLite the one ``serve`` (its engine inside) is killed and restarted in place."""

from __future__ import annotations

from pathlib import Path

from bench.chaos import Options, run_chaos

SHORT = Options(
    seconds=20,
    rate=4,
    accounts=3,
    engines=2,
    engine_kill_every_s=3,
    serve_kill_every_s=6,
    drain_s=45,
    unknown_submission_s=12,
)


async def test_killed_processes_lose_no_task_create_none_twice_and_bill_each_once(
    database_url: str, tmp_path: Path
) -> None:
    report = await run_chaos(SHORT, database_url, tmp_path)
    figures = report.figures
    assert report.violations == []
    # The run did what it is about: tasks accepted and ended, processes killed meanwhile.
    assert figures["accepted"] >= SHORT.seconds * SHORT.rate * 0.8
    assert figures["final"] == figures["tasks_in_db"]
    assert figures["serve_kills"] >= 1
    if report.database == "postgres":
        assert figures["engine_kills"] >= 2
