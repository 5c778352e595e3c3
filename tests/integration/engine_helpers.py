"""What the engine's end-to-end tests share: fast engine settings, short sandbox timings, and
creating and following tasks over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any, Final

import httpx

from reelgate.store.audit import audit
from reelgate.store.database import Database
from tests.conftest import RunningGateway

FAST_ENGINE: Final[dict[str, Any]] = {
    "run_engine": True,
    "engine_first_poll_s": 0.2,
    "engine_poll_min_s": 0.2,
    "engine_poll_max_s": 0.5,
}
SANDBOX_ON_LOOPBACK: Final[dict[str, Any]] = {"allowed_networks": ["127.0.0.0/8"]}
"""A standalone sandbox listens on loopback: its videos may be copied only once the operator
allows that network (the embedded sandbox alone is trusted without it)."""
TEXT: Final[dict[str, Any]] = {
    "model": "seedance-2-fast",
    "prompt": "a red kite over dunes",
    "resolution": "480p",
    "duration": 4,
}
FINAL: Final = ("success", "fail")


async def create(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    created = await client.post("/v1/videos/generations", json=body)
    assert created.status_code == 202, created.text
    task_id: str = created.json()["task_id"]
    return task_id


async def until_final(
    client: httpx.AsyncClient, task_id: str, seconds: float = 30
) -> list[dict[str, Any]]:
    """Every answer of polling the task until it ends (bounded)."""
    seen: list[dict[str, Any]] = []
    for _ in range(int(seconds / 0.1)):
        task = (await client.get(f"/v1/tasks/{task_id}")).json()
        seen.append(task)
        if task["state"] in FINAL:
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"task {task_id} did not end within {seconds} s: {seen[-1]}")


async def audit_passes(gateway: RunningGateway) -> None:
    db = Database(gateway.settings.database_url)
    try:
        assert await audit(db) == []
    finally:
        await db.dispose()
