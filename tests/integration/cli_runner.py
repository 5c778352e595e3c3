"""Running the real ``reelgate`` command line as a subprocess, and reading the database behind
the gateway's back: what the billing and admin tests share."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import TEST_SECRET_KEY

# The console script installed beside the interpreter running the tests (.venv/bin/reelgate).
REELGATE: Final = Path(sys.executable).with_name("reelgate")
CLI_TIMEOUT_S: Final = 60.0


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


def cli_env(database_url: str, settings: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The test process's environment without any REELGATE_* setting but the database, the
    test's secret key (the one its gateways have) and ``settings`` (None unsets one)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("REELGATE_")}
    env["REELGATE_DATABASE_URL"] = database_url
    env["REELGATE_SECRET_KEY"] = TEST_SECRET_KEY
    for name, value in (settings or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


async def run_cli(
    database_url: str,
    *args: str,
    cwd: Path | None = None,
    settings: Mapping[str, str | None] | None = None,
) -> CliResult:
    """Run ``reelgate ARGS`` against the database, with REELGATE_* ``settings`` besides; killed
    if it outlasts CLI_TIMEOUT_S."""
    assert REELGATE.exists(), f"the reelgate console script is not installed at {REELGATE}"
    proc = await asyncio.create_subprocess_exec(
        str(REELGATE),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(database_url, settings),
        cwd=cwd,
    )
    try:
        async with asyncio.timeout(CLI_TIMEOUT_S):
            stdout, stderr = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return CliResult(proc.returncode, stdout.decode(), stderr.decode())


async def sql(
    database_url: str, statement: str, params: Mapping[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    """Run one SQL statement in its own committed transaction, outside the gateway's code;
    returns the rows it produced (none for a statement that returns nothing)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(sa.text(statement), dict(params or {}))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        await engine.dispose()


async def upstream_id(database_url: str, task_id: str) -> str:
    """The upstream's id the gateway recorded for a task (it never leaves the gateway, so it
    is read from the database). The create answers without waiting for that write, so this
    waits for it, at most five seconds."""
    for _ in range(100):
        rows = await sql(
            database_url, "SELECT upstream_task_id FROM tasks WHERE id = :id", {"id": task_id}
        )
        if rows and rows[0][0] is not None:
            value: str = rows[0][0]
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id}: no upstream id recorded within 5 s")


async def kept_values(database_url: str) -> list[str]:
    """Every value a copy of the database holds that could be a key: the meta table's values
    and the accounts' webhook secrets, as stored."""
    rows = await sql(
        database_url,
        "SELECT value FROM meta UNION ALL SELECT webhook_secret FROM accounts UNION ALL "
        "SELECT previous_webhook_secret FROM accounts WHERE previous_webhook_secret IS NOT NULL",
    )
    return [value for (value,) in rows]
