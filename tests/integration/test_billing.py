"""Billing on both databases: reserve at create (402 when the available balance is short), commit
on success, release in full on failure, each exactly once; the append-only ledger; and
``reelgate audit`` (the real command line) finding every kind of inconsistency."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import httpx
import pytest
import sqlalchemy as sa

from reelgate.domain.accounts import Account
from reelgate.domain.catalogue import MODELS
from reelgate.domain.ids import new_id
from reelgate.domain.lifecycle import Fail, Succeed
from reelgate.domain.money import micro_to_usd
from reelgate.domain.pricing import PriceBook
from reelgate.domain.request import parse_request
from reelgate.domain.task import NewTask, TaskRecord, TaskState
from reelgate.errors import UpstreamError
from reelgate.services.accounts import AccountService
from reelgate.store.database import Database
from reelgate.store.tasks import TaskStore
from tests.conftest import GatewayFactory, RunningGateway, open_database
from tests.doubles import AcceptingProvider, RefusingProvider
from tests.integration.cli_runner import run_cli, sql
from tests.integration.cli_runner import upstream_id as recorded_upstream_id
from tests.spec_examples import TEXT_TO_VIDEO as FIRST_EXAMPLE

CREATE: Final = "/v1/videos/generations"
# The specification's first example (text-to-video): seedance-2-fast, 720p, no video input, 5 s.
COST: Final = 825_000  # 165,000 micro-USDC per second (33 KIE credits) x 5 s x margin 1.0
ERROR_KEYS: Final = {"error", "message", "type", "code", "param"}


def usd(micro: int) -> str:
    return micro_to_usd(micro)


async def account_json(gateway: RunningGateway, name: str) -> dict[str, Any]:
    async with gateway.admin() as admin:
        shown = await admin.get(f"/admin/accounts/{name}")
    assert shown.status_code == 200, shown.text
    body: dict[str, Any] = shown.json()
    return body


async def ledger_of(database_url: str, account: str) -> list[tuple[str, str | None, int]]:
    """The account's ledger entries in order: (kind, task id, amount)."""
    rows = await sql(
        database_url,
        "SELECT l.kind, l.task_id, l.amount_micro_usdc FROM ledger l "
        "JOIN accounts a ON a.id = l.account_id WHERE a.name = :name ORDER BY l.id",
        {"name": account},
    )
    return [(kind, task_id, int(amount)) for kind, task_id, amount in rows]


async def task_ids_of(database_url: str, account: str) -> list[str]:
    rows = await sql(
        database_url,
        "SELECT t.id FROM tasks t JOIN accounts a ON a.id = t.account_id "
        "WHERE a.name = :name ORDER BY t.id",
        {"name": account},
    )
    return [row[0] for row in rows]


async def assert_audit_passes(database_url: str) -> None:
    audited = await run_cli(database_url, "audit")
    assert audited.code == 0, audited
    assert "VIOLATION" not in audited.stdout + audited.stderr
    assert audited.stdout.startswith("ledger ok"), audited


def assert_error_body(answer: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert set(body) == ERROR_KEYS, body
    assert body["error"] == error, body
    assert body["message"], body
    return body


# Reserve at create


async def test_concurrent_creates_reserve_exactly_as_many_tasks_as_the_balance_covers(
    gateway: RunningGateway, database_url: str
) -> None:
    covered, attempts = 7, 30
    key = await gateway.account_with_key("racer", credit_usd=usd(covered * COST))
    async with gateway.client(key) as client:
        answers = await asyncio.gather(
            *(client.post(CREATE, json=FIRST_EXAMPLE) for _ in range(attempts))
        )
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {202: covered, 402: attempts - covered}, [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 402:
            body = assert_error_body(answer, 402, "insufficient_balance")
            assert body["code"] == "insufficient_balance", body
            assert body["param"] is None, body
    accepted = {answer.json()["task_id"] for answer in answers if answer.status_code == 202}
    assert len(accepted) == covered
    account = await account_json(gateway, "racer")
    assert account["balance_micro_usdc"] == covered * COST
    assert account["reserved_micro_usdc"] == covered * COST
    assert account["available_micro_usdc"] == 0
    assert set(await task_ids_of(database_url, "racer")) == accepted
    reserves = [entry for entry in await ledger_of(database_url, "racer") if entry[0] == "reserve"]
    assert sorted(reserves) == sorted(("reserve", task_id, COST) for task_id in accepted)
    await assert_audit_passes(database_url)


@pytest.mark.parametrize("credit", [0, COST - 1], ids=["empty-account", "one-micro-short"])
async def test_create_refused_with_402_creates_no_task_and_no_ledger_entry(
    gateway: RunningGateway, database_url: str, credit: int
) -> None:
    key = await gateway.account_with_key("short", credit_usd=usd(credit))
    ledger_before = await ledger_of(database_url, "short")
    async with gateway.client(key) as client:
        answer = await client.post(CREATE, json=FIRST_EXAMPLE)
    body = assert_error_body(answer, 402, "insufficient_balance")
    assert str(COST) in body["message"], body
    assert await task_ids_of(database_url, "short") == []
    assert await ledger_of(database_url, "short") == ledger_before
    assert [kind for kind, _, _ in ledger_before] == (["credit"] if credit else [])
    account = await account_json(gateway, "short")
    assert (account["balance_micro_usdc"], account["reserved_micro_usdc"]) == (credit, 0)


async def test_available_balance_of_exactly_the_cost_is_enough_and_then_nothing_is_left(
    gateway: RunningGateway, database_url: str
) -> None:
    key = await gateway.account_with_key("exact", credit_usd=usd(COST))
    async with gateway.client(key) as client:
        first = await client.post(CREATE, json=FIRST_EXAMPLE)
        second = await client.post(CREATE, json=FIRST_EXAMPLE)
    assert first.status_code == 202, first.text
    assert_error_body(second, 402, "insufficient_balance")
    account = await account_json(gateway, "exact")
    assert account["available_micro_usdc"] == 0
    assert len(await task_ids_of(database_url, "exact")) == 1


async def test_open_reservations_count_against_the_balance_before_anything_is_spent(
    gateway: RunningGateway,
) -> None:
    key = await gateway.account_with_key("holder", credit_usd=usd(COST + COST // 2))
    async with gateway.client(key) as client:
        first = await client.post(CREATE, json=FIRST_EXAMPLE)
        second = await client.post(CREATE, json=FIRST_EXAMPLE)
    assert first.status_code == 202, first.text
    # The balance alone (1.5 x cost) would cover the second task; the open reservation does not.
    assert_error_body(second, 402, "insufficient_balance")
    account = await account_json(gateway, "holder")
    assert account["balance_micro_usdc"] == COST + COST // 2
    assert account["available_micro_usdc"] == COST // 2


REFUSALS: Final = [
    pytest.param(
        UpstreamError(
            "the video provider rejected the request", fault="request", code="upstream_rejected"
        ),
        id="request-refused",
    ),
    pytest.param(
        UpstreamError(
            "the gateway's video provider account is out of credit",
            fault="operator",
            code="upstream_credits",
        ),
        id="operator-out-of-credit",
    ),
    pytest.param(
        UpstreamError("the video provider had an internal error", retryable=True),
        id="upstream-outage",
    ),
]


@pytest.mark.parametrize("refusal", REFUSALS)
async def test_refused_create_is_502_and_the_task_fails_with_its_reservation_released(
    start_gateway: GatewayFactory, database_url: str, refusal: UpstreamError
) -> None:
    provider = RefusingProvider(refusal)
    gateway = start_gateway(provider=provider)
    credit = 10 * COST
    key = await gateway.account_with_key("refused", credit_usd=usd(credit))
    async with gateway.client(key) as client:
        answer = await client.post(CREATE, json=FIRST_EXAMPLE)
        body = assert_error_body(answer, 502, "upstream_error")
        assert provider.submissions == 1
        assert body["code"] == refusal.code
        assert body["message"] == refusal.message
        [task_id] = await task_ids_of(database_url, "refused")
        polled = await client.get(f"/v1/tasks/{task_id}")
    assert polled.status_code == 200, polled.text
    task = polled.json()
    assert task["state"] == "fail"
    assert task["progress"] == 0
    assert task["result"] == {}
    assert task["completed_at"] is not None
    assert task["error"] == {"code": refusal.code, "message": refusal.message}
    # The provider is named nowhere but in billing.channel, the operator's slug for the account.
    assert task["billing"]["channel"] == "kie"
    assert "kie" not in polled.text.lower().replace('"channel":"kie"', "")
    assert task["billing"]["status"] == "released"
    assert task["billing"]["reserve_amount_micro_usdc"] == COST
    assert task["billing"]["released_amount_micro_usdc"] == COST
    assert task["billing"]["actual_amount_micro_usdc"] == 0
    account = await account_json(gateway, "refused")
    assert account["balance_micro_usdc"] == credit
    assert account["reserved_micro_usdc"] == 0
    assert account["available_micro_usdc"] == credit
    assert await ledger_of(database_url, "refused") == [
        ("credit", None, credit),
        ("reserve", task_id, COST),
        ("release", task_id, COST),
    ]
    await assert_audit_passes(database_url)


async def test_refused_create_leaves_the_whole_balance_for_the_next_task(
    start_gateway: GatewayFactory, database_url: str
) -> None:
    provider = RefusingProvider(UpstreamError("the video provider had an internal error"))
    gateway = start_gateway(provider=provider)
    key = await gateway.account_with_key("retry", credit_usd=usd(COST))
    async with gateway.client(key) as client:
        answers = [(await client.post(CREATE, json=FIRST_EXAMPLE)).status_code for _ in range(3)]
    # An account that can afford one task can be refused upstream again and again: never 402.
    assert answers == [502, 502, 502]
    assert provider.submissions == 3
    account = await account_json(gateway, "retry")
    assert (account["balance_micro_usdc"], account["reserved_micro_usdc"]) == (COST, 0)
    await assert_audit_passes(database_url)


async def test_accepted_create_keeps_the_task_waiting_and_never_shows_the_upstream_id(
    start_gateway: GatewayFactory, database_url: str
) -> None:
    provider = AcceptingProvider()
    gateway = start_gateway(provider=provider)
    key = await gateway.account_with_key("accepted", credit_usd=usd(10 * COST))
    async with gateway.client(key) as client:
        created = await client.post(CREATE, json=FIRST_EXAMPLE)
        assert created.status_code == 202, created.text
        polls = [await client.get(created.json()["poll_url"]) for _ in range(2)]
    [upstream_id] = provider.upstream_ids
    for answer in (created, *polls):
        assert answer.status_code in (200, 202), answer.text
        assert upstream_id not in answer.text
        assert "UPSTREAM-" not in answer.text
        assert not [value for value in answer.headers.values() if "UPSTREAM-" in value]
    task = polls[-1].json()
    assert task["state"] == "waiting"
    assert task["billing"]["status"] == "reserved"
    assert task["billing"]["reserve_amount_micro_usdc"] == COST
    # The gateway kept the upstream id for itself, beside its own task id.
    assert await recorded_upstream_id(database_url, created.json()["task_id"]) == upstream_id
    assert (await account_json(gateway, "accepted"))["reserved_micro_usdc"] == COST
    await assert_audit_passes(database_url)


# Settle exactly once


@dataclass
class Seeded:
    account: Account
    tasks: list[TaskRecord]


async def seed(db: Database, name: str, credit_micro: int, n_tasks: int) -> Seeded:
    """An account with a key and ``n_tasks`` reserved tasks, made through the real services."""
    service = AccountService(db)
    account = await service.create(name, usd(credit_micro))
    issued = await service.create_key(name)
    request = parse_request(FIRST_EXAMPLE)
    quote = PriceBook().quote(
        MODELS[request.model], request.resolution, request.video_input, request.duration, 10**6
    )
    assert quote.cost_micro_usdc == COST
    store = TaskStore(db)
    records = [
        await store.create(
            NewTask(
                id=new_id("task"),
                account_id=account.id,
                key_id=issued.key.id,
                model=request.model,
                request=request.as_accepted(),
                channel="kie",
                quote=quote,
                created_at_ms=int(time.time() * 1000),
                # Never due: these tasks are settled by the test itself.
                first_poll_at_ms=2**62,
                deadline_at_ms=2**62,
            )
        )
        for _ in range(n_tasks)
    ]
    return Seeded(account, records)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = open_database(database_url)
    try:
        yield database
    finally:
        await database.dispose()


ENDS: Final[dict[TaskState, Succeed | Fail]] = {
    TaskState.SUCCESS: Succeed(result={"created": 1}, media=()),
    TaskState.FAIL: Fail({"code": "generation_failed", "message": "the generation failed"}),
}


async def finish_concurrently(
    database_url: str, db: Database, task_id: str, states: list[TaskState], own_engines: bool
) -> list[bool]:
    """Call TaskStore.finish once per state, all at once: through one engine, or each through
    an engine of its own as separate workers would. No call may raise."""
    engines = [open_database(database_url) for _ in states] if own_engines else [db] * len(states)
    try:
        results = await asyncio.gather(
            *(
                TaskStore(engine).apply(task_id, ENDS[state])
                for engine, state in zip(engines, states, strict=True)
            ),
            return_exceptions=True,
        )
    finally:
        if own_engines:
            for engine in engines:
                await engine.dispose()
    assert [r for r in results if not isinstance(r, bool)] == [], results
    return [bool(r) for r in results]


@pytest.mark.parametrize("own_engines", [False, True], ids=["one-engine", "engine-per-caller"])
@pytest.mark.parametrize("state", [TaskState.SUCCESS, TaskState.FAIL])
async def test_finish_settles_a_task_exactly_once_under_20_concurrent_calls(
    database_url: str, db: Database, state: TaskState, own_engines: bool
) -> None:
    credit = 3 * COST
    seeded = await seed(db, "settler", credit, 1)
    task_id = seeded.tasks[0].id
    results = await finish_concurrently(database_url, db, task_id, [state] * 20, own_engines)
    assert results.count(True) == 1
    assert results.count(False) == 19
    settlement = "commit" if state is TaskState.SUCCESS else "release"
    assert await ledger_of(database_url, "settler") == [
        ("credit", None, credit),
        ("reserve", task_id, COST),
        (settlement, task_id, COST),
    ]
    record = await TaskStore(db).get(task_id)
    assert record is not None
    assert record.state is state
    assert record.billing_status.value == (
        "committed" if state is TaskState.SUCCESS else "released"
    )
    account = await AccountService(db).show("settler")
    spent = COST if state is TaskState.SUCCESS else 0
    assert account.account.balance_micro_usdc == credit - spent
    assert account.account.reserved_micro_usdc == 0
    await assert_audit_passes(database_url)


async def test_concurrent_success_and_fail_settle_once_as_whichever_won(
    database_url: str, db: Database
) -> None:
    credit = 3 * COST
    seeded = await seed(db, "split", credit, 1)
    task_id = seeded.tasks[0].id
    states = [TaskState.SUCCESS, TaskState.FAIL] * 10
    results = await finish_concurrently(database_url, db, task_id, states, own_engines=True)
    assert results.count(True) == 1
    winner = states[results.index(True)]
    record = await TaskStore(db).get(task_id)
    assert record is not None
    assert record.state is winner
    ledger = await ledger_of(database_url, "split")
    settlements = [kind for kind, _, _ in ledger if kind in ("commit", "release")]
    assert settlements == ["commit" if winner is TaskState.SUCCESS else "release"]
    account = (await AccountService(db).show("split")).account
    assert account.reserved_micro_usdc == 0
    assert account.balance_micro_usdc == credit - (COST if winner is TaskState.SUCCESS else 0)
    await assert_audit_passes(database_url)


async def test_finishing_a_finished_task_again_changes_nothing(
    database_url: str, db: Database
) -> None:
    seeded = await seed(db, "twice", 2 * COST, 1)
    task_id = seeded.tasks[0].id
    store = TaskStore(db)
    assert await store.apply(task_id, ENDS[TaskState.SUCCESS]) is True
    before = await store.get(task_id)
    assert before is not None
    assert before.state is TaskState.SUCCESS
    assert await store.apply(task_id, ENDS[TaskState.FAIL]) is False
    assert await store.apply(task_id, ENDS[TaskState.SUCCESS]) is False
    assert await store.get(task_id) == before
    assert [kind for kind, _, _ in await ledger_of(database_url, "twice")] == [
        "credit",
        "reserve",
        "commit",
    ]


# The ledger is append-only


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger SET amount_micro_usdc = amount_micro_usdc + 1",
        "UPDATE ledger SET kind = 'credit', note = 'rewritten' WHERE kind = 'commit'",
        "DELETE FROM ledger WHERE kind = 'commit'",
        "DELETE FROM ledger",
    ],
    ids=["update-amounts", "update-kind", "delete-one", "delete-all"],
)
async def test_database_refuses_to_rewrite_or_delete_ledger_entries(
    database_url: str, db: Database, statement: str
) -> None:
    seeded = await seed(db, "history", 2 * COST, 1)
    assert await TaskStore(db).apply(seeded.tasks[0].id, ENDS[TaskState.SUCCESS]) is True
    before = await sql(database_url, "SELECT * FROM ledger ORDER BY id")
    assert len(before) == 3
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        await sql(database_url, statement)
    assert await sql(database_url, "SELECT * FROM ledger ORDER BY id") == before


async def test_ledger_still_accepts_new_entries(database_url: str, db: Database) -> None:
    await seed(db, "appender", COST, 0)
    await AccountService(db).credit("appender", "1.5", "top-up")
    assert [entry[0] for entry in await ledger_of(database_url, "appender")] == ["credit"] * 2


# Audit


@dataclass(frozen=True)
class Corruption:
    """Data made inconsistent directly in the database, and the words the violation must use."""

    statements: tuple[str, ...]
    names: tuple[str, ...]


def corruptions(seeded: Seeded) -> dict[str, Corruption]:
    waiting, succeeded, failed, settled_early = (task.id for task in seeded.tasks)
    account = seeded.account
    return {
        "balance-behind-the-ledger": Corruption(
            (
                f"UPDATE accounts SET balance_micro_usdc = balance_micro_usdc + 1 "
                f"WHERE id = '{account.id}'",
            ),
            (f"account '{account.name}'", "balance", "credits", "commits"),
        ),
        "reservations-behind-the-ledger": Corruption(
            (
                f"UPDATE accounts SET reserved_micro_usdc = reserved_micro_usdc + 7 "
                f"WHERE id = '{account.id}'",
            ),
            (f"account '{account.name}'", "reserved", "open reservations"),
        ),
        "finished-task-without-settlement": Corruption(
            (
                f"UPDATE tasks SET state = 'success', billing_status = 'committed' "
                f"WHERE id = '{waiting}'",
            ),
            (waiting, "finished task", "0 commit(s)", "0 release(s)"),
        ),
        "failed-task-settled-as-success": Corruption(
            (
                f"UPDATE tasks SET state = 'success', billing_status = 'committed' "
                f"WHERE id = '{failed}'",
            ),
            (failed, "finished task", "0 commit(s)", "1 release(s)"),
        ),
        "unfinished-task-with-settlement": Corruption(
            (
                "INSERT INTO ledger (account_id, task_id, kind, amount_micro_usdc, created_at) "
                f"VALUES ('{account.id}', '{settled_early}', 'release', {COST}, 0)",
                # The account's own figures are kept in step, so that only the task is wrong.
                f"UPDATE accounts SET reserved_micro_usdc = reserved_micro_usdc - {COST} "
                f"WHERE id = '{account.id}'",
            ),
            (settled_early, "unfinished task", "settled"),
        ),
        "settled-task-reopened": Corruption(
            (
                f"UPDATE tasks SET state = 'generating', billing_status = 'reserved' "
                f"WHERE id = '{succeeded}'",
            ),
            (succeeded, "unfinished task", "settled"),
        ),
    }


CORRUPTIONS: Final = [
    "balance-behind-the-ledger",
    "reservations-behind-the-ledger",
    "finished-task-without-settlement",
    "failed-task-settled-as-success",
    "unfinished-task-with-settlement",
    "settled-task-reopened",
]


async def seed_for_audit(db: Database) -> Seeded:
    """An account with every kind of task: waiting, succeeded, failed, and one more waiting."""
    seeded = await seed(db, "audited", 10 * COST, 4)
    store = TaskStore(db)
    assert await store.apply(seeded.tasks[1].id, ENDS[TaskState.SUCCESS]) is True
    assert await store.apply(seeded.tasks[2].id, ENDS[TaskState.FAIL]) is True
    assert await AccountService(db).audit() == []
    return seeded


def violations_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("VIOLATION")]


@pytest.mark.parametrize("kind", CORRUPTIONS)
async def test_audit_exits_1_naming_a_violation_made_directly_in_the_database(
    database_url: str, db: Database, kind: str
) -> None:
    seeded = await seed_for_audit(db)
    corruption = corruptions(seeded)[kind]
    for statement in corruption.statements:
        await sql(database_url, statement)
    audited = await run_cli(database_url, "audit")
    assert audited.code == 1, audited
    assert "ledger ok" not in audited.stdout
    [violation] = violations_in(audited.stderr)
    for name in corruption.names:
        assert name in violation, (name, violation)


async def test_audit_names_every_violation_not_only_the_first(
    database_url: str, db: Database
) -> None:
    seeded = await seed_for_audit(db)
    chosen = corruptions(seeded)
    # Each kind touches its own rows or figures, so together they make one violation each.
    kinds = CORRUPTIONS
    for kind in kinds:
        for statement in chosen[kind].statements:
            await sql(database_url, statement)
    audited = await run_cli(database_url, "audit")
    assert audited.code == 1, audited
    violations = violations_in(audited.stderr)
    assert len(violations) == len(kinds), violations
    for kind in kinds:
        names = chosen[kind].names
        assert [v for v in violations if all(name in v for name in names)], (kind, violations)


async def test_audit_json_reports_violations_and_exits_1(database_url: str, db: Database) -> None:
    seeded = await seed_for_audit(db)
    for statement in corruptions(seeded)["balance-behind-the-ledger"].statements:
        await sql(database_url, statement)
    audited = await run_cli(database_url, "audit", "--json")
    assert audited.code == 1, audited
    report = json.loads(audited.stdout)
    assert report["ok"] is False
    [violation] = report["violations"]
    assert "account 'audited'" in violation
