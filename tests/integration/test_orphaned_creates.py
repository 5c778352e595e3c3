"""A `reelgate serve` killed (kill -9) while a create waited on the upstream leaves a task whose
submission is pending and whose money is held. Nothing may resend it blindly: it is found
again by its callback, or failed with its money released once it cannot be found."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import ADMIN_TOKEN, SANDBOX_KEY, TEST_SECRET_KEY, SandboxFactory, free_port
from tests.integration.engine_helpers import TEXT
from tests.sandbox_support import kie_client

REELGATE = Path(sys.executable).with_name("reelgate")


@asynccontextmanager
async def serve(env: dict[str, str], port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """`reelgate serve` as an operator starts it; killed with SIGKILL if the test has not."""
    proc = await asyncio.create_subprocess_exec(
        str(REELGATE),
        "serve",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(timeout=1) as probe:
            for _ in range(300):
                try:
                    if (await probe.get(f"http://127.0.0.1:{port}/v1/models")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("reelgate serve did not start within 30 s")
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()


async def _tasks(database_url: str) -> list[dict[str, Any]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT state, submission, billing_status, error FROM tasks")
            )
            return [dict(row._mapping) for row in rows]
    finally:
        await engine.dispose()


async def _orphan_a_create(env: dict[str, str], port: int, sandbox: str, database_url: str) -> None:
    """Start serve, send a create the sandbox takes but never answers, kill -9 serve."""
    async with serve(env, port) as proc:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(
            base_url=base, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as admin:
            assert (
                await admin.post("/admin/accounts", json={"name": "orphan", "credit_usd": "5"})
            ).status_code == 201
            key = (await admin.post("/admin/accounts/orphan/keys")).json()["key"]
        async with httpx.AsyncClient(
            base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            waiting = asyncio.create_task(client.post("/v1/videos/generations", json=TEXT))
            async with kie_client(sandbox) as kie:
                for _ in range(100):
                    if (await kie.get("/sandbox/stats")).json()["created"] == 1:
                        break
                    await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            try:
                await waiting
            except httpx.TransportError:
                pass  # the client never learned its task's id
            else:
                raise AssertionError("the create was answered before serve was killed")
    [task] = await _tasks(database_url)
    assert (task["state"], task["submission"], task["billing_status"]) == (
        "waiting",
        "pending",
        "reserved",
    )


def _env(database_url: str, sandbox: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")},
        "REELGATE_DATABASE_URL": database_url,
        "REELGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "REELGATE_SECRET_KEY": TEST_SECRET_KEY,
        "REELGATE_KIE_API_KEY": SANDBOX_KEY,
        "REELGATE_KIE_BASE_URL": sandbox,
        "REELGATE_KIE_TIMEOUT_S": "30",
        "REELGATE_MEDIA_DIR": str(tmp_path / "media"),
        "REELGATE_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "REELGATE_PENDING_SUBMISSION_S": "1",
        "REELGATE_ENGINE_FIRST_POLL_S": "0.2",
        "REELGATE_ENGINE_POLL_MIN_S": "0.2",
        "REELGATE_ENGINE_POLL_MAX_S": "0.5",
        **extra,
    }


async def _until_ended(database_url: str, seconds: float) -> dict[str, Any]:
    for _ in range(int(seconds * 10)):
        [task] = await _tasks(database_url)
        if task["state"] in ("success", "fail"):
            return task
        await asyncio.sleep(0.1)
    raise AssertionError(f"the orphaned task did not end within {seconds} s: {task}")


async def test_an_orphaned_create_is_found_again_by_its_callback_and_never_resent(
    start_sandbox: SandboxFactory, database_url: str, tmp_path: Path
) -> None:
    # The sandbox makes the task, never answers the create, and calls back once the video is
    # ready, retrying for a while: the gateway is back by then however slowly it restarts.
    sandbox = start_sandbox(
        generating_s=4,
        hang_s=30,
        # Three attempts, the last about 20 s after the create: a restart slowed by a busy
        # machine is still back in time.
        callback_retry_s=8,
        faults={"create": {"timeout_after_create": 1.0}},
    )
    port = free_port()
    env = _env(database_url, sandbox, tmp_path, REELGATE_PUBLIC_URL=f"http://127.0.0.1:{port}")
    await _orphan_a_create(env, port, sandbox, database_url)
    async with serve(env, port):
        task = await _until_ended(database_url, 45)
    assert (task["state"], task["submission"], task["billing_status"]) == (
        "success",
        "accepted",
        "committed",
    )
    async with kie_client(sandbox) as kie:
        stats = (await kie.get("/sandbox/stats")).json()
    assert stats["created"] == 1, "never sent twice"
    assert stats["callbacks_sent"] >= 1


async def test_an_orphaned_create_never_found_again_fails_with_its_money_released(
    start_sandbox: SandboxFactory, database_url: str, tmp_path: Path
) -> None:
    # No callback address: nothing can find the task again.
    sandbox = start_sandbox(hang_s=30, faults={"create": {"timeout_after_create": 1.0}})
    port = free_port()
    env = _env(database_url, sandbox, tmp_path, REELGATE_UNKNOWN_SUBMISSION_S="4")
    await _orphan_a_create(env, port, sandbox, database_url)
    async with serve(env, port):
        task = await _until_ended(database_url, 30)
    assert (task["state"], task["submission"], task["billing_status"]) == (
        "fail",
        "unknown",
        "released",
    )
    assert '"submission_lost"' in task["error"]
    async with kie_client(sandbox) as kie:
        assert (await kie.get("/sandbox/stats")).json()["created"] == 1
