"""Upstream callbacks are hostile until checked: a call without its task's token is refused,
and even a call with it only makes the gateway look at the upstream's own answer. Result URLs
are fetched only from addresses the gateway may reach."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from reelgate.config import Settings
from reelgate.domain.links import callback_token
from reelgate.domain.request import VideoGenerationRequest, parse_request
from reelgate.domain.secret_key import KeyUse, SecretKey
from reelgate.domain.task import Submission, TaskState
from reelgate.domain.upstream import UpstreamStatus
from reelgate.services.callbacks import CallbackIntake
from reelgate.store.database import Database
from reelgate.store.tasks import TaskStore
from reelgate.upstream.kie import KieProvider, callback_signature
from tests.conftest import (
    SANDBOX_KEY,
    TEST_SECRET_KEY,
    GatewayFactory,
    RunningGateway,
    SandboxFactory,
    free_port,
    open_database,
)
from tests.integration.cli_runner import kept_values, sql, upstream_id
from tests.integration.engine_helpers import FAST_ENGINE, TEXT, audit_passes, create, until_final
from tests.integration.test_task_store import _tasks
from tests.sandbox_support import kie_client, serve

CALLBACK_PATH = "/v1/upstream/callbacks/kie"


@contextmanager
def secret_server() -> Iterator[tuple[str, list[str]]]:
    """An internal service on loopback that the gateway must never be made to read."""
    seen: list[str] = []

    async def secret(request: Request) -> PlainTextResponse:
        seen.append(request.url.path)
        return PlainTextResponse("the operator's secret")

    # Every path answers, and every request is counted, whatever it asks for.
    with serve(Starlette(routes=[Route("/{path:path}", secret)])) as base:
        yield f"{base}/secret.txt", seen


def _forged(upstream_id: str, state: str, urls: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"taskId": upstream_id, "state": state, "failCode": "", "failMsg": ""}
    if urls is not None:
        data["resultJson"] = orjson.dumps({"resultUrls": urls}).decode()
    if state == "fail":
        data |= {"failCode": "500", "failMsg": "forged"}
    return {"code": 200, "msg": "success", "data": data}


async def _callback_link(sandbox: str, upstream_id: str) -> tuple[str, dict[str, str]]:
    """The callback link the gateway gave the upstream for a task: path and query."""
    async with kie_client(sandbox) as kie:
        detail = (await kie.get(f"/sandbox/tasks/{upstream_id}")).json()["data"]
    link = orjson.loads(detail["param"])["callBackUrl"]
    parts = urlsplit(link)
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}


async def _upstream_id(gateway: RunningGateway, task_id: str) -> str:
    return await upstream_id(gateway.settings.database_url, task_id)


@pytest.fixture
def slow_upstream(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> tuple[RunningGateway, str]:
    """A gateway whose tasks stay in progress at the sandbox for a minute, with callbacks."""
    sandbox = start_sandbox(generating_s=60)
    port = free_port()
    gateway = start_gateway(
        provider=KieProvider(sandbox, SANDBOX_KEY),
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        **FAST_ENGINE,
    )
    return gateway, sandbox


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"task_id": "{task_id}"},
        {"task_id": "{task_id}", "token": "forged"},
        {"task_id": "{task_id}", "token": ""},
        {"task_id": "{task_id}", "token": "\u00e9t\u00e9"},
        {"task_id": "{other_id}", "token": "{token}"},
        {"task_id": "not-a-task", "token": "{token}"},
    ],
    ids=[
        "no-query",
        "no-token",
        "forged-token",
        "empty-token",
        "non-ascii-token",
        "another-tasks-id",
        "not-an-id",
    ],
)
async def test_a_callback_without_its_tasks_token_is_refused_and_changes_nothing(
    slow_upstream: tuple[RunningGateway, str], query: dict[str, str]
) -> None:
    gateway, sandbox = slow_upstream
    key = await gateway.account_with_key("target", credit_usd="10")
    async with gateway.client(key) as client:
        task_id, other_id = await asyncio.gather(create(client, TEXT), create(client, TEXT))
        upstream_id = await _upstream_id(gateway, task_id)
        _, real = await _callback_link(sandbox, upstream_id)
        filled = {
            name: value.format(task_id=task_id, other_id=other_id, token=real["token"])
            for name, value in query.items()
        }
        answer = await client.post(CALLBACK_PATH, params=filled, json=_forged(upstream_id, "fail"))
        task = (await client.get(f"/v1/tasks/{task_id}")).json()
    assert answer.status_code in (400, 401), answer.text
    body = answer.json()
    assert set(body) == {"error", "message", "type", "code", "param"}
    assert task["state"] != "fail"
    assert task["billing"]["status"] == "reserved"


async def test_a_callback_token_made_from_anything_a_copy_of_the_database_holds_is_refused(
    slow_upstream: tuple[RunningGateway, str],
) -> None:
    gateway, sandbox = slow_upstream
    key = await gateway.account_with_key("target", credit_usd="10")
    async with gateway.client(key) as client:
        task_id = await create(client, TEXT)
        upstream_id = await _upstream_id(gateway, task_id)
        path, real = await _callback_link(sandbox, upstream_id)
        kept = await kept_values(gateway.settings.database_url)
        # Each value as the key, and as the key the callback key was once derived from.
        candidates = [value.encode() for value in kept] + [
            hmac.new(value.encode(), b"upstream callbacks", hashlib.sha256).digest()
            for value in kept
        ]
        answers = [
            await client.post(
                path,
                params={"task_id": task_id, "token": callback_token(candidate, task_id)},
                json=_forged(upstream_id, "fail"),
            )
            for candidate in candidates
        ]
        genuine = await client.post(path, params=real, json=_forged(upstream_id, "fail"))
        task = (await client.get(f"/v1/tasks/{task_id}")).json()
    assert kept, "the database keeps values to try"
    assert [answer.status_code for answer in answers] == [401] * len(candidates)
    assert {answer.json()["code"] for answer in answers} == {"invalid_callback_token"}
    assert genuine.status_code == 200, genuine.text
    assert task["billing"]["status"] == "reserved"


async def test_a_forged_success_with_a_valid_token_is_not_believed_nor_its_url_fetched(
    slow_upstream: tuple[RunningGateway, str],
) -> None:
    gateway, sandbox = slow_upstream
    key = await gateway.account_with_key("victim", credit_usd="10")
    with secret_server() as (secret_url, seen):
        async with gateway.client(key) as client:
            task_id = await create(client, TEXT)
            upstream_id = await _upstream_id(gateway, task_id)
            path, query = await _callback_link(sandbox, upstream_id)
            answer = await client.post(
                path, params=query, json=_forged(upstream_id, "success", [secret_url])
            )
            await asyncio.sleep(1)  # time for an engine to have (wrongly) fetched it
            task = (await client.get(f"/v1/tasks/{task_id}")).json()
            content = await client.get(f"/v1/tasks/{task_id}/content/0")
    assert answer.status_code == 200, answer.text
    # It may have moved the task on, as far as the upstream itself says: not to its end.
    assert task["state"] in ("waiting", "queuing", "generating")
    assert task["billing"]["status"] == "reserved"
    assert task["result"] == {}
    assert content.status_code == 404
    assert seen == [], "the gateway read an internal address"


async def test_a_forged_fail_with_a_valid_token_releases_nothing(
    slow_upstream: tuple[RunningGateway, str],
) -> None:
    gateway, sandbox = slow_upstream
    key = await gateway.account_with_key("victim", credit_usd="10")
    async with gateway.client(key) as client:
        task_id = await create(client, TEXT)
        upstream_id = await _upstream_id(gateway, task_id)
        path, query = await _callback_link(sandbox, upstream_id)
        answer = await client.post(path, params=query, json=_forged(upstream_id, "fail"))
        task = (await client.get(f"/v1/tasks/{task_id}")).json()
    assert answer.status_code == 200, answer.text
    assert (task["state"], task["billing"]["status"]) != ("fail", "released")
    assert task["billing"]["status"] == "reserved"
    await audit_passes(gateway)


async def test_with_a_signing_key_set_an_unsigned_callback_is_refused_even_with_its_token(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    sandbox = start_sandbox(generating_s=60, hmac_key="kie-hmac")
    port = free_port()
    gateway = start_gateway(
        provider=KieProvider(sandbox, SANDBOX_KEY, hmac_key="kie-hmac"),
        port=port,
        public_url=f"http://127.0.0.1:{port}",
    )
    key = await gateway.account_with_key("signed", credit_usd="10")
    async with gateway.client(key) as client:
        task_id = await create(client, TEXT)
        upstream_id = await _upstream_id(gateway, task_id)
        path, query = await _callback_link(sandbox, upstream_id)
        unsigned = await client.post(path, params=query, json=_forged(upstream_id, "fail"))
        stamp = str(int(time.time()))
        signed = await client.post(
            path,
            params=query,
            json=_forged(upstream_id, "fail"),
            headers={
                "X-Webhook-Timestamp": stamp,
                "X-Webhook-Signature": callback_signature("kie-hmac", upstream_id, stamp),
            },
        )
    assert unsigned.status_code == 401
    assert unsigned.json()["code"] == "invalid_callback_signature"
    assert signed.status_code == 200, signed.text


async def test_result_urls_on_loopback_are_never_fetched_unless_the_operator_allows_them(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    with secret_server() as (secret_url, seen):
        # An upstream that reports its results at an internal address.
        base = secret_url.removesuffix("/secret.txt")
        sandbox = start_sandbox(public_base_url=base)
        gateway = start_gateway(
            provider=KieProvider(sandbox, SANDBOX_KEY), task_deadline_s=3, **FAST_ENGINE
        )
        key = await gateway.account_with_key("careful", credit_usd="10")
        async with gateway.client(key) as client:
            final = (await until_final(client, await create(client, TEXT)))[-1]
    assert (final["state"], final["billing"]["status"]) == ("fail", "released")
    assert final["error"]["code"] == "result_unavailable"
    assert seen == []
    await audit_passes(gateway)


async def test_the_old_name_of_the_allowed_networks_setting_is_still_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REELGATE_WEBHOOK_ALLOWED_NETWORKS", '["10.9.0.0/16"]')
    assert [str(n) for n in Settings().allowed_networks] == ["10.9.0.0/16"]
    monkeypatch.setenv("REELGATE_ALLOWED_NETWORKS", '["10.8.0.0/16"]')
    assert [str(n) for n in Settings().allowed_networks] == ["10.8.0.0/16"]


async def test_a_sandbox_on_loopback_works_once_its_network_is_allowed(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    sandbox = start_sandbox()
    gateway = start_gateway(
        provider=KieProvider(sandbox, SANDBOX_KEY),
        allowed_networks=["127.0.0.0/8"],
        **FAST_ENGINE,
    )
    key = await gateway.account_with_key("operator", credit_usd="10")
    async with gateway.client(key) as client:
        final = (await until_final(client, await create(client, TEXT)))[-1]
        video = await client.get(final["result"]["data"][0]["url"])
    assert final["state"] == "success"
    assert video.content[4:8] == b"ftyp"


async def test_a_callback_holds_its_task_no_longer_than_the_engines_lease(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    """A process killed while it reads a task back after a callback leaves the task leased:
    another process takes it over when the lease ends, as after an engine's check, so the
    lease is the engine's (REELGATE_ENGINE_LEASE_S), not a longer one of the callback's own."""
    sandbox = start_sandbox(hang_s=30, faults={"record": {"timeout": 1.0}})
    port = free_port()
    gateway = start_gateway(
        provider=KieProvider(sandbox, SANDBOX_KEY, timeout_s=2),
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        engine_lease_s=4,
    )
    key = await gateway.account_with_key("held")
    async with gateway.client(key) as client:
        task_id = await create(client, TEXT)
        upstream_id = await _upstream_id(gateway, task_id)
        path, query = await _callback_link(sandbox, upstream_id)
        # The read back hangs at the upstream: the lease is held meanwhile.
        reading = asyncio.create_task(
            client.post(path, params=query, json=_forged(upstream_id, "success"))
        )
        async with kie_client(sandbox) as kie:
            for _ in range(100):
                if (await kie.get("/sandbox/stats")).json()["record_calls"]:
                    break
                await asyncio.sleep(0.05)
        engine = create_async_engine(gateway.settings.database_url)
        try:
            async with engine.connect() as conn:
                until_ms = await conn.scalar(
                    sa.text("SELECT lease_until_ms FROM tasks WHERE id = :id"), {"id": task_id}
                )
                read_at_ms = time.time() * 1000
        finally:
            await engine.dispose()
        await reading
    assert until_ms is not None
    assert 0 < until_ms - read_at_ms <= 4000


class _RecordingStore(TaskStore):
    """The real task store, noting when a lease is given back."""

    def __init__(self, db: Database, order: list[str]) -> None:
        super().__init__(db)
        self.order = order

    async def release(self, task_id: str, owner: str) -> None:
        await super().release(task_id, owner)
        self.order.append("lease given back")


@dataclass
class _MadeProvider:
    """A test double of the Provider interface (reelgate.upstream.provider.Provider): an
    upstream that reports every task made, its video at one URL."""

    channel: str = "kie"

    async def submit(self, request: VideoGenerationRequest, callback_url: str | None) -> str:
        return f"UPSTREAM-{uuid.uuid4().hex}"

    async def fetch_status(self, upstream_task_id: str) -> UpstreamStatus:
        return UpstreamStatus(
            upstream_task_id, TaskState.SUCCESS, result_urls=("https://example.com/v.mp4",)
        )

    async def find_created(self, task_id: str) -> UpstreamStatus | None:
        return None

    def read_callback(self, headers: Mapping[str, str], body: bytes) -> str:
        return str(orjson.loads(body)["data"]["taskId"])

    async def aclose(self) -> None:
        """Nothing to release."""


async def test_a_callback_wakes_the_engine_only_once_it_has_given_its_task_back(
    start_gateway: GatewayFactory, database_url: str
) -> None:
    """Woken while the callback still leased the task, the engine would find it held and look
    again only a quarter of a second later: the video's copy, and the success, would wait."""
    provider = _MadeProvider()
    gateway = start_gateway(provider=provider)
    key = await gateway.account_with_key("woken")
    async with gateway.client(key) as client:
        task_id = await create(client, TEXT)
    upstream_id = await _upstream_id(gateway, task_id)
    order: list[str] = []
    db = open_database(database_url)
    try:
        secret = SecretKey.parse(TEST_SECRET_KEY).derive(KeyUse.CALLBACK_TOKENS)
        intake = CallbackIntake(
            _RecordingStore(db, order),
            lambda _channel: provider,
            secret,
            "http://127.0.0.1/cb",
            wake_engine=lambda: order.append("engine woken"),
        )
        body = orjson.dumps({"data": {"taskId": upstream_id}})
        changed = await intake.receive("kie", task_id, callback_token(secret, task_id), {}, body)
    finally:
        await db.dispose()
    assert changed
    assert order == ["lease given back", "engine woken"]


async def _orphan(db: Database) -> str:
    """A task whose create was sent and never answered: no upstream id, submission unknown."""
    task_id = (await _tasks(db, 1, due_in_ms=60_000))[0]
    await TaskStore(db).record_submission_unknown(task_id)
    return task_id


@pytest.mark.parametrize("names", ["this-task", "another-task"])
async def test_a_callback_binds_an_unanswered_create_even_while_an_engine_holds_the_task(
    start_sandbox: SandboxFactory, database_url: str, names: str
) -> None:
    """KIE keeps no list of tasks: a create whose answer was lost can only be found through
    its callback. Arriving while an engine checks the task (the engine can do nothing with
    it), the callback binds the upstream task it names, when the upstream's record names this
    task back, so the engine's next check reads it through that id."""
    sandbox = start_sandbox(generating_s=60)
    provider = KieProvider(sandbox, SANDBOX_KEY)
    secret = SecretKey.parse(TEST_SECRET_KEY).derive(KeyUse.CALLBACK_TOKENS)
    woken: list[str] = []
    db = open_database(database_url)
    try:
        store = TaskStore(db)
        task_id, other_id = await _orphan(db), await _orphan(db)
        intake = CallbackIntake(
            store,
            lambda _channel: provider,
            secret,
            "http://127.0.0.1:9/v1/upstream/callbacks/{channel}",
            wake_engine=lambda: woken.append(task_id),
        )
        # The upstream made the task, its callback link naming this task (or another one).
        named_task = task_id if names == "this-task" else other_id
        request = parse_request(TEXT)
        upstream_id = await provider.submit(request, intake.url_for("kie", named_task))
        assert await store.lease(task_id, "engine-elsewhere", 60_000) is not None
        body = orjson.dumps({"code": 200, "data": {"taskId": upstream_id, "state": "waiting"}})
        token = callback_token(secret, task_id)
        changed = await intake.receive("kie", task_id, token, {}, body)
        task = await store.get(task_id)
    finally:
        await provider.aclose()
        await db.dispose()
    [(owner, due_at_ms)] = await sql(
        database_url,
        "SELECT lease_owner, next_poll_at_ms FROM tasks WHERE id = :id",
        {"id": task_id},
    )
    assert not changed  # the state is the engine's to apply, through the id
    assert task is not None
    assert owner == "engine-elsewhere"  # its check goes on undisturbed
    assert due_at_ms <= time.time() * 1000  # and is followed by another at once
    assert woken == [task_id]
    if names == "this-task":
        assert (task.upstream_task_id, task.submission) == (upstream_id, Submission.ACCEPTED)
    else:
        assert (task.upstream_task_id, task.submission) == (None, Submission.UNKNOWN)
