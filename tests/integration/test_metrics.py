"""GET /metrics on a gateway served over loopback, on both databases: who may read it, and what
each metric counts, read back with Prometheus's own parser."""

from __future__ import annotations

import asyncio

import httpx
import pytest

import reelgate
from reelgate.errors import UpstreamError
from tests.conftest import GatewayFactory, RunningGateway
from tests.doubles import RefusingProvider
from tests.integration.api_helpers import (
    CREATE_PATHS,
    VALID_REQUEST,
    assert_error,
    create_task,
    issue_key,
)
from tests.integration.cli_runner import sql
from tests.integration.engine_helpers import FAST_ENGINE, TEXT, create, until_final
from tests.integration.metrics_helpers import scrape, value
from tests.sandbox_support import eventually, receiver

POLL = "/v1/tasks/{task_id}"


async def test_metrics_are_for_the_admin_token_only(gateway: RunningGateway) -> None:
    async with gateway.client() as anonymous:
        assert_error(await anonymous.get("/metrics"), 401, "unauthorized")
    async with gateway.client("rg_not-the-admin-token") as client:
        assert_error(await client.get("/metrics"), 401, "unauthorized")
    assert value(await scrape(gateway.base_url), "reelgate_build_info") == 1


async def test_metrics_made_public_need_no_token(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(metrics_public=True)
    samples = await scrape(gateway.base_url, token=None)
    assert value(samples, "reelgate_build_info", version=reelgate.__version__) == 1
    assert value(samples, "process_resident_memory_bytes") > 0


async def test_requests_are_counted_by_route_template_never_by_path(
    gateway: RunningGateway, api_key: str
) -> None:
    async with gateway.client(api_key) as client:
        task = await create_task(client)
        for _ in range(3):  # from the database once, then from memory (the poll fast path)
            assert (await client.get(task["poll_url"])).status_code == 200
        await client.post(CREATE_PATHS[1], json=VALID_REQUEST)
        assert (await client.get("/v1/models/seedance-2")).status_code == 200
        assert (await client.get("/no/such/route")).status_code == 404
        assert (await client.put(CREATE_PATHS[0])).status_code == 405
    samples = await scrape(gateway.base_url)
    requests = "reelgate_http_requests_total"
    assert value(samples, requests, route=POLL, method="GET", status="200") == 3
    assert value(samples, requests, route=CREATE_PATHS[0], method="POST", status="202") == 1
    assert value(samples, requests, route=CREATE_PATHS[1], method="POST", status="202") == 1
    assert value(samples, requests, route=CREATE_PATHS[0], method="PUT", status="405") == 1
    assert value(samples, requests, route="/v1/models/{model_id}", status="200") == 1
    assert value(samples, requests, route="unmatched", status="404") == 1
    durations = "reelgate_http_request_duration_seconds_count"
    assert value(samples, durations, route=POLL, method="GET") == 3
    routes = {s.labels["route"] for s in samples if "route" in s.labels}
    assert not [route for route in routes if task["task_id"] in route or "seedance" in route]


async def test_creates_are_counted_by_model_and_outcome(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway()
    rich = (await issue_key(gateway, "rich"))["key"]
    poor = (await issue_key(gateway, "poor", "0.01"))["key"]
    async with gateway.client(rich) as client:
        await create_task(client)
        await client.post(CREATE_PATHS[0], json={**VALID_REQUEST, "duration": 99})
        await client.post(CREATE_PATHS[0], content=b"{", headers={"content-type": "x"})
    async with gateway.client(poor) as client:
        await client.post(CREATE_PATHS[0], json={**VALID_REQUEST, "model": "seedance-2"})
    async with gateway.client("rg_unknown-key-for-this-test") as client:
        await client.post(CREATE_PATHS[0], json=VALID_REQUEST)
    samples = await scrape(gateway.base_url)
    creates = "reelgate_task_creates_total"
    fast = VALID_REQUEST["model"]
    assert value(samples, creates, model=fast, outcome="accepted") == 1
    assert value(samples, creates, model=fast, outcome="invalid") == 1
    assert value(samples, creates, model="unknown", outcome="invalid") == 1
    assert value(samples, creates, model="seedance-2", outcome="insufficient_balance") == 1
    assert value(samples, creates, model="unknown", outcome="unauthorized") == 1


async def test_refused_creates_are_counted_with_the_upstream_call_that_refused_them(
    start_gateway: GatewayFactory,
) -> None:
    refusing = RefusingProvider(
        UpstreamError("the video provider is under maintenance", code="upstream_maintenance")
    )
    gateway = start_gateway(provider=refusing)
    key = (await issue_key(gateway, "refused"))["key"]
    async with gateway.client(key) as client:
        assert (await client.post(CREATE_PATHS[0], json=VALID_REQUEST)).status_code == 502
    samples = await scrape(gateway.base_url)
    model = VALID_REQUEST["model"]
    assert value(samples, "reelgate_task_creates_total", model=model, outcome="upstream_refused")
    calls = "reelgate_upstream_requests_total"
    assert value(samples, calls, channel="kie", operation="submit", outcome="maintenance") == 1
    timed = "reelgate_upstream_request_duration_seconds_count"
    assert value(samples, timed, channel="kie", operation="submit") == 1


async def test_the_database_totals_are_exactly_the_tasks_and_the_ledger(
    gateway: RunningGateway, api_key: str, database_url: str
) -> None:
    async with gateway.client(api_key) as client:
        await create_task(client)
        await create_task(client)
    samples = await scrape(gateway.base_url)
    for kind, total in await sql(
        database_url, "SELECT kind, SUM(amount_micro_usdc) FROM ledger GROUP BY kind"
    ):
        assert value(samples, "reelgate_ledger_micro_usdc_total", kind=kind) == total
    assert value(samples, "reelgate_ledger_micro_usdc_total", kind="credit") == 100_000_000
    assert value(samples, "reelgate_ledger_micro_usdc_total", kind="reserve") == 2 * 825_000
    assert value(samples, "reelgate_ledger_micro_usdc_total", kind="commit") == 0
    assert value(samples, "reelgate_tasks", state="waiting") == 2
    assert value(samples, "reelgate_tasks", state="success") == 0


@pytest.mark.usefixtures("quick_sandbox")
async def test_the_engine_counts_its_checks_their_lateness_and_its_webhooks(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(**FAST_ENGINE, allowed_networks=["127.0.0.0/8"])
    key = await gateway.account_with_key("engine", credit_usd="10")
    with receiver() as hook:
        async with gateway.client(key) as client:
            final = await until_final(
                client, await create(client, {**TEXT, "callBackUrl": hook.url})
            )
        await eventually(hook.count(1))
    assert final[-1]["state"] == "success"
    samples = await scrape(gateway.base_url)
    checks = "reelgate_engine_checks_total"
    assert value(samples, checks, channel="kie", outcome="succeeded") == 1
    assert value(samples, checks, channel="kie") >= 2
    assert value(samples, "reelgate_engine_due_lag_seconds_count") == value(samples, checks)
    assert value(samples, "reelgate_engine_in_flight") >= 0
    for loop in ("poller", "webhooks"):
        assert value(samples, "reelgate_engine_loop_running", loop=loop) == 1
        assert value(samples, "reelgate_engine_loop_healthy", loop=loop) == 1
        assert value(samples, "reelgate_engine_loop_restarts_total", loop=loop) == 0
    delivered = "reelgate_webhook_deliveries_total"
    for _ in range(100):  # the receiver has it: the sender counts it as its answer arrives
        samples = await scrape(gateway.base_url)
        if value(samples, delivered, outcome="delivered"):
            break
        await asyncio.sleep(0.05)
    assert value(samples, delivered, outcome="delivered") == 1
    upstream = "reelgate_upstream_requests_total"
    assert value(samples, upstream, operation="fetch_status", outcome="ok") >= 1
    assert value(samples, "reelgate_tasks", state="success") == 1


async def test_a_gateway_without_an_engine_shows_no_engine_loops(
    gateway: RunningGateway,
) -> None:
    samples = await scrape(gateway.base_url)
    assert not [s for s in samples if s.name.startswith("reelgate_engine_loop")]


async def test_a_wrong_admin_token_is_refused_without_saying_what_it_should_be(
    gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url) as client:
        answer = await client.get("/metrics", headers={"authorization": "Bearer rga_wrong"})
    body = assert_error(answer, 401, "unauthorized")
    assert "rga_" not in body["message"]
