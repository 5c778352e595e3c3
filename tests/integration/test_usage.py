"""Usage and statements: GET /v1/usage, /v1/account, /v1/account/ledger, GET /admin/usage and
``reelgate usage``, against the ledger itself; JSON and CSV; on both databases."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime
from typing import Any, Final

import pytest

from reelgate.domain.task import TaskState
from reelgate.services import usage as usage_service
from tests.conftest import RunningGateway
from tests.integration.api_helpers import assert_error, issue_key
from tests.integration.cli_runner import run_cli, sql
from tests.integration.list_helpers import QUOTES, all_pages, csv_rows, store_tasks

DAY: Final = 86_400
FIGURES: Final = (
    "tasks_success",
    "tasks_fail",
    "generated_seconds",
    "committed_micro_usdc",
    "released_micro_usdc",
)
FAST, DEAR = QUOTES["seedance-2-fast"], QUOTES["seedance-2"]


def today() -> str:
    return datetime.now(UTC).date().isoformat()


@pytest.fixture
async def keys(gateway: RunningGateway) -> dict[str, dict[str, Any]]:
    """alice with two keys and bob with one, and tasks of each ended or not:

    alice's first key: 3 fast tasks succeeded, 1 failed; her second: 2 dear tasks succeeded,
    1 still waiting, and 1 made three days ago that ended now; bob's: 1 fast task succeeded."""
    url = gateway.settings.database_url
    alice = await issue_key(gateway, "alice")
    async with gateway.admin() as admin:
        second = (await admin.post("/admin/accounts/alice/keys")).json()
    bob = await issue_key(gateway, "bob")
    await store_tasks(url, alice, 3, end=TaskState.SUCCESS)
    await store_tasks(url, alice, 1, end=TaskState.FAIL)
    await store_tasks(url, second, 2, model="seedance-2", end=TaskState.SUCCESS)
    await store_tasks(url, second, 1, model="seedance-2")
    old = int(time.time()) - 3 * DAY
    await store_tasks(url, second, 1, model="seedance-2", created_s=old, end=TaskState.FAIL)
    await store_tasks(url, bob, 1, end=TaskState.SUCCESS)
    return {"alice": alice, "second": second, "bob": bob}


def figures(success: int, fail: int, seconds: int, committed: int, released: int) -> dict[str, int]:
    return dict(zip(FIGURES, (success, fail, seconds, committed, released), strict=True))


ALICE_FAST: Final = figures(3, 1, 3 * FAST.duration, 3 * FAST.cost_micro_usdc, FAST.cost_micro_usdc)
ALICE_DEAR: Final = figures(2, 1, 2 * DEAR.duration, 2 * DEAR.cost_micro_usdc, DEAR.cost_micro_usdc)
ALICE: Final = {name: ALICE_FAST[name] + ALICE_DEAR[name] for name in FIGURES}
BOB: Final = figures(1, 0, FAST.duration, FAST.cost_micro_usdc, 0)


async def ledger_sums(database_url: str, account_id: str | None = None) -> dict[str, int]:
    """What the ledger settled, summed by SQL: committed and released."""
    one = "" if account_id is None else "AND account_id = :account "
    rows = await sql(
        database_url,
        "SELECT kind, SUM(amount_micro_usdc) FROM ledger WHERE kind IN ('commit', 'release') "
        f"{one}GROUP BY kind",
        {"account": account_id},
    )
    sums = {kind: int(total) for kind, total in rows}
    return {
        "committed_micro_usdc": sums.get("commit", 0),
        "released_micro_usdc": sums.get("release", 0),
    }


def summed(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {name: sum(int(row[name]) for row in rows) for name in FIGURES}


async def test_usage_by_day_model_and_key_adds_up_to_the_ledger(
    gateway: RunningGateway, keys: dict[str, dict[str, Any]]
) -> None:
    alice, second = keys["alice"], keys["second"]
    url = gateway.settings.database_url
    async with gateway.client(alice["key"]) as client:
        by_day = (await client.get("/v1/usage")).json()
        by_model = (await client.get("/v1/usage", params={"group_by": "model"})).json()
        by_key = (await client.get("/v1/usage", params={"group_by": "key"})).json()
    # The task made three days ago ended today: it counts today.
    assert by_day["data"] == [{"group": today(), **ALICE}]
    assert (by_day["object"], by_day["group_by"], by_day["from"], by_day["to"]) == (
        "usage",
        "day",
        0,
        None,
    )
    assert by_model["data"] == [
        {"group": "seedance-2", **ALICE_DEAR},
        {"group": "seedance-2-fast", **ALICE_FAST},
    ]
    assert sorted(by_key["data"], key=lambda row: row["tasks_success"]) == [
        {"group": second["id"], **ALICE_DEAR},
        {"group": alice["id"], **ALICE_FAST},
    ]
    ledger = await ledger_sums(url, alice["account_id"])
    for report in (by_day, by_model, by_key):
        assert report["total"] == ALICE
        assert summed(report["data"]) == ALICE
        for name, total in ledger.items():
            assert report["total"][name] == total


async def test_usage_counts_what_ended_in_the_period(
    gateway: RunningGateway, keys: dict[str, dict[str, Any]]
) -> None:
    now = int(time.time())
    windows = {
        (now - 60, now + 60): ALICE,
        (0, now + 60): ALICE,
        (now + 60, now + 120): figures(0, 0, 0, 0, 0),
        (0, now - 60): figures(0, 0, 0, 0, 0),
        (now + 60, now - 60): figures(0, 0, 0, 0, 0),
    }
    async with gateway.client(keys["alice"]["key"]) as client:
        for (start, end), expected in windows.items():
            report = (await client.get("/v1/usage", params={"from": start, "to": end})).json()
            assert report["total"] == expected, (start, end)
            assert (report["from"], report["to"]) == (start, end)
            assert len(report["data"]) == (1 if expected["tasks_success"] else 0)


async def test_usage_as_csv_parses_and_sums_to_the_json(
    gateway: RunningGateway, keys: dict[str, dict[str, Any]]
) -> None:
    async with gateway.client(keys["alice"]["key"]) as client:
        for group_by in ("day", "model", "key"):
            params = {"group_by": group_by}
            report = (await client.get("/v1/usage", params=params)).json()
            header, rows = csv_rows(
                await client.get("/v1/usage", params=params, headers={"accept": "text/csv"})
            )
            assert header == [group_by, *FIGURES]
            assert summed(rows) == report["total"]
            assert [row[group_by] for row in rows] == [row["group"] for row in report["data"]]
            by_format = await client.get("/v1/usage", params={**params, "format": "csv"})
            assert csv_rows(by_format) == (header, rows)


BAD_USAGE: Final = [
    ("from=-1", "from", "an integer from 0 to 253402300799"),
    ("to=tomorrow", "to", "an integer from 0 to 253402300799"),
    ("group_by=week", "group_by", "one of day, model, key"),
    ("group_by=account", "group_by", "one of day, model, key"),
    ("account=bob", "account", "unknown query parameter"),
]


@pytest.mark.parametrize(("query", "param", "says"), BAD_USAGE, ids=[q for q, _, _ in BAD_USAGE])
async def test_a_bad_usage_parameter_is_a_400_naming_it(
    gateway: RunningGateway, query: str, param: str, says: str
) -> None:
    key = (await issue_key(gateway, "carol"))["key"]
    async with gateway.client(key) as client:
        body = assert_error(await client.get(f"/v1/usage?{query}"), 400, "bad_request", param)
    assert says in body["message"], body


async def test_the_account_shows_its_balance_reserved_and_available(
    gateway: RunningGateway, keys: dict[str, dict[str, Any]]
) -> None:
    async with gateway.client(keys["second"]["key"]) as client:
        account = (await client.get("/v1/account")).json()
    async with gateway.admin() as admin:
        shown = (await admin.get("/admin/accounts/alice")).json()
    paid = ALICE["committed_micro_usdc"]
    assert account == {
        "object": "account",
        "id": keys["alice"]["account_id"],
        "name": "alice",
        "balance_micro_usdc": 100_000_000 - paid,
        "reserved_micro_usdc": DEAR.cost_micro_usdc,
        "available_micro_usdc": 100_000_000 - paid - DEAR.cost_micro_usdc,
        "balance_usd": shown["balance_usd"],
        "reserved_usd": "1.640000",
        "available_usd": shown["available_usd"],
        "created_at": shown["created_at"],
    }
    for name in ("balance_micro_usdc", "reserved_micro_usdc", "available_micro_usdc"):
        assert account[name] == shown[name]


async def test_the_ledger_pages_newest_first_through_every_entry_of_the_account(
    gateway: RunningGateway, keys: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usage_service, "EXPORT_CHUNK", 4)
    url = gateway.settings.database_url
    alice = keys["alice"]
    kept = await sql(
        url,
        "SELECT id, kind, amount_micro_usdc, task_id FROM ledger WHERE account_id = :a "
        "ORDER BY id DESC",
        {"a": alice["account_id"]},
    )
    async with gateway.client(alice["key"]) as client:
        entries = await all_pages(client, "/v1/account/ledger", {"limit": 3})
        first = (await client.get("/v1/account/ledger", params={"limit": 3})).json()
        commits = await all_pages(client, "/v1/account/ledger", {"kind": "commit", "limit": 2})
        header, rows = csv_rows(
            await client.get("/v1/account/ledger", headers={"accept": "text/csv"})
        )
        bad = await client.get("/v1/account/ledger", params={"after": "task_1"})
        later = await client.get(
            "/v1/account/ledger", params={"created_after": int(time.time()) + 60}
        )
    # An opening credit, a reservation per task and a settlement per task that ended.
    assert len(kept) == 1 + 8 + 7
    assert [(e["id"], e["kind"], e["amount_micro_usdc"], e["task_id"]) for e in entries] == [
        tuple(row) for row in kept
    ]
    assert first["has_more"] is True
    assert first["next_after"] == first["data"][-1]["id"]
    assert entries[-1]["kind"] == "credit"
    assert entries[-1]["note"] == "opening credit"
    assert {e["object"] for e in entries} == {"ledger_entry"}
    assert [e["kind"] for e in commits] == ["commit"] * 5
    assert header == ["id", "created_at", "kind", "amount_micro_usdc", "task_id", "note"]
    assert [int(row["id"]) for row in rows] == [e["id"] for e in entries]
    assert sum(int(row["amount_micro_usdc"]) for row in rows) == sum(
        e["amount_micro_usdc"] for e in entries
    )
    assert_error(bad, 400, "bad_request", "after")
    assert later.json()["data"] == []


async def test_another_accounts_ledger_and_usage_never_show(
    gateway: RunningGateway, keys: dict[str, dict[str, Any]]
) -> None:
    bob = keys["bob"]
    async with gateway.client(bob["key"]) as client:
        entries = await all_pages(client, "/v1/account/ledger")
        report = (await client.get("/v1/usage")).json()
    bobs_tasks = {
        row[0] for row in await sql(gateway.settings.database_url, "SELECT id FROM tasks")
    }
    assert len(entries) == 1 + 1 + 1
    assert {e["task_id"] for e in entries} - {None} <= bobs_tasks
    assert report["total"] == BOB


async def test_admin_usage_covers_every_account_or_one(
    gateway: RunningGateway, keys: dict[str, dict[str, Any]]
) -> None:
    url = gateway.settings.database_url
    async with gateway.admin() as admin:
        everyone = (await admin.get("/admin/usage")).json()
        by_account = (await admin.get("/admin/usage", params={"group_by": "account"})).json()
        bobs = (
            await admin.get("/admin/usage", params={"account": "bob", "group_by": "key"})
        ).json()
        header, rows = csv_rows(
            await admin.get("/admin/usage", params={"group_by": "account", "format": "csv"})
        )
        missing = await admin.get("/admin/usage", params={"account": "nobody"})
    both = {name: ALICE[name] + BOB[name] for name in FIGURES}
    assert everyone["data"] == [{"group": today(), **both}]
    assert by_account["data"] == [{"group": "alice", **ALICE}, {"group": "bob", **BOB}]
    assert bobs["data"] == [{"group": keys["bob"]["id"], **BOB}]
    for name, total in (await ledger_sums(url)).items():
        assert everyone["total"][name] == total
    assert header == ["account", *FIGURES]
    assert summed(rows) == by_account["total"] == both
    assert_error(missing, 404, "not_found")


async def test_cli_usage_prints_csv_json_and_text_from_the_same_service(
    gateway: RunningGateway, keys: dict[str, dict[str, Any]]
) -> None:
    url = gateway.settings.database_url
    async with gateway.client(keys["alice"]["key"]) as client:
        by_model = (await client.get("/v1/usage", params={"group_by": "model"})).json()
    exported = await run_cli(url, "usage", "alice", "--group-by", "model", "--csv")
    assert exported.code == 0, exported.stderr
    reader = csv.reader(io.StringIO(exported.stdout, newline=""))
    header = next(reader)
    rows = [dict(zip(header, row, strict=True)) for row in reader]
    assert header == ["model", *FIGURES]
    assert rows == [
        {"model": row["group"], **{name: str(row[name]) for name in FIGURES}}
        for row in by_model["data"]
    ]
    everyone = await run_cli(
        url, "usage", "--group-by", "account", "--from", today(), "--to", "253402300799", "--json"
    )
    assert everyone.code == 0, everyone.stderr
    report = json.loads(everyone.stdout)
    assert [row["group"] for row in report["data"]] == ["alice", "bob"]
    assert report["from"] == int(datetime.fromisoformat(today()).replace(tzinfo=UTC).timestamp())
    text = await run_cli(url, "usage", "bob")
    assert text.code == 0, text.stderr
    assert text.stdout.splitlines()[-1].split() == [
        "total",
        "1",
        "0",
        str(FAST.duration),
        "0.825000",
        "0.000000",
    ]
    nobody = await run_cli(url, "usage", "nobody")
    assert nobody.code == 1
    assert "no account named 'nobody'" in nobody.stderr
    bad = await run_cli(url, "usage", "--from", "yesterday")
    assert bad.code == 2
    assert "--from" in bad.stderr
