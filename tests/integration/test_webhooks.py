"""Client webhooks end to end: a finished task is POSTed to its callBackUrl, signed by the
Standard Webhooks scheme, retried from the durable outbox, and shown as webhook_delivery; and
a callBackUrl that would reach an internal address is refused."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from standardwebhooks import Webhook

from reelgate.domain.webhooks import UNREACHABLE_ATTEMPTS
from reelgate.errors import DestinationRefused
from reelgate.services.destinations import Reach, pin
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.cli_runner import sql
from tests.integration.engine_helpers import FAST_ENGINE, TEXT, audit_passes, create, until_final
from tests.sandbox_support import Receiver, eventually, receiver

# Retries a hundred times faster than in production (0.05 s, 0.3 s, ...); the receivers of
# these tests listen on loopback, which the operator has to allow.
WEBHOOKS: dict[str, Any] = {
    **FAST_ENGINE,
    "webhook_retry_scale": 0.01,
    "allowed_networks": ["127.0.0.0/8"],
}


async def _secret(client: httpx.AsyncClient) -> str:
    answer = await client.get("/v1/webhooks/secret")
    assert answer.status_code == 200, answer.text
    secret: str = answer.json()["secret"]
    return secret


async def _delivery_settled(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    """The task's webhook_delivery once it is delivered or given up (bounded)."""
    for _ in range(200):
        delivery: dict[str, Any] = (await client.get(f"/v1/tasks/{task_id}")).json()[
            "webhook_delivery"
        ]
        if delivery["status"] in ("delivered", "failed"):
            return delivery
        await asyncio.sleep(0.05)
    raise AssertionError(f"the webhook of {task_id} never settled: {delivery}")


async def _finished_with_webhook(
    gateway: RunningGateway, hook: Receiver, deliveries: int
) -> tuple[str, str, dict[str, Any]]:
    """Create a task calling back to ``hook``; wait for it to end and for ``deliveries``
    attempts to arrive. Returns the account's secret, the task id and the final task."""
    key = await gateway.account_with_key("hooked", credit_usd="10")
    async with gateway.client(key) as client:
        task_id = await create(client, {**TEXT, "callBackUrl": hook.url})
        final = (await until_final(client, task_id))[-1]
        await eventually(hook.count(deliveries))
        secret = await _secret(client)
    return secret, task_id, final


@pytest.mark.usefixtures("quick_sandbox")
async def test_a_finished_task_is_posted_signed_and_retried_with_one_webhook_id_until_accepted(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(**WEBHOOKS)
    with receiver(statuses=[500, 500]) as hook:
        secret, task_id, final = await _finished_with_webhook(gateway, hook, deliveries=3)
    assert final["state"] == "success"
    verifier = Webhook(secret)
    bodies = [verifier.verify(d.body, d.headers) for d in hook.deliveries]
    assert len(hook.deliveries) == 3
    assert len({d.headers["webhook-id"] for d in hook.deliveries}) == 1
    assert all(body["task_id"] == task_id and body["state"] == "success" for body in bodies)
    assert all(abs(int(d.headers["webhook-timestamp"]) - d.at) < 5 for d in hook.deliveries)
    assert [body["webhook_delivery"]["attempts"] for body in bodies] == [0, 1, 2]
    assert bodies[-1]["webhook_delivery"]["last_response_code"] == 500
    assert hook.deliveries[0].headers["content-type"] == "application/json"
    await audit_passes(gateway)


@pytest.mark.usefixtures("quick_sandbox")
async def test_the_task_shows_its_delivery_with_attempts_code_and_webhook_id(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(**WEBHOOKS)
    with receiver(statuses=[503]) as hook:
        key = await gateway.account_with_key("watcher", credit_usd="10")
        async with gateway.client(key) as client:
            task_id = await create(client, {**TEXT, "callBackUrl": hook.url})
            before = (await client.get(f"/v1/tasks/{task_id}")).json()["webhook_delivery"]
            await until_final(client, task_id)
            delivery = await _delivery_settled(client, task_id)
    assert before["status"] == "waiting"
    assert before["attempts"] == 0
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 2
    assert delivery["last_response_code"] == 200
    assert delivery["webhook_id"] == hook.deliveries[-1].headers["webhook-id"]
    assert delivery["delivered_at"] >= int(time.time()) - 60
    assert delivery["next_attempt_at"] is None


async def test_a_failed_task_is_posted_too(
    start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch, quick_sandbox: Path
) -> None:
    monkeypatch.setenv("REELGATE_SANDBOX_FAIL_SHARE", "1.0")
    gateway = start_gateway(**WEBHOOKS)
    with receiver() as hook:
        secret, task_id, final = await _finished_with_webhook(gateway, hook, deliveries=1)
    body = Webhook(secret).verify(hook.deliveries[0].body, hook.deliveries[0].headers)
    assert body["task_id"] == task_id
    assert final["state"] == body["state"] == "fail"
    assert body["billing"]["status"] == "released"
    assert body["error"]["code"] == "generation_failed"


@pytest.mark.usefixtures("quick_sandbox")
async def test_a_receiver_that_never_accepts_is_given_up_after_the_day_and_shown_failed(
    start_gateway: GatewayFactory,
) -> None:
    # The whole day shrunk to about 4 s.
    gateway = start_gateway(**{**WEBHOOKS, "webhook_retry_scale": 0.00005})
    with receiver(statuses=[500] * 10_000) as hook:
        key = await gateway.account_with_key("unlucky", credit_usd="10")
        async with gateway.client(key) as client:
            task_id = await create(client, {**TEXT, "callBackUrl": hook.url})
            await until_final(client, task_id)
            delivery = await _delivery_settled(client, task_id)
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == len(hook.deliveries) > 1
    assert delivery["last_response_code"] == 500
    assert delivery["next_attempt_at"] is None


@pytest.mark.usefixtures("quick_sandbox")
async def test_a_name_that_does_not_resolve_is_accepted_then_given_up_after_three_attempts(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(**{**FAST_ENGINE, "webhook_retry_scale": 0.01})
    key = await gateway.account_with_key("typo", credit_usd="10")
    async with gateway.client(key) as client:
        task_id = await create(client, {**TEXT, "callBackUrl": "https://hooks.invalid/cb"})
        await until_final(client, task_id)
        seen: list[dict[str, Any]] = []
        for _ in range(200):
            delivery = (await client.get(f"/v1/tasks/{task_id}")).json()["webhook_delivery"]
            seen.append(delivery)
            if delivery["status"] == "failed":
                break
            await asyncio.sleep(0.05)
    # Retried while under way, then failed with the reason after three attempts, not a day.
    assert any(d["status"] == "pending" and d["attempts"] >= 1 for d in seen)
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == UNREACHABLE_ATTEMPTS
    assert "hooks.invalid could not be resolved" in delivery["last_error"]
    assert delivery["next_attempt_at"] is None


INTERNAL_URLS = {
    "loopback": "http://127.0.0.1:8080/hook",
    "private": "http://10.0.0.1/hook",
    "metadata": "http://169.254.169.254/latest/meta-data/",
    "loopback-v6": "http://[::1]/hook",
    "mapped-v6": "http://[::ffff:10.0.0.1]/hook",
    "name-resolving-to-loopback": "https://localhost/hook",
}


@pytest.mark.parametrize("url", INTERNAL_URLS.values(), ids=INTERNAL_URLS.keys())
async def test_a_callback_url_reaching_an_internal_address_is_refused_and_nothing_is_charged(
    gateway: RunningGateway, api_key: str, url: str
) -> None:
    async with gateway.client(api_key) as client:
        refused = await client.post("/v1/videos/generations", json={**TEXT, "callBackUrl": url})
    assert refused.status_code == 400
    error = refused.json()
    assert (error["param"], error["code"]) == ("callBackUrl", "forbidden_callback_url")
    assert "public address" in error["message"]
    async with gateway.admin() as admin:
        account = (await admin.get("/admin/accounts/alice")).json()
    assert account["reserved_micro_usdc"] == 0


async def test_the_operator_can_allow_a_private_network(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(allowed_networks=["10.0.0.0/8"])
    key = await gateway.account_with_key("intranet")
    async with gateway.client(key) as client:
        allowed = await client.post(
            "/v1/videos/generations", json={**TEXT, "callBackUrl": "http://10.0.0.1/hook"}
        )
        still_refused = await client.post(
            "/v1/videos/generations", json={**TEXT, "callBackUrl": "http://127.0.0.1/hook"}
        )
    assert allowed.status_code == 202, allowed.text
    assert still_refused.status_code == 400


@pytest.mark.parametrize(
    "url", ["http://localhost:9/cb", "http://127.0.0.1/cb", "http://[::1]:80/cb"]
)
async def test_delivery_refuses_a_destination_that_resolves_to_an_internal_address(
    url: str,
) -> None:
    with pytest.raises(DestinationRefused, match="loopback"):
        await pin(url, Reach())


async def test_delivery_connects_to_the_checked_address_and_names_the_host() -> None:
    target = await pin(
        "https://user:pw@localhost:8443/cb?x=1",
        Reach(allowed=(ipaddress.ip_network("127.0.0.0/8"),)),
    )
    assert target.url == "https://user:pw@127.0.0.1:8443/cb?x=1"
    assert (target.host_header, target.tls_name) == ("localhost:8443", "localhost")


@pytest.mark.usefixtures("quick_sandbox")
async def test_after_a_rotation_both_secrets_sign_so_receivers_can_switch_over(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(**WEBHOOKS)
    with receiver() as hook:
        key = await gateway.account_with_key("rotating", credit_usd="10")
        async with gateway.client(key) as client:
            old = await _secret(client)
            new = (await client.post("/v1/webhooks/secret/rotate")).json()["secret"]
            await until_final(client, await create(client, {**TEXT, "callBackUrl": hook.url}))
            await eventually(hook.count(1))
    delivery = hook.deliveries[0]
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(delivery.body, delivery.headers)["state"] == "success"


@pytest.mark.usefixtures("quick_sandbox")
async def test_the_secrets_read_are_those_that_sign_and_the_database_keeps_them_sealed(
    start_gateway: GatewayFactory, database_url: str
) -> None:
    gateway = start_gateway(**WEBHOOKS)
    with receiver() as hook:
        key = await gateway.account_with_key("sealed", credit_usd="10")
        async with gateway.client(key) as client:
            old = await _secret(client)
            await until_final(client, await create(client, {**TEXT, "callBackUrl": hook.url}))
            await eventually(hook.count(1))
            new = (await client.post("/v1/webhooks/secret/rotate")).json()["secret"]
            await until_final(client, await create(client, {**TEXT, "callBackUrl": hook.url}))
            await eventually(hook.count(2))
            read_after = await _secret(client)
    before, after = hook.deliveries
    assert Webhook(old).verify(before.body, before.headers)["state"] == "success"
    for secret in (old, new):
        assert Webhook(secret).verify(after.body, after.headers)["state"] == "success"
    assert read_after == new != old
    [stored] = await sql(
        database_url, "SELECT webhook_secret, previous_webhook_secret FROM accounts"
    )
    assert all(value.startswith("enc1:") for value in stored), stored
    for secret in (old, new):
        # Neither whole nor its random part (after "whsec_").
        assert not any(secret.removeprefix("whsec_") in value for value in stored)


async def test_each_account_reads_and_rotates_its_own_secret(gateway: RunningGateway) -> None:
    first_key = await gateway.account_with_key("first")
    second_key = await gateway.account_with_key("second")
    async with gateway.client(first_key) as first, gateway.client(second_key) as second:
        a1, a2, b = await _secret(first), await _secret(first), await _secret(second)
        rotated = await first.post("/v1/webhooks/secret/rotate")
        a3 = await _secret(first)
    async with gateway.client() as anonymous:
        assert (await anonymous.get("/v1/webhooks/secret")).status_code == 401
        assert (await anonymous.post("/v1/webhooks/secret/rotate")).status_code == 401
    assert a1 == a2 != b
    assert a1.startswith("whsec_")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] == a3 != a1
    assert orjson.loads(rotated.content)["object"] == "webhook_secret"
