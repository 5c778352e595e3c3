"""The console's server side on both databases: the operator's dashboard counts creates and
completions per minute, and tasks by state, from the database the gateway runs on."""

from __future__ import annotations

import html
import re
from pathlib import Path

import orjson

from tests.conftest import ADMIN_TOKEN, GatewayFactory


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


async def test_the_dashboard_counts_what_was_created_and_ended_this_minute(
    start_gateway: GatewayFactory, quick_sandbox: Path
) -> None:
    gateway = start_gateway(run_engine=True)
    key = await gateway.account_with_key("erin")
    async with gateway.client(key) as client:
        created = await client.post(
            "/v1/videos/generations",
            json={"model": "seedance-2-fast", "prompt": "a lighthouse", "duration": 4},
        )
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]
        # The stream ends with the task's final state.
        async with client.stream("GET", f"/v1/tasks/{task_id}/events") as stream:
            events = [line async for line in stream.aiter_lines() if line.startswith("data:")]
        assert orjson.loads(events[-1].removeprefix("data:"))["state"] == "success"
    async with gateway.client() as browser_like:
        token = _csrf((await browser_like.get("/console/sign-in")).text)
        signed_in = await browser_like.post(
            "/console/sign-in", data={"csrf": token, "secret": ADMIN_TOKEN}
        )
        assert signed_in.status_code == 303
        page = await browser_like.get("/console/dashboard")
    assert page.status_code == 200
    found = re.search(r'id="charts" data-json="([^"]*)"', page.text)
    assert found is not None
    charts = orjson.loads(html.unescape(found.group(1)))
    assert sum(charts["minutes"]["creates"]) == 1
    assert sum(charts["minutes"]["completions"]) == 1
    assert sum(charts["day"]["seconds"]) == 4
    assert 'id="count-success">1<' in page.text
