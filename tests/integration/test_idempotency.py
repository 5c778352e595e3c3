"""Idempotency-Key on creates, on both databases, against real gateways over loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson

from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.api_helpers import (
    CREATE_PATHS,
    VALID_REQUEST,
    assert_error,
    issue_key,
    reserved_micro_usdc,
)
from tests.integration.cli_runner import sql

CREATE = CREATE_PATHS[0]


async def _tasks_of(gateway: RunningGateway, key: str) -> list[dict[str, Any]]:
    async with gateway.client(key) as client:
        listed = await client.get("/v1/tasks", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    data: list[dict[str, Any]] = listed.json()["data"]
    return data


async def _reservations(database_url: str, account: str) -> int:
    rows = await sql(
        database_url,
        "SELECT count(*) FROM ledger JOIN accounts ON accounts.id = ledger.account_id "
        "WHERE accounts.name = :name AND kind = 'reserve'",
        {"name": account},
    )
    return int(rows[0][0])


def _once(key: str) -> dict[str, str]:
    return {"idempotency-key": key}


async def test_a_repeat_gets_the_first_answer_byte_for_byte_from_another_process_after_a_restart(
    start_gateway: GatewayFactory, database_url: str
) -> None:
    first_gateway = start_gateway()
    key = (await issue_key(first_gateway, "retrier"))["key"]
    async with first_gateway.client(key) as client:
        first = await client.post(CREATE, json=VALID_REQUEST, headers=_once("order-1"))
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    reserved = await reserved_micro_usdc(first_gateway, "retrier")

    # Another process on the same database, started after the first answered; the same body
    # written with its fields in another order and other spacing.
    second_gateway = start_gateway()
    same_body = orjson.dumps(
        dict(reversed(list(VALID_REQUEST.items()))), option=orjson.OPT_INDENT_2
    )
    async with second_gateway.client(key) as client:
        again = await client.post(
            CREATE_PATHS[1],
            content=same_body,
            headers={**_once("order-1"), "content-type": "application/json"},
        )
    assert again.status_code == 202, again.text
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert len(await _tasks_of(second_gateway, key)) == 1
    assert await reserved_micro_usdc(second_gateway, "retrier") == reserved
    assert await _reservations(database_url, "retrier") == 1


async def test_twenty_concurrent_creates_with_one_key_make_one_task_and_one_reservation(
    gateway: RunningGateway, database_url: str
) -> None:
    key = (await issue_key(gateway, "eager"))["key"]
    async with gateway.client(key) as client:
        answers = await asyncio.gather(
            *(client.post(CREATE, json=VALID_REQUEST, headers=_once("burst")) for _ in range(20))
        )
    firsts = [a for a in answers if a.status_code == 202 and "idempotent-replayed" not in a.headers]
    assert len(firsts) == 1, [a.status_code for a in answers]
    for answer in answers:
        if answer.status_code == 409:
            assert_error(answer, 409, "conflict", "Idempotency-Key")
            assert answer.json()["code"] == "idempotency_key_in_use"
        else:
            assert answer.status_code == 202, answer.text
            assert answer.content == firsts[0].content
    tasks = await _tasks_of(gateway, key)
    assert [t["task_id"] for t in tasks] == [firsts[0].json()["task_id"]]
    assert await _reservations(database_url, "eager") == 1


async def test_the_same_key_with_another_body_is_422_and_changes_nothing(
    gateway: RunningGateway,
) -> None:
    key = (await issue_key(gateway, "fickle"))["key"]
    async with gateway.client(key) as client:
        first = await client.post(CREATE, json=VALID_REQUEST, headers=_once("k"))
        assert first.status_code == 202, first.text
        other = await client.post(CREATE, json={**VALID_REQUEST, "duration": 6}, headers=_once("k"))
    body = assert_error(other, 422, "idempotency_key_reused", "Idempotency-Key")
    assert body["code"] == "idempotency_key_reused"
    assert len(await _tasks_of(gateway, key)) == 1


async def test_refused_first_requests_store_nothing_so_the_key_can_be_used_again(
    gateway: RunningGateway,
) -> None:
    key = (await issue_key(gateway, "hasty", "0.01"))["key"]
    async with gateway.client(key) as client:
        invalid = await client.post(
            CREATE, json={**VALID_REQUEST, "duration": 99}, headers=_once("k")
        )
        assert_error(invalid, 400, "bad_request", "duration")
        short = await client.post(CREATE, json=VALID_REQUEST, headers=_once("k"))
        assert_error(short, 402, "insufficient_balance")
        async with gateway.admin() as admin:
            credited = await admin.post("/admin/accounts/hasty/credits", json={"usd": "10"})
            assert credited.status_code == 200, credited.text
        created = await client.post(CREATE, json=VALID_REQUEST, headers=_once("k"))
    assert created.status_code == 202, created.text
    assert "idempotent-replayed" not in created.headers


async def test_a_key_that_is_not_1_to_255_printable_ascii_is_400_naming_the_header(
    gateway: RunningGateway, api_key: str
) -> None:
    async with gateway.client(api_key) as client:
        for bad in (b"", b"k" * 256, "clé".encode(), b"tab\tin"):
            answer = await client.post(
                CREATE, json=VALID_REQUEST, headers=[(b"idempotency-key", bad)]
            )
            assert_error(answer, 400, "bad_request", "Idempotency-Key")
        longest = await client.post(CREATE, json=VALID_REQUEST, headers=_once("~" * 255))
    assert longest.status_code == 202, longest.text


async def test_keys_are_scoped_to_the_account(gateway: RunningGateway) -> None:
    one = (await issue_key(gateway, "one"))["key"]
    two = (await issue_key(gateway, "two"))["key"]
    answers = []
    for key in (one, two):
        async with gateway.client(key) as client:
            answers.append(await client.post(CREATE, json=VALID_REQUEST, headers=_once("same")))
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json()["task_id"] != answers[1].json()["task_id"]


async def test_a_create_whose_process_died_is_answered_with_its_task_after_a_while(
    gateway: RunningGateway, database_url: str
) -> None:
    """The row a process leaves when it dies after storing the task: pending. While the create
    could still be running, a repeat is 409; after, it gets the task's envelope (202)."""
    key = (await issue_key(gateway, "orphan"))["key"]
    async with gateway.client(key) as client:
        first = await client.post(CREATE, json=VALID_REQUEST, headers=_once("k"))
        assert first.status_code == 202, first.text
        await sql(
            database_url,
            "UPDATE idempotency_keys SET phase = 'pending', pending_until_ms = 9e15",
        )
        running = await client.post(CREATE, json=VALID_REQUEST, headers=_once("k"))
        assert_error(running, 409, "conflict", "Idempotency-Key")
        await sql(database_url, "UPDATE idempotency_keys SET pending_until_ms = 0")
        died = await client.post(CREATE, json=VALID_REQUEST, headers=_once("k"))
    assert died.status_code == 202, died.text
    assert died.content == first.content
    assert died.headers["idempotent-replayed"] == "true"
    assert len(await _tasks_of(gateway, key)) == 1


async def test_an_expired_key_is_forgotten_and_its_row_replaced(
    gateway: RunningGateway, database_url: str
) -> None:
    key = (await issue_key(gateway, "patient"))["key"]
    async with gateway.client(key) as client:
        first = await client.post(CREATE, json=VALID_REQUEST, headers=_once("k"))
        await sql(database_url, "UPDATE idempotency_keys SET expires_at_ms = 1")
        later = await client.post(CREATE, json=VALID_REQUEST, headers=_once("k"))
    assert later.status_code == 202, later.text
    assert "idempotent-replayed" not in later.headers
    assert later.json()["task_id"] != first.json()["task_id"]
    rows = await sql(database_url, "SELECT task_id FROM idempotency_keys")
    assert rows == [(later.json()["task_id"],)]


async def test_creates_without_the_header_are_never_replayed(
    gateway: RunningGateway, api_key: str
) -> None:
    async with httpx.AsyncClient(
        base_url=gateway.base_url, headers={"authorization": f"Bearer {api_key}"}
    ) as client:
        answers = [await client.post(CREATE, json=VALID_REQUEST) for _ in range(2)]
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json()["task_id"] != answers[1].json()["task_id"]
