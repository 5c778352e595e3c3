"""``reelgate engine --metrics-port``: a separate engine process serves its own /metrics,
/healthz and /readyz, behind the same admin token."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx

from reelgate.upstream.kie import KieProvider
from tests.conftest import ADMIN_TOKEN, SANDBOX_KEY, GatewayFactory, SandboxFactory, free_port
from tests.integration.engine_helpers import TEXT, create, until_final
from tests.integration.metrics_helpers import scrape, value


async def _answering(url: str, seconds: float = 30) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(int(seconds / 0.1)):
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {seconds} s")


async def test_an_engine_process_serves_its_metrics_health_and_readiness(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory, database_url: str
) -> None:
    sandbox = start_sandbox()
    gateway = start_gateway(provider=KieProvider(sandbox, SANDBOX_KEY))
    key = await gateway.account_with_key("split", credit_usd="10")
    port = free_port()
    assert gateway.settings.secret_key is not None
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")},
        "REELGATE_DATABASE_URL": database_url,
        "REELGATE_SECRET_KEY": gateway.settings.secret_key.get_secret_value(),
        "REELGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "REELGATE_KIE_API_KEY": SANDBOX_KEY,
        "REELGATE_KIE_BASE_URL": sandbox,
        "REELGATE_MEDIA_DIR": str(gateway.settings.media_dir),
        "REELGATE_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "REELGATE_ENGINE_FIRST_POLL_S": "0.1",
        "REELGATE_ENGINE_POLL_MIN_S": "0.2",
        "REELGATE_ENGINE_POLL_MAX_S": "0.4",
    }
    engine = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "reelgate"),
        "engine",
        "--metrics-port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await _answering(f"{base}/healthz")
        async with gateway.client(key) as client:
            final = (await until_final(client, await create(client, TEXT)))[-1]
        async with httpx.AsyncClient(base_url=base) as client:
            ready = await client.get("/readyz")
            anonymous = await client.get("/metrics")
        samples = await scrape(base)
    finally:
        engine.terminate()
        await asyncio.wait_for(engine.wait(), timeout=20)
    assert final["state"] == "success"
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["engine"]["detail"] == "running: poller, webhooks, due"
    assert anonymous.status_code == 401
    assert value(samples, "reelgate_engine_checks_total", outcome="succeeded") == 1
    assert value(samples, "reelgate_engine_loop_running", loop="poller") == 1
    assert value(samples, "reelgate_upstream_requests_total", operation="fetch_status") >= 1
    # The gateway-wide totals are the API's to show, once.
    assert not [s for s in samples if s.name.startswith(("reelgate_tasks", "reelgate_ledger"))]
    assert engine.returncode == 0
