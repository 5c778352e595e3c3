"""What the console shows beyond the task resource, on both databases: each change of a task's
state recorded once, in the transaction that made it; each webhook delivery attempt; and a
signed-out console session refused, whoever kept a copy of its cookie."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reelgate.domain.ids import new_id
from reelgate.domain.lifecycle import Advance, CheckOutcome, Fail, Succeed
from reelgate.domain.task import NewTask, TaskState
from reelgate.domain.timeline import TaskEvent
from reelgate.domain.webhooks import ATTEMPT_ERROR_LENGTH, DeliveryStatus
from reelgate.services.console_sessions import ConsoleSessions
from reelgate.store import task_events
from reelgate.store.accounts import AccountStore
from reelgate.store.database import Database
from reelgate.store.schema import console_sessions_revoked
from reelgate.store.tasks import TaskStore
from reelgate.store.webhooks import Attempt, WebhookStore
from reelgate.upstream.kie import KieProvider
from tests.conftest import (
    ADMIN_TOKEN,
    SANDBOX_KEY,
    GatewayFactory,
    RunningGateway,
    SandboxFactory,
    free_port,
    open_database,
)
from tests.integration.cli_runner import run_cli
from tests.integration.engine_helpers import (
    FAST_ENGINE,
    SANDBOX_ON_LOOPBACK,
    TEXT,
    audit_passes,
    create,
    until_final,
)
from tests.integration.test_task_store import QUOTE, _tasks
from tests.sandbox_support import serve

Q, G, S, F = TaskState.QUEUING, TaskState.GENERATING, TaskState.SUCCESS, TaskState.FAIL


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = open_database(database_url)
    yield database
    await database.dispose()


def _states(events: list[TaskEvent]) -> list[TaskState]:
    return [e.state for e in events]


# Timelines: the store's writes


async def test_a_change_reported_by_a_callback_and_a_poll_together_is_recorded_once(
    db: Database,
) -> None:
    store = TaskStore(db)
    ids = await _tasks(db, 6)
    await store.claim_due("engine-a", 10, 60_000)
    soon = int(time.time() * 1000) + 60_000
    # The engine's batch and a callback per task report the same change at once.
    await asyncio.gather(
        store.record_checks("engine-a", [CheckOutcome(i, soon, Advance(G, 20)) for i in ids]),
        *(store.apply(i, Advance(G, 25)) for i in ids),
    )
    # Both report it again, and progress within the state moves on.
    await store.record_checks("engine-a", [CheckOutcome(i, soon, Advance(G, 30)) for i in ids])
    await asyncio.gather(*(store.apply(i, Advance(G, 40)) for i in ids))
    for task_id in ids:
        events = await task_events.of_task(db, task_id)
        assert _states(events) == [G], task_id
        assert events[0].progress in (20, 25)


async def test_the_engines_batch_records_its_changes_of_state_in_one_statement(
    db: Database,
) -> None:
    store = TaskStore(db)
    ids = await _tasks(db, 4)
    await store.claim_due("engine-a", 10, 60_000)
    soon = int(time.time() * 1000) + 60_000
    inserts: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "INSERT INTO TASK_EVENTS" in statement.upper():
            inserts.append(statement)

    event.listen(db.pool.sync_engine, "before_cursor_execute", capture)
    try:
        await store.record_checks(
            "engine-a",
            [
                CheckOutcome(ids[0], soon, Advance(Q, 5)),
                CheckOutcome(ids[1], soon, Advance(G, 15)),
                CheckOutcome(ids[2], soon, Advance(G, 15)),
                CheckOutcome(ids[3], soon),
            ],
        )
    finally:
        event.remove(db.pool.sync_engine, "before_cursor_execute", capture)
    assert len(inserts) == 1
    recorded = [_states(await task_events.of_task(db, task_id)) for task_id in ids]
    assert recorded == [[Q], [G], [G], []]


async def test_a_task_ends_once_with_its_error_code_recorded_whoever_ends_it(
    db: Database,
) -> None:
    store = TaskStore(db)
    [task_id] = await _tasks(db, 1)
    assert await store.apply(task_id, Advance(Q, 5))
    ends = await asyncio.gather(
        store.apply(task_id, Fail({"code": "deadline_exceeded", "message": "late"})),
        store.apply(task_id, Fail({"code": "generation_failed", "message": "no"})),
        store.apply(task_id, Succeed({"created": 1}, ())),
    )
    assert sum(ends) == 1
    events = await task_events.of_task(db, task_id)
    assert _states(events)[0] == Q
    [end] = events[1:]
    record = await store.get(task_id)
    assert record is not None
    assert end.state == record.state
    if end.state is F:
        assert record.error is not None
        assert end.detail == record.error["code"]
    else:
        assert (end.detail, end.progress) == (None, 100)


# Timelines: a task driven through the sandbox


def _console_ledger(page: str) -> list[str]:
    """The kinds of the task's ledger entries, as its page lists them."""
    table = page.split("<caption>Ledger entries</caption>", 1)[1].split("</table>", 1)[0]
    return re.findall(r"<td>(reserve|commit|release)</td>", table)


def _console_states(page: str) -> list[str]:
    timeline = page.split('aria-label="States"', 1)[1].split("</ol>", 1)[0]
    return re.findall(r'data-state="([a-z]+)"', timeline)


@asynccontextmanager
async def _console(gateway: RunningGateway, secret: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in to the console, keeping its session cookie."""
    async with gateway.client() as client:
        page = (await client.get("/console/sign-in")).text
        signed_in = await client.post(
            "/console/sign-in", data={"csrf": _csrf(page), "secret": secret}
        )
        assert signed_in.status_code == 303, signed_in.text
        yield client


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


@pytest.fixture
def slow_stages(monkeypatch: pytest.MonkeyPatch, quick_sandbox: Path) -> None:
    """The embedded sandbox's middle states last longer than the engine's longest pause
    between checks (0.6 s), so that every one of them is seen."""
    monkeypatch.setenv("REELGATE_SANDBOX_QUEUING_S", "1.0")
    monkeypatch.setenv("REELGATE_SANDBOX_GENERATING_S", "1.0")


@pytest.mark.usefixtures("slow_stages")
async def test_a_task_records_each_state_it_went_through_and_the_console_admin_api_and_cli_show_it(
    start_gateway: GatewayFactory, database_url: str
) -> None:
    gateway = start_gateway(**FAST_ENGINE)
    key = await gateway.account_with_key("steps", credit_usd="10")
    async with gateway.client(key) as client:
        task_id = await create(client, TEXT)
        seen = await until_final(client, task_id)
        public = (await client.get(f"/v1/tasks/{task_id}")).json()
    assert seen[-1]["state"] == "success"
    db = open_database(database_url)
    try:
        events = await task_events.of_task(db, task_id)
    finally:
        await db.dispose()
    assert _states(events) == [Q, G, S]
    assert [e.at_ms for e in events] == sorted(e.at_ms for e in events)
    assert events[-1].progress == 100
    # The public resource is as the spec has it: no timeline in it.
    assert not {"timeline", "events", "steps"} & set(public)
    async with _console(gateway, key) as console:
        page = (await console.get(f"/console/tasks/{task_id}")).text
    assert _console_states(page) == ["waiting", "queuing", "generating", "success"]
    assert _console_ledger(page) == ["reserve", "commit"]
    detail = await _admin_detail(gateway, task_id)
    steps = detail["timeline"]
    assert [step["state"] for step in steps] == ["waiting", "queuing", "generating", "success"]
    assert [step["current"] for step in steps] == [False, False, False, True]
    assert [step["entered_at_ms"] for step in steps] == sorted(s["entered_at_ms"] for s in steps)
    # Each state lasted until the next began; the last one ended the task.
    assert [step["duration_ms"] for step in steps[:-1]] == [
        later["entered_at_ms"] - step["entered_at_ms"] for step, later in pairwise(steps)
    ]
    assert steps[-1]["duration_ms"] is None
    billing = detail["billing"]
    assert [(e["kind"], e["amount_micro_usdc"], e["task_id"]) for e in detail["ledger"]] == [
        ("reserve", billing["reserve_amount_micro_usdc"], task_id),
        ("commit", billing["actual_amount_micro_usdc"], task_id),
    ]
    assert detail["webhook_attempts"] == []
    # The task as its owner sees it; the video links are signed anew each time a renewal
    # boundary passes between two reads, so only their number is compared.
    assert {k: v for k, v in detail.items() if k in public and k != "result"} == {
        k: v for k, v in public.items() if k != "result"
    }
    assert len(detail["result"]["data"]) == len(public["result"]["data"]) == 1
    assert detail["result"]["origin_data"] == public["result"]["origin_data"]
    shown = await run_cli(database_url, "task", task_id, "--json")
    assert shown.code == 0, shown
    as_json = orjson.loads(shown.stdout)
    for part in ("timeline", "ledger", "billing", "state", "account_id", "key_id"):
        assert as_json[part] == detail[part], part
    text = await run_cli(database_url, "task", task_id)
    assert text.code == 0, text
    lines = text.stdout.splitlines()
    assert lines[0].split() == [task_id, public["model"], "success", "100", "%"]
    assert [line.split()[0] for line in lines if line.split()[:1] in (["reserve"], ["commit"])] == [
        "reserve",
        "commit",
    ]
    await audit_passes(gateway)


async def _admin_detail(gateway: RunningGateway, task_id: str) -> dict[str, Any]:
    async with gateway.admin() as admin:
        answer = await admin.get(f"/admin/tasks/{task_id}")
    assert answer.status_code == 200, answer.text
    detail: dict[str, Any] = answer.json()
    return detail


async def test_a_failed_generation_records_its_failure_with_its_code(
    start_gateway: GatewayFactory,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    quick_sandbox: Path,
) -> None:
    monkeypatch.setenv("REELGATE_SANDBOX_FAIL_SHARE", "1.0")
    gateway = start_gateway(**FAST_ENGINE)
    key = await gateway.account_with_key("failing", credit_usd="10")
    async with gateway.client(key) as client:
        task_id = await create(client, TEXT)
        final = (await until_final(client, task_id))[-1]
    assert final["state"] == "fail"
    db = open_database(database_url)
    try:
        events = await task_events.of_task(db, task_id)
    finally:
        await db.dispose()
    assert _states(events)[-1] is F
    assert len(set(_states(events))) == len(events)
    assert events[-1].detail == final["error"]["code"] == "generation_failed"
    async with _console(gateway, ADMIN_TOKEN) as console:
        page = (await console.get(f"/console/tasks/{task_id}")).text
    assert _console_states(page)[-1] == "fail"
    assert "<code>generation_failed</code>" in page
    assert _console_ledger(page) == ["reserve", "release"]
    detail = await _admin_detail(gateway, task_id)
    assert (detail["timeline"][-1]["state"], detail["timeline"][-1]["detail"]) == (
        "fail",
        "generation_failed",
    )
    reserved = detail["billing"]["reserve_amount_micro_usdc"]
    assert [(e["kind"], e["amount_micro_usdc"]) for e in detail["ledger"]] == [
        ("reserve", reserved),
        ("release", reserved),
    ]


async def test_with_callbacks_and_polls_both_reporting_each_change_is_recorded_once(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory, database_url: str
) -> None:
    sandbox = start_sandbox(hmac_key="kie-hmac", queuing_s=1.0, generating_s=1.0)
    port = free_port()
    gateway = start_gateway(
        provider=KieProvider(sandbox, SANDBOX_KEY, hmac_key="kie-hmac"),
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        **{**FAST_ENGINE, **SANDBOX_ON_LOOPBACK},
    )
    key = await gateway.account_with_key("both", credit_usd="10")
    async with gateway.client(key) as client:
        ids = [await create(client, TEXT) for _ in range(3)]
        finals = [(await until_final(client, task_id))[-1] for task_id in ids]
    assert [f["state"] for f in finals] == ["success"] * 3
    db = open_database(database_url)
    try:
        recorded = [_states(await task_events.of_task(db, task_id)) for task_id in ids]
    finally:
        await db.dispose()
    assert recorded == [[Q, G, S]] * 3
    await audit_passes(gateway)


# Webhook attempts

RECEIVER_BODY = "the receiver's own words, never kept"


@contextmanager
def flaky_receiver(statuses: list[int]) -> Iterator[str]:
    """A receiver answering with ``statuses`` in turn (then 200), its body always the same."""
    answers = list(statuses)

    async def receive(request: Request) -> Response:
        await request.body()
        return Response(RECEIVER_BODY, status_code=answers.pop(0) if answers else 200)

    with serve(Starlette(routes=[Route("/cb", receive, methods=["POST"])])) as base:
        yield f"{base}/cb"


@pytest.mark.usefixtures("quick_sandbox")
async def test_each_delivery_attempt_is_recorded_and_listed_on_the_task_page_and_by_the_admin_api(
    start_gateway: GatewayFactory, database_url: str
) -> None:
    gateway = start_gateway(
        **FAST_ENGINE, webhook_retry_scale=0.01, allowed_networks=["127.0.0.0/8"]
    )
    key = await gateway.account_with_key("hooked", credit_usd="10")
    with flaky_receiver([500, 503]) as url:
        async with gateway.client(key) as client:
            task_id = await create(client, {**TEXT, "callBackUrl": url})
            await until_final(client, task_id)

            async def delivered() -> bool:
                task = (await client.get(f"/v1/tasks/{task_id}")).json()
                return bool(task["webhook_delivery"]["status"] == "delivered")

            for _ in range(200):
                if await delivered():
                    break
                await asyncio.sleep(0.05)
            assert await delivered()
    db = open_database(database_url)
    try:
        attempts = await WebhookStore(db).attempts(task_id)
    finally:
        await db.dispose()
    assert [(a.attempt, a.response_code, a.error) for a in attempts] == [
        (1, 500, "the receiver answered 500"),
        (2, 503, "the receiver answered 503"),
        (3, 200, None),
    ]
    assert [a.at_ms for a in attempts] == sorted(a.at_ms for a in attempts)
    assert all(a.duration_ms >= 0 for a in attempts)
    async with _console(gateway, key) as console:
        page = (await console.get(f"/console/tasks/{task_id}")).text
    section = page.split("<caption>Delivery attempts</caption>", 1)[1].split("</table>", 1)[0]
    assert re.findall(r"HTTP (\d{3})", section) == ["500", "503", "200"]
    assert RECEIVER_BODY not in page
    detail = await _admin_detail(gateway, task_id)
    assert [(a["attempt"], a["response_code"], a["error"]) for a in detail["webhook_attempts"]] == [
        (a.attempt, a.response_code, a.error) for a in attempts
    ]
    assert RECEIVER_BODY not in str(detail)


async def _finished_with_webhook(db: Database) -> str:
    """A task ended through the store with a callBackUrl: its delivery is due."""
    accounts = AccountStore(db)
    account = await accounts.create(f"acct-{new_id('x')[-6:]}", 100_000_000)
    api_key = await accounts.add_key(account.name, new_id("hash"), "rg_test")
    store, now_ms = TaskStore(db), int(time.time() * 1000)
    record = await store.create(
        NewTask(
            id=new_id("task"),
            account_id=account.id,
            key_id=api_key.id,
            model="seedance-2-fast",
            request={"prompt": "a boat", "callBackUrl": "https://hooks.example/cb"},
            channel="kie",
            quote=QUOTE,
            created_at_ms=now_ms,
            first_poll_at_ms=now_ms,
            deadline_at_ms=now_ms + 3_600_000,
        )
    )
    assert record is not None
    assert await store.apply(record.id, Fail({"code": "generation_failed", "message": "no"}))
    return record.id


async def test_an_attempt_keeps_a_bounded_error_and_only_its_lease_holder_records_it(
    db: Database,
) -> None:
    task_id = await _finished_with_webhook(db)
    hooks = WebhookStore(db)
    [due] = await hooks.claim_due("engine-a", 10, 60_000)
    assert due.task_id == task_id
    now_ms = int(time.time() * 1000)
    failed = Attempt(DeliveryStatus.PENDING, None, "x" * 5_000, now_ms, now_ms, 12)
    await hooks.record(task_id, "engine-b", failed)  # not its lease: nothing kept
    assert await hooks.attempts(task_id) == []
    await hooks.record(task_id, "engine-a", failed)
    [kept] = await hooks.attempts(task_id)
    assert (kept.attempt, kept.response_code, kept.duration_ms) == (1, None, 12)
    assert kept.error == "x" * ATTEMPT_ERROR_LENGTH


# Signing out


async def _opens(gateway: RunningGateway, cookie: str, path: str) -> httpx.Response:
    async with gateway.client(cookies={"reelgate_console": cookie}) as copy:
        return await copy.get(path)


@pytest.mark.parametrize(
    ("who", "path"), [("developer", "/console/tasks"), ("operator", "/console/dashboard")]
)
async def test_a_copy_of_a_signed_out_sessions_cookie_opens_nothing(
    gateway: RunningGateway, who: str, path: str
) -> None:
    secret = ADMIN_TOKEN if who == "operator" else await gateway.account_with_key("leaky")
    async with _console(gateway, secret) as console:
        copied = console.cookies.get("reelgate_console")
        assert copied
        assert (await _opens(gateway, copied, path)).status_code == 200
        page = (await console.get(path)).text
        signed_out = await console.post("/console/sign-out", data={"csrf": _csrf(page)})
        assert signed_out.status_code == 303
        # The browser that signed out is signed out too.
        assert (await console.get(path)).status_code == 303
    refused = await _opens(gateway, copied, path)
    assert refused.status_code == 303
    assert refused.headers["location"] == "/console/sign-in"
    # The copy is replaced by an anonymous session, and signing in again works as before.
    assert refused.cookies.get("reelgate_console") not in (None, copied)
    async with _console(gateway, secret) as again:
        assert (await again.get(path)).status_code == 200


async def test_signing_out_forgets_sessions_that_have_expired_since(db: Database) -> None:
    sessions = ConsoleSessions(db)
    now_s = int(time.time())
    await sessions.end("expired-since", now_s - 1)  # its cookie opens nothing any more
    await sessions.end("long-gone", now_s + 3600)
    async with db.write() as conn:
        await conn.execute(
            console_sessions_revoked.update()
            .where(console_sessions_revoked.c.sid == "long-gone")
            .values(expires_at_ms=(now_s - 60) * 1000)
        )
    await sessions.end("current", now_s + 3600)
    async with db.read() as conn:
        kept = (await conn.execute(sa.select(console_sessions_revoked.c.sid))).scalars().all()
    assert kept == ["current"]
    assert await sessions.ended("current")
    assert not await sessions.ended("long-gone")
