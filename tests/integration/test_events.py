"""GET /v1/tasks/{task_id}/events: one Server-Sent Event per state or progress change, closing
after the final one."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.engine_helpers import FAST_ENGINE, TEXT, create, until_final

ORDER = ["waiting", "queuing", "generating", "success", "fail"]


def _parse(stream: str) -> list[dict[str, str]]:
    """The events of a text/event-stream, each as its fields; comments dropped."""
    events = []
    for block in stream.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = fields[name] + "\n" + value if name in fields else value
        if fields:
            events.append(fields)
    return events


async def _follow(
    client: httpx.AsyncClient, task_id: str, headers: dict[str, str] | None = None
) -> tuple[httpx.Response, list[dict[str, str]]]:
    """The whole stream, read until the server closes it (bounded)."""
    async with client.stream("GET", f"/v1/tasks/{task_id}/events", headers=headers) as answer:
        text = (await asyncio.wait_for(answer.aread(), 30)).decode()
    return answer, _parse(text)


@pytest.mark.usefixtures("quick_sandbox")
async def test_the_stream_tells_each_change_in_order_and_closes_after_the_final_state(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(**FAST_ENGINE)
    key = await gateway.account_with_key("viewer", credit_usd="10")
    async with gateway.client(key) as client:
        task_id = await create(client, TEXT)
        answer, events = await _follow(client, task_id)
        polled = (await client.get(f"/v1/tasks/{task_id}")).json()
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    tasks: list[dict[str, Any]] = [orjson.loads(event["data"]) for event in events]
    assert all(event["event"] == "task" for event in events)
    assert [event["id"] for event in events] == [f"{t['state']}:{t['progress']}" for t in tasks]
    assert len({event["id"] for event in events}) == len(events), "one event per change"
    states = [ORDER.index(task["state"]) for task in tasks]
    progress = [task["progress"] for task in tasks]
    assert states == sorted(states)
    assert progress == sorted(progress)
    assert len(events) >= 3
    assert tasks[0]["state"] == "waiting"
    assert tasks[-1] == polled
    assert tasks[-1]["state"] == "success"


@pytest.mark.usefixtures("quick_sandbox")
async def test_a_finished_task_gives_one_event_and_a_client_that_saw_it_gets_204(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(**FAST_ENGINE)
    key = await gateway.account_with_key("late", credit_usd="10")
    async with gateway.client(key) as client:
        task_id = await create(client, TEXT)
        await until_final(client, task_id)
        _, events = await _follow(client, task_id)
        again, more = await _follow(client, task_id, {"last-event-id": events[-1]["id"]})
    assert len(events) == 1
    assert orjson.loads(events[0]["data"])["state"] == "success"
    assert again.status_code == 204
    assert more == []


async def test_only_the_owner_may_follow_a_task(gateway: RunningGateway, api_key: str) -> None:
    stranger = await gateway.account_with_key("stranger")
    async with gateway.client(api_key) as owner:
        task_id = await create(owner, TEXT)
    async with gateway.client(stranger) as other, gateway.client() as anonymous:
        not_theirs = await other.get(f"/v1/tasks/{task_id}/events")
        no_key = await anonymous.get(f"/v1/tasks/{task_id}/events")
        unknown = await other.get("/v1/tasks/task_nothing/events")
    assert (not_theirs.status_code, not_theirs.json()["error"]) == (404, "not_found")
    assert no_key.status_code == 401
    assert unknown.status_code == 404
