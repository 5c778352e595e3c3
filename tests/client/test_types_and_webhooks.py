"""The typed results against every body the gateway serves, and against its OpenAPI document;
``webhooks.verify`` against real deliveries, through a secret rotation."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reelgate_client import (
    Account,
    Billing,
    Channel,
    Model,
    Page,
    Reelgate,
    ReelgateError,
    Task,
    Tier,
    Usage,
    UsageFigures,
    WebhookVerificationError,
    webhooks,
)
from tests.client.conftest import TEXT, new_key
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.engine_helpers import FAST_ENGINE
from tests.sandbox_support import Delivery, receiver


def _fields(cls: type[Any]) -> set[str]:
    return {"from" if f.name == "from_" else f.name for f in dataclasses.fields(cls)} - {"raw"}


def _matches(parsed: Any, body: dict[str, Any]) -> None:
    """Every field the typed view has is the body's own value; the body is kept whole."""
    assert parsed.raw == body
    for name in _fields(type(parsed)):
        if name not in body:
            continue
        value = getattr(parsed, "from_" if name == "from" else name)
        if dataclasses.is_dataclass(value):
            _matches(value, body[name])
        elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            for item, raw in zip(value, body[name], strict=True):
                _matches(item, raw)
        else:
            assert value == body[name], name


def _served(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    answer = client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_typed_results_cover_the_openapi_document_and_match_every_body_served(
    live: RunningGateway, key: str, rg: Reelgate
) -> None:
    schemas = httpx.get(f"{live.base_url}/openapi.json").json()["components"]["schemas"]

    def properties(name: str) -> set[str]:
        return set(schemas[name]["properties"])

    # Each typed result knows every field its body has in the document (Model reads its
    # capabilities into tiers, parameters and pricing_mode).
    assert properties("TaskResource") <= _fields(Task)
    assert properties("TaskEnvelope") <= _fields(Task)
    assert properties("Billing") <= _fields(Billing)
    assert properties("Tier") <= _fields(Tier)
    assert properties("ModelCard") - {"capabilities"} <= _fields(Model)
    assert properties("ChannelCard") - {"pricing"} <= _fields(Channel)
    assert properties("TaskList") - {"object"} <= _fields(Page)
    assert properties("AccountBalance") <= _fields(Account)
    assert properties("UsageOut") <= _fields(Usage)
    assert properties("UsageRowOut") <= _fields(UsageFigures)
    assert properties("ErrorBody") <= set(vars(ReelgateError(400, "e", "c", "m")))

    bodies: list[tuple[Callable[[Any], Any], dict[str, Any]]] = []
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=live.base_url, headers=headers) as client:
        created = client.post("/v1/videos/generations", json=TEXT)
        assert created.status_code == 202
        bodies.append((Task.from_json, created.json()))
        task_id = created.json()["task_id"]
        bodies.extend((Task.from_json, s.raw) for s in rg.tasks.stream(task_id, timeout=60))
        bodies.append((Task.from_json, _served(client, f"/v1/tasks/{task_id}")))
        tasks = _served(client, "/v1/tasks")
        bodies.append((lambda b: Page.from_json(b, Task.from_json), tasks))
        catalogue = _served(client, "/v1/models")
        for card in catalogue["data"]:
            bodies.append((Model.from_json, card))
            for tier in card["capabilities"]["pricing"]["tiers"]:
                bodies.append((Tier.from_json, tier))
            for channel in card["available_channels"]:
                bodies.append((Channel.from_json, channel))
                bodies.extend((Tier.from_json, t) for t in channel["pricing"]["tiers"])
        bodies.append((Model.from_json, _served(client, "/v1/models/seedance-2")))
        bodies.append((Account.from_json, _served(client, "/v1/account")))
        for group_by in ("day", "model", "key"):
            bodies.append((Usage.from_json, _served(client, "/v1/usage", group_by=group_by)))
    states = {b["state"] for parse, b in bodies if parse == Task.from_json}
    assert {"waiting", "success"} <= states
    for parse, body in bodies:
        _matches(parse(body), body)
        # A field this client does not know yet is ignored.
        assert parse({**body, "added_later": {"x": 1}}).raw["added_later"] == {"x": 1}
    page = Page.from_json(tasks, Task.from_json)
    for item, raw in zip(page.data, tasks["data"], strict=True):
        _matches(item, raw)


def _secret(gateway: RunningGateway, key: str, rotate: bool = False) -> str:
    with httpx.Client(base_url=gateway.base_url, headers={"authorization": f"Bearer {key}"}) as c:
        answer = c.post("/v1/webhooks/secret/rotate") if rotate else c.get("/v1/webhooks/secret")
        assert answer.status_code == 200, answer.text
        secret: str = answer.json()["secret"]
        return secret


def _delivered(deliveries: list[Delivery], n: int) -> Delivery:
    deadline = time.monotonic() + 20
    while len(deliveries) < n:
        assert time.monotonic() < deadline, "the webhook did not arrive"
        time.sleep(0.02)
    return deliveries[n - 1]


def test_webhooks_verify_real_deliveries_through_a_secret_rotation(
    start_gateway: GatewayFactory, quick_sandbox: object
) -> None:
    gateway = start_gateway(**FAST_ENGINE, allowed_networks=["127.0.0.0/8"])
    key = new_key(gateway, "hooked")
    old = _secret(gateway, key)
    with receiver() as hook, Reelgate(base_url=gateway.base_url, api_key=key) as rg:
        first = rg.videos.generate(**TEXT, callBackUrl=hook.url, timeout=60)
        delivery = _delivered(hook.deliveries, 1)
        new = _secret(gateway, key, rotate=True)
        second = rg.videos.generate(**TEXT, callBackUrl=hook.url, timeout=60)
        rotated = _delivered(hook.deliveries, 2)

    task = webhooks.verify(delivery.body, delivery.headers, old)
    assert (task.task_id, task.state) == (first.task_id, "success")
    assert task.raw["request"] == first.request
    with pytest.raises(WebhookVerificationError, match="no signature"):
        webhooks.verify(delivery.body.replace(b"success", b"fail"), delivery.headers, old)
    with pytest.raises(WebhookVerificationError, match="no signature"):
        webhooks.verify(delivery.body, delivery.headers, new)
    with pytest.raises(WebhookVerificationError, match="from now"):
        webhooks.verify(delivery.body, delivery.headers, old, now=time.time() + 3600)
    without = {k: v for k, v in delivery.headers.items() if k != "webhook-signature"}
    with pytest.raises(WebhookVerificationError, match="missing"):
        webhooks.verify(delivery.body, without, old)

    # During the rotation both secrets sign: a receiver holding either one accepts it.
    assert len(rotated.headers["webhook-signature"].split()) == 2
    for secret in (old, new, [new, old]):
        assert webhooks.verify(rotated.body, rotated.headers, secret).task_id == second.task_id
    with pytest.raises(ValueError, match="whsec_"):
        webhooks.verify(rotated.body, rotated.headers, "whsec_not base64!")
