"""Creates through the gateway reach the upstream: the KIE adaptor against the sandbox over HTTP."""

from __future__ import annotations

import asyncio

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from reelgate.upstream.kie import KieProvider
from tests.conftest import SANDBOX_KEY, GatewayFactory, RunningGateway, SandboxFactory, free_port
from tests.integration.cli_runner import upstream_id
from tests.integration.engine_helpers import FAST_ENGINE
from tests.spec_examples import TEXT_TO_VIDEO as FIRST_EXAMPLE

COST = 825_000


async def _task_row(database_url: str, task_id: str) -> sa.RowMapping:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            row = await conn.execute(sa.text("SELECT * FROM tasks WHERE id = :id"), {"id": task_id})
            return row.mappings().one()
    finally:
        await engine.dispose()


async def _available(gateway: RunningGateway, account: str) -> int:
    async with gateway.admin() as admin:
        available: int = (await admin.get(f"/admin/accounts/{account}")).json()[
            "available_micro_usdc"
        ]
        return available


async def test_the_embedded_sandbox_receives_the_task_and_its_id_stays_inside(
    gateway: RunningGateway, api_key: str
) -> None:
    async with gateway.client(api_key) as client:
        created = await client.post("/v1/videos/generations", json=FIRST_EXAMPLE)
        assert created.status_code == 202, created.text
        task = await client.get(created.json()["poll_url"])
    upstream_task_id = await upstream_id(gateway.settings.database_url, created.json()["task_id"])
    row = await _task_row(gateway.settings.database_url, created.json()["task_id"])
    assert row["submission"] == "accepted"
    assert upstream_task_id.startswith("task_bytedance_")
    assert upstream_task_id not in task.text
    assert task.json()["state"] == "waiting"


async def test_a_create_the_sandbox_refuses_is_502_with_the_reservation_released(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    sandbox = start_sandbox(faults={"create": {"body_codes": {455: 1.0}}})
    gateway = start_gateway(provider=KieProvider(sandbox, SANDBOX_KEY))
    key = await gateway.account_with_key("refused", credit_usd="1")
    async with gateway.client(key) as client:
        refused = await client.post("/v1/videos/generations", json=FIRST_EXAMPLE)
    assert refused.status_code == 502
    assert refused.json()["code"] == "upstream_maintenance"
    assert "kie" not in refused.text.lower()
    assert await _available(gateway, "refused") == 1_000_000


async def test_a_create_answered_with_http_500_is_502_and_the_failed_task_costs_nothing(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory, database_url: str
) -> None:
    sandbox = start_sandbox(faults={"create": {"http_500": 1.0}})
    gateway = start_gateway(provider=KieProvider(sandbox, SANDBOX_KEY))
    key = await gateway.account_with_key("broken", credit_usd="1")
    async with gateway.client(key) as client:
        refused = await client.post("/v1/videos/generations", json=FIRST_EXAMPLE)
    assert refused.status_code == 502
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT state, billing_status FROM tasks"))).all()
            kinds = (
                (await conn.execute(sa.text("SELECT kind FROM ledger ORDER BY id"))).scalars().all()
            )
    finally:
        await engine.dispose()
    assert [tuple(row) for row in rows] == [("fail", "released")]
    assert kinds == ["credit", "reserve", "release"]
    assert await _available(gateway, "broken") == 1_000_000


async def test_a_create_that_times_out_after_the_sandbox_made_it_is_recorded_not_resent(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    sandbox = start_sandbox(hang_s=2, faults={"create": {"timeout_after_create": 1.0}})
    # The engine runs and goes over the task again and again: it must never send it again.
    gateway = start_gateway(
        provider=KieProvider(sandbox, SANDBOX_KEY, timeout_s=0.5), **FAST_ENGINE
    )
    key = await gateway.account_with_key("unsure", credit_usd="1")
    async with gateway.client(key) as client:
        created = await client.post("/v1/videos/generations", json=FIRST_EXAMPLE)
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]
        for _ in range(100):  # at most 10 s
            row = await _task_row(gateway.settings.database_url, task_id)
            if row["polls"] >= 5:
                break
            await asyncio.sleep(0.1)
        task = (await client.get(created.json()["poll_url"])).json()
    assert row["polls"] >= 5, "the engine went over the task"
    assert (row["submission"], row["upstream_task_id"]) == ("unknown", None)
    assert (task["state"], task["billing"]["status"]) == ("waiting", "reserved")
    assert await _available(gateway, "unsure") == 1_000_000 - COST
    async with httpx.AsyncClient(base_url=sandbox) as sandbox_client:
        stats = (
            await sandbox_client.get(
                "/sandbox/stats", headers={"authorization": f"Bearer {SANDBOX_KEY}"}
            )
        ).json()
    assert (stats["created"], stats["record_calls"]) == (1, 0)


async def test_a_task_whose_create_went_unanswered_is_found_again_by_its_callback(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    sandbox = start_sandbox(hang_s=1, faults={"create": {"timeout_after_create": 1.0}})
    port = free_port()
    gateway = start_gateway(
        provider=KieProvider(sandbox, SANDBOX_KEY, timeout_s=0.3),
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        run_engine=True,  # it copies the video the callback announces
        allowed_networks=["127.0.0.0/8"],  # from the sandbox on loopback
    )
    key = await gateway.account_with_key("found", credit_usd="1")
    async with gateway.client(key) as client:
        created = await client.post("/v1/videos/generations", json=FIRST_EXAMPLE)
        assert created.status_code == 202, created.text
        for _ in range(300):  # at most 30 s
            task = (await client.get(created.json()["poll_url"])).json()
            if task["state"] == "success":
                break
            await asyncio.sleep(0.1)
    assert (task["state"], task["billing"]["status"]) == ("success", "committed")
    row = await _task_row(gateway.settings.database_url, created.json()["task_id"])
    assert row["submission"] == "accepted"
