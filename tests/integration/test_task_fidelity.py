"""What a task tells of itself beyond the contract: the request id of the create that made it,
and a hint of how long it still has to go."""

from __future__ import annotations

import pytest

from tests.conftest import GatewayFactory, RunningGateway
from tests.doubles import AcceptingProvider
from tests.integration.api_helpers import CREATE_PATHS, VALID_REQUEST, create_task, issue_key
from tests.integration.cli_runner import sql


async def test_a_request_id_sent_is_echoed_and_kept_with_the_task(
    gateway: RunningGateway, api_key: str
) -> None:
    async with gateway.client(api_key) as client:
        created = await client.post(
            CREATE_PATHS[0], json=VALID_REQUEST, headers={"x-request-id": "client-req-42"}
        )
        assert created.status_code == 202, created.text
        assert created.headers["x-request-id"] == "client-req-42"
        polled = await client.get(created.json()["poll_url"], headers={"x-request-id": "poll-1"})
    assert polled.headers["x-request-id"] == "poll-1"
    assert polled.json()["request_id"] == "client-req-42"


@pytest.mark.parametrize(
    "sent",
    [None, b"has a space", b"x" * 129, "caf\u00e9".encode()],
    ids=["none", "space", "long", "utf8"],
)
async def test_a_request_id_is_made_when_none_or_no_plain_one_is_sent(
    gateway: RunningGateway, api_key: str, sent: bytes | None
) -> None:
    headers = {} if sent is None else {b"x-request-id": sent}
    async with gateway.client(api_key) as client:
        created = await client.post(CREATE_PATHS[0], json=VALID_REQUEST, headers=headers)
        made = created.headers["x-request-id"]
        task = (await client.get(created.json()["poll_url"])).json()
        models = await client.get("/v1/models")
    assert len(made) == 16
    assert task["request_id"] == made
    assert models.headers["x-request-id"] not in (made, None)


async def _finish_as_if_it_took(database_url: str, task_ids: list[str], seconds: int) -> None:
    for task_id in task_ids:
        await sql(
            database_url,
            "UPDATE tasks SET state = 'success', progress = 100, billing_status = 'committed', "
            "completed_at = created_at + :took WHERE id = :id",
            {"took": seconds, "id": task_id},
        )


async def test_a_running_task_hints_how_long_it_has_left_from_recent_tasks_of_its_model(
    start_gateway: GatewayFactory, database_url: str
) -> None:
    gateway = start_gateway(provider=AcceptingProvider())
    key = (await issue_key(gateway, "patient"))["key"]
    async with gateway.client(key) as client:
        earlier = [(await create_task(client))["task_id"] for _ in range(5)]
        await _finish_as_if_it_took(database_url, earlier, 100)  # 5 s of video in 100 s
        running = await create_task(client)
        first = (await client.get(running["poll_url"])).json()
        again = (await client.get(running["poll_url"])).json()  # from memory, counting down
        longer = await create_task(client, {**VALID_REQUEST, "duration": 10})
        twice = (await client.get(longer["poll_url"])).json()
        ended = (await client.get(f"/v1/tasks/{earlier[0]}")).json()
    assert 97 <= first["eta_hint_seconds"] <= 100
    assert first["eta_hint_seconds"] - 1 <= again["eta_hint_seconds"] <= first["eta_hint_seconds"]
    assert 197 <= twice["eta_hint_seconds"] <= 200
    assert ended["eta_hint_seconds"] == 0


async def test_a_task_of_a_model_with_no_recent_tasks_has_no_hint(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(provider=AcceptingProvider())
    key = (await issue_key(gateway, "first"))["key"]
    async with gateway.client(key) as client:
        task = await create_task(client)
        assert (await client.get(task["poll_url"])).json()["eta_hint_seconds"] is None
