"""The sandbox held to KIE's documented shapes, and its knobs to their effect."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import SANDBOX_KEY, SandboxFactory, free_port

BODY = {
    "model": "bytedance/seedance-2-fast",
    "input": {"prompt": "a paper boat on a pond", "resolution": "480p", "duration": 4},
}
RECORD_FIELDS = {
    "taskId": str,
    "model": str,
    "state": str,
    "param": str,
    "resultJson": str,
    "failCode": str,
    "failMsg": str,
    "costTime": int,
    "completeTime": (int, type(None)),
    "createTime": int,
    "updateTime": int,
}


@pytest.fixture
async def client_for() -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    def make(base_url: str, key: str | None = SANDBOX_KEY) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        client = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def _create(client: httpx.AsyncClient, body: dict[str, Any] = BODY) -> str:
    answer = (await client.post("/api/v1/jobs/createTask", json=body)).json()
    assert answer["code"] == 200, answer
    task_id: str = answer["data"]["taskId"]
    return task_id


async def _record(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    answer = (await client.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})).json()
    assert (answer["code"], answer["msg"]) == (200, "success")
    data: dict[str, Any] = answer["data"]
    return data


def _assert_kie_record(data: dict[str, Any]) -> None:
    assert set(data) == set(RECORD_FIELDS)
    for name, kind in RECORD_FIELDS.items():
        assert isinstance(data[name], kind), f"{name} is {type(data[name]).__name__}"
    assert data["createTime"] > 1_600_000_000_000, "times are Unix milliseconds"


async def test_create_and_record_info_answer_in_kies_shapes_through_every_state(
    start_sandbox: SandboxFactory, client_for: Any
) -> None:
    client = client_for(start_sandbox())
    task_id = await _create(client)
    states: list[str] = []
    for _ in range(100):
        data = await _record(client, task_id)
        _assert_kie_record(data)
        states.append(data["state"])
        if data["state"] == "success":
            break
        assert data["resultJson"] == ""
        assert data["completeTime"] is None
        await asyncio.sleep(0.05)
    assert orjson.loads(data["param"]) == BODY
    assert orjson.loads(data["resultJson"])["resultUrls"][0].endswith(".mp4")
    assert data["completeTime"] >= data["createTime"]
    order = ["waiting", "queuing", "generating", "success"]
    assert [order.index(state) for state in states] == sorted(order.index(s) for s in states)
    assert {"waiting", "generating", "success"} <= set(states)


async def test_a_failing_task_carries_its_fail_code_and_no_result(
    start_sandbox: SandboxFactory, client_for: Any
) -> None:
    client = client_for(start_sandbox(fail_share=1.0, fail_code="501"))
    task_id = await _create(client)
    await asyncio.sleep(1.0)
    data = await _record(client, task_id)
    assert (data["state"], data["failCode"], data["resultJson"]) == ("fail", "501", "")
    assert data["failMsg"]


@pytest.mark.parametrize(
    ("key", "body", "code"),
    [
        (None, BODY, 401),
        ("wrong-key", BODY, 401),
        (SANDBOX_KEY, {**BODY, "model": "bytedance/seedance-3"}, 422),
        (SANDBOX_KEY, {"model": "bytedance/seedance-2"}, 422),
        (SANDBOX_KEY, {**BODY, "input": {**BODY["input"], "prompt": "hi"}}, 422),
        (SANDBOX_KEY, {**BODY, "input": {**BODY["input"], "duration": 16}}, 422),
        (SANDBOX_KEY, {**BODY, "input": {**BODY["input"], "resolution": "1080p"}}, 422),
    ],
    ids=["no-key", "wrong-key", "unknown-model", "no-input", "short-prompt", "long", "fast-1080p"],
)
async def test_refused_creates_answer_kies_error_envelope(
    start_sandbox: SandboxFactory, client_for: Any, key: str | None, body: dict[str, Any], code: int
) -> None:
    answer = await client_for(start_sandbox(), key).post("/api/v1/jobs/createTask", json=body)
    assert answer.status_code == 200
    payload = answer.json()
    assert set(payload) == {"code", "msg", "data"}
    assert (payload["code"], payload["data"]) == (code, None)
    assert isinstance(payload["msg"], str)


@pytest.mark.parametrize(("params", "code"), [({}, 400), ({"taskId": "task_bytedance_0"}, 404)])
async def test_record_info_without_or_with_an_unknown_task_is_refused(
    start_sandbox: SandboxFactory, client_for: Any, params: dict[str, str], code: int
) -> None:
    answer = await client_for(start_sandbox()).get("/api/v1/jobs/recordInfo", params=params)
    assert answer.json()["code"] == code


async def test_credits_fall_by_kies_price_for_each_create(
    start_sandbox: SandboxFactory, client_for: Any
) -> None:
    client = client_for(start_sandbox(credits=100))
    await _create(client)  # seedance-2-fast 480p, 4 s: 15.5 credits a second
    assert (await client.get("/api/v1/chat/credit")).json() == {
        "code": 200,
        "msg": "success",
        "data": 100 - 15.5 * 4,
    }
    second = (await client.post("/api/v1/jobs/createTask", json=BODY)).json()
    assert second["code"] == 402


async def test_latency_is_added_to_the_configured_endpoint(
    start_sandbox: SandboxFactory, client_for: Any
) -> None:
    client = client_for(start_sandbox(faults={"credit": {"latency_ms": 300}}))
    started = time.monotonic()
    await client.get("/api/v1/chat/credit")
    assert time.monotonic() - started >= 0.3


async def test_a_timeout_fault_holds_the_request_past_the_clients_patience(
    start_sandbox: SandboxFactory, client_for: Any
) -> None:
    client = client_for(start_sandbox(hang_s=2, faults={"credit": {"timeout": 1.0}}))
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/api/v1/chat/credit", timeout=0.5)


async def test_the_same_seed_gives_the_same_outcomes(
    start_sandbox: SandboxFactory, client_for: Any
) -> None:
    outcomes = []
    for _ in range(2):
        client = client_for(start_sandbox(seed=11, faults={"credit": {"body_codes": {429: 0.5}}}))
        outcomes.append(
            [(await client.get("/api/v1/chat/credit")).json()["code"] for _ in range(20)]
        )
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {200, 429}


async def test_concurrent_polls_of_one_task_are_counted_as_overlapping(
    start_sandbox: SandboxFactory, client_for: Any
) -> None:
    client = client_for(start_sandbox(faults={"record": {"latency_ms": 300}}))
    task_id = await _create(client)
    await _record(client, task_id)
    await _record(client, task_id)
    assert (await client.get("/sandbox/stats")).json().get("overlapping_polls", 0) == 0
    await asyncio.gather(_record(client, task_id), _record(client, task_id))
    assert (await client.get("/sandbox/stats")).json()["overlapping_polls"] == 1


class _Receiver:
    """A loopback HTTP server that keeps every callback it gets."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes, float]] = []

        async def receive(request: Request) -> Response:
            self.received.append((dict(request.headers), await request.body(), time.time()))
            return Response("ok")

        self.port = free_port()
        config = uvicorn.Config(
            Starlette(routes=[Route("/cb", receive, methods=["POST"])]),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cb"


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    receiver = _Receiver()
    receiver.thread.start()
    for _ in range(500):
        if receiver.server.started:
            break
        time.sleep(0.01)
    yield receiver
    receiver.server.should_exit = True
    receiver.thread.join(timeout=10)


async def _callbacks(
    receiver: _Receiver, expected: int
) -> list[tuple[dict[str, str], bytes, float]]:
    """What arrived once ``expected`` callbacks did (or 8 s passed), plus a grace for extras."""
    for _ in range(80):
        if len(receiver.received) >= expected:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.5 if expected == 0 else 0.5)
    return list(receiver.received)


async def test_a_finished_task_is_called_back_signed_like_kie(
    start_sandbox: SandboxFactory, client_for: Any, receiver: _Receiver
) -> None:
    client = client_for(start_sandbox(hmac_key="hook-key"))
    task_id = await _create(client, {**BODY, "callBackUrl": receiver.url})
    (headers, body, _), *rest = await _callbacks(receiver, 1)
    assert rest == []
    payload = orjson.loads(body)
    assert (payload["code"], payload["msg"]) == (200, "success")
    _assert_kie_record(payload["data"])
    assert (payload["data"]["taskId"], payload["data"]["state"]) == (task_id, "success")
    timestamp = headers["x-webhook-timestamp"]
    expected = hmac.new(b"hook-key", f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    assert headers["x-webhook-signature"] == base64.b64encode(expected).decode()


@pytest.mark.parametrize(
    ("knobs", "count"),
    [({"callback_lost_share": 1.0}, 0), ({"callback_duplicate_share": 1.0}, 2)],
    ids=["lost", "duplicated"],
)
async def test_lost_and_duplicated_callbacks(
    start_sandbox: SandboxFactory,
    client_for: Any,
    receiver: _Receiver,
    knobs: dict[str, float],
    count: int,
) -> None:
    client = client_for(start_sandbox(**knobs))
    await _create(client, {**BODY, "callBackUrl": receiver.url})
    if count == 0:
        await asyncio.sleep(1.5)  # past the moment the task finishes
    assert len(await _callbacks(receiver, count)) == count


async def test_a_late_callback_comes_after_the_task_finished(
    start_sandbox: SandboxFactory, client_for: Any, receiver: _Receiver
) -> None:
    client = client_for(start_sandbox(callback_late_share=1.0, callback_late_s=1.0))
    await _create(client, {**BODY, "callBackUrl": receiver.url})
    ((_, body, arrived),) = await _callbacks(receiver, 1)
    assert arrived - orjson.loads(body)["data"]["createTime"] / 1000 >= 0.8 + 1.0
