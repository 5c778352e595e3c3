"""Accounts, credits, API keys and the audit, through the admin HTTP API and through the real
``reelgate`` command line, on both databases."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from reelgate.domain.ids import new_id
from reelgate.services.accounts import AccountService
from tests.conftest import ADMIN_TOKEN, RunningGateway, open_database
from tests.integration.cli_runner import CliResult, run_cli, sql
from tests.spec_examples import TEXT_TO_VIDEO as FIRST_EXAMPLE

CREATE: Final = "/v1/videos/generations"
COST: Final = 825_000
ERROR_KEYS: Final = {"error", "message", "type", "code", "param"}
ACCOUNT_KEYS: Final = {
    "id",
    "name",
    "balance_micro_usdc",
    "reserved_micro_usdc",
    "available_micro_usdc",
    "balance_usd",
    "available_usd",
    "created_at",
    "keys",
}
UNKNOWN_KEY_ID: Final = new_id("key")  # well formed, so it is looked up, and never issued
UNKNOWN_TASK_ID: Final = new_id("task")
KEY_KEYS: Final = {
    "id",
    "account_id",
    "prefix",
    "created_at",
    "revoked_at",
    "active",
    "name",
    "limits",
}


def assert_error(answer: httpx.Response, status: int, error: str, param: object = ...) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == ERROR_KEYS, body
    assert body["error"] == error, body
    assert body["message"], body
    if param is not ...:
        assert body["param"] == param, body


async def create_account(gateway: RunningGateway, name: str, credit_usd: str = "10") -> None:
    async with gateway.admin() as admin:
        created = await admin.post("/admin/accounts", json={"name": name, "credit_usd": credit_usd})
    assert created.status_code == 201, created.text


async def issue_key(gateway: RunningGateway, account: str) -> dict[str, Any]:
    async with gateway.admin() as admin:
        issued = await admin.post(f"/admin/accounts/{account}/keys")
    assert issued.status_code == 201, issued.text
    body: dict[str, Any] = issued.json()
    return body


async def show(gateway: RunningGateway, name: str) -> dict[str, Any]:
    async with gateway.admin() as admin:
        shown = await admin.get(f"/admin/accounts/{name}")
    assert shown.status_code == 200, shown.text
    body: dict[str, Any] = shown.json()
    return body


async def create_status(gateway: RunningGateway, key: str) -> int:
    async with gateway.client(key) as client:
        return (await client.post(CREATE, json=FIRST_EXAMPLE)).status_code


# The admin token


ADMIN_ROUTES: Final = [
    ("POST", "/admin/accounts", {"name": "intruder", "credit_usd": "1000"}),
    ("GET", "/admin/accounts/victim", None),
    ("POST", "/admin/accounts/victim/credits", {"usd": "1000"}),
    ("POST", "/admin/accounts/victim/keys", None),
    ("POST", "/admin/keys/{key_id}/revoke", None),
    ("GET", "/admin/audit", None),
    ("GET", f"/admin/tasks/{UNKNOWN_TASK_ID}", None),
]


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="no-token"),
        pytest.param("Bearer rga_not-the-admin-token", id="wrong-token"),
        pytest.param(f"Bearer {ADMIN_TOKEN}x", id="token-with-extra-character"),
        pytest.param(f"Basic {ADMIN_TOKEN}", id="not-bearer"),
        pytest.param("api-key", id="a-customers-api-key"),
    ],
)
async def test_admin_api_is_401_without_the_admin_token_and_changes_nothing(
    gateway: RunningGateway, authorization: str | None
) -> None:
    await create_account(gateway, "victim", "5")
    issued = await issue_key(gateway, "victim")
    if authorization == "api-key":
        authorization = f"Bearer {issued['key']}"
    headers = {"authorization": authorization} if authorization else {}
    async with gateway.client() as client:
        for method, path, body in ADMIN_ROUTES:
            answer = await client.request(
                method, path.format(key_id=issued["id"]), json=body, headers=headers
            )
            assert_error(answer, 401, "unauthorized")
            assert answer.headers["www-authenticate"].lower().startswith("bearer")
    async with gateway.admin() as admin:
        assert (await admin.get("/admin/accounts/intruder")).status_code == 404
    victim = await show(gateway, "victim")
    assert victim["balance_micro_usdc"] == 5_000_000
    assert [(key["id"], key["active"]) for key in victim["keys"]] == [(issued["id"], True)]


async def test_the_admin_api_without_an_authorization_header_says_the_admin_token_is_missing(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as client:
        for method, path, body in ADMIN_ROUTES:
            answer = await client.request(method, path.format(key_id="key_x"), json=body)
            assert_error(answer, 401, "unauthorized")
            message = answer.json()["message"]
            assert message.startswith("missing admin token"), (path, message)


# Accounts


async def test_admin_creates_an_account_with_its_opening_credit(gateway: RunningGateway) -> None:
    async with gateway.admin() as admin:
        created = await admin.post(
            "/admin/accounts", json={"name": "studio", "credit_usd": "12.345678"}
        )
        shown = await admin.get("/admin/accounts/studio")
    assert created.status_code == 201, created.text
    account = created.json()
    assert set(account) == ACCOUNT_KEYS
    assert account["id"].startswith("acct_")
    assert account["name"] == "studio"
    assert account["balance_micro_usdc"] == 12_345_678
    assert account["reserved_micro_usdc"] == 0
    assert account["available_micro_usdc"] == 12_345_678
    assert account["balance_usd"] == account["available_usd"] == "12.345678"
    assert account["keys"] == []
    assert shown.status_code == 200, shown.text
    assert shown.json() == account


async def test_admin_account_created_without_credit_starts_empty(
    gateway: RunningGateway, database_url: str
) -> None:
    async with gateway.admin() as admin:
        created = await admin.post("/admin/accounts", json={"name": "empty"})
    assert created.status_code == 201, created.text
    assert created.json()["balance_micro_usdc"] == 0
    # No zero-amount credit clutters the ledger.
    assert await sql(database_url, "SELECT * FROM ledger") == []


async def test_admin_duplicate_account_is_409_and_does_not_credit_it_again(
    gateway: RunningGateway,
) -> None:
    await create_account(gateway, "studio", "3")
    async with gateway.admin() as admin:
        again = await admin.post("/admin/accounts", json={"name": "studio", "credit_usd": "50"})
    assert_error(again, 409, "conflict")
    assert "studio" in again.json()["message"]
    assert (await show(gateway, "studio"))["balance_micro_usdc"] == 3_000_000


@pytest.mark.parametrize("name", ["", " studio", "stu dio", "-studio", "a" * 201, "名前"])
async def test_admin_invalid_account_name_is_400_naming_name(
    gateway: RunningGateway, name: str
) -> None:
    async with gateway.admin() as admin:
        answer = await admin.post("/admin/accounts", json={"name": name, "credit_usd": "1"})
    assert_error(answer, 400, "bad_request", "name")


BAD_AMOUNTS: Final = [
    pytest.param("1.0000001", id="seven-decimals"),
    pytest.param("-1", id="negative-string"),
    pytest.param(-1, id="negative-integer"),
    pytest.param("abc", id="not-a-number"),
    pytest.param("", id="empty"),
    pytest.param("Infinity", id="infinity"),
    pytest.param(True, id="boolean"),
    pytest.param(None, id="null"),
    pytest.param([1], id="array"),
]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
async def test_admin_bad_opening_credit_is_400_naming_credit_usd_and_creates_nothing(
    gateway: RunningGateway, amount: object
) -> None:
    async with gateway.admin() as admin:
        answer = await admin.post("/admin/accounts", json={"name": "studio", "credit_usd": amount})
        assert_error(answer, 400, "bad_request", "credit_usd")
        assert (await admin.get("/admin/accounts/studio")).status_code == 404


@pytest.mark.parametrize("amount", [*BAD_AMOUNTS, pytest.param("0", id="zero")])
async def test_admin_bad_credit_is_400_naming_usd_and_credits_nothing(
    gateway: RunningGateway, database_url: str, amount: object
) -> None:
    await create_account(gateway, "studio", "2")
    async with gateway.admin() as admin:
        answer = await admin.post("/admin/accounts/studio/credits", json={"usd": amount})
    assert_error(answer, 400, "bad_request", "usd")
    assert (await show(gateway, "studio"))["balance_micro_usdc"] == 2_000_000
    assert len(await sql(database_url, "SELECT * FROM ledger")) == 1


@pytest.mark.parametrize(
    "content",
    [b"{", b'{"usd": "1",}', b'{"usd": ' + b"9" * 5000 + b"}", b'{"usd": "\xff"}'],
    ids=["truncated", "trailing-comma", "number-too-long-to-read", "not-utf-8"],
)
async def test_admin_body_that_cannot_be_read_as_json_is_400_naming_the_body(
    gateway: RunningGateway, database_url: str, content: bytes
) -> None:
    await create_account(gateway, "studio", "2")
    async with gateway.admin() as admin:
        answer = await admin.post(
            "/admin/accounts/studio/credits",
            content=content,
            headers={"content-type": "application/json"},
        )
    assert_error(answer, 400, "bad_request", "body")
    assert answer.json()["type"] == "invalid_request_error"
    assert len(await sql(database_url, "SELECT * FROM ledger")) == 1


@pytest.mark.parametrize("amount", [1.5, None, True], ids=["float", "null", "boolean"])
async def test_admin_amount_of_another_type_is_400_saying_both_accepted_types(
    gateway: RunningGateway, amount: object
) -> None:
    await create_account(gateway, "studio", "2")
    async with gateway.admin() as admin:
        answer = await admin.post("/admin/accounts/studio/credits", json={"usd": amount})
    assert_error(answer, 400, "bad_request", "usd")
    assert "valid string" in answer.json()["message"]
    assert "valid integer" in answer.json()["message"]


async def test_admin_credit_adds_to_the_balance_with_a_ledger_entry_and_its_note(
    gateway: RunningGateway, database_url: str
) -> None:
    await create_account(gateway, "studio", "2")
    async with gateway.admin() as admin:
        credited = await admin.post(
            "/admin/accounts/studio/credits", json={"usd": "0.000001", "note": "smallest top-up"}
        )
        by_integer = await admin.post("/admin/accounts/studio/credits", json={"usd": 3})
    assert credited.status_code == 200, credited.text
    assert credited.json()["balance_micro_usdc"] == 2_000_001
    assert by_integer.status_code == 200, by_integer.text
    assert by_integer.json()["balance_micro_usdc"] == 5_000_001
    assert by_integer.json()["available_micro_usdc"] == 5_000_001
    rows = await sql(database_url, "SELECT kind, amount_micro_usdc, note FROM ledger ORDER BY id")
    assert [(kind, int(amount), note) for kind, amount, note in rows] == [
        ("credit", 2_000_000, "opening credit"),
        ("credit", 1, "smallest top-up"),
        ("credit", 3_000_000, None),
    ]


async def test_admin_credit_keeps_reservations_and_raises_the_available_balance(
    gateway: RunningGateway,
) -> None:
    await create_account(gateway, "studio", "1")
    key = (await issue_key(gateway, "studio"))["key"]
    assert await create_status(gateway, key) == 202
    assert await create_status(gateway, key) == 402
    async with gateway.admin() as admin:
        credited = await admin.post("/admin/accounts/studio/credits", json={"usd": "1"})
    assert credited.status_code == 200, credited.text
    account = credited.json()
    assert account["reserved_micro_usdc"] == COST
    assert account["available_micro_usdc"] == 2_000_000 - COST
    assert await create_status(gateway, key) == 202


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/admin/accounts/nobody", None),
        ("POST", "/admin/accounts/nobody/credits", {"usd": "1"}),
        ("POST", "/admin/accounts/nobody/keys", None),
        ("POST", f"/admin/keys/{UNKNOWN_KEY_ID}/revoke", None),
        ("POST", "/admin/keys/not-a-key-id/revoke", None),
        ("GET", f"/admin/tasks/{UNKNOWN_TASK_ID}", None),
        ("GET", "/admin/tasks/not-a-task-id", None),
        ("GET", "/admin/tasks/task_' OR '1'='1", None),
        ("GET", f"/admin/tasks/task_{'A' * 5000}", None),
    ],
    ids=[
        "show",
        "credit",
        "create-key",
        "revoke-key",
        "revoke-malformed-key-id",
        "task",
        "malformed-task-id",
        "task-id-as-sql",
        "task-id-of-5000-characters",
    ],
)
async def test_admin_unknown_account_or_key_is_404(
    gateway: RunningGateway, database_url: str, method: str, path: str, body: object
) -> None:
    async with gateway.admin() as admin:
        answer = await admin.request(method, path, json=body)
    assert_error(answer, 404, "not_found")
    assert len(answer.json()["message"]) < 200  # an id of any length is quoted cut short
    assert await sql(database_url, "SELECT * FROM accounts") == []


# API keys


async def test_admin_key_is_shown_once_and_works_at_once(gateway: RunningGateway) -> None:
    await create_account(gateway, "studio", "10")
    issued = await issue_key(gateway, "studio")
    assert set(issued) == KEY_KEYS | {"key"}
    assert issued["id"].startswith("key_")
    assert issued["key"].startswith("rg_")
    assert len(issued["key"]) >= 40
    assert issued["prefix"] == issued["key"][: len(issued["prefix"])]
    assert len(issued["prefix"]) < len(issued["key"]) // 2
    assert issued["active"] is True
    assert issued["revoked_at"] is None
    account = await show(gateway, "studio")
    assert issued["account_id"] == account["id"]
    # Shown afterwards: the key's id and prefix, never the secret.
    [listed] = account["keys"]
    assert set(listed) == KEY_KEYS
    assert listed == {name: issued[name] for name in KEY_KEYS}
    async with gateway.admin() as admin:
        everything = (await admin.get("/admin/accounts/studio")).text
    assert issued["key"] not in everything
    assert await create_status(gateway, issued["key"]) == 202


async def test_admin_revoked_key_is_401_from_the_next_request_on(gateway: RunningGateway) -> None:
    await create_account(gateway, "studio", "10")
    issued = await issue_key(gateway, "studio")
    async with gateway.client(issued["key"]) as client:
        # In use (and so remembered by the gateway) before it is revoked.
        created = await client.post(CREATE, json=FIRST_EXAMPLE)
        assert created.status_code == 202, created.text
        assert (await client.get(created.json()["poll_url"])).status_code == 200
        async with gateway.admin() as admin:
            revoked = await admin.post(f"/admin/keys/{issued['id']}/revoke")
        assert revoked.status_code == 200, revoked.text
        refused = await client.post(CREATE, json=FIRST_EXAMPLE)
        polled = await client.get(created.json()["poll_url"])
    assert_error(refused, 401, "unauthorized")
    assert_error(polled, 401, "unauthorized")
    assert set(revoked.json()) == KEY_KEYS
    assert revoked.json()["active"] is False
    assert isinstance(revoked.json()["revoked_at"], int)
    assert (await show(gateway, "studio"))["reserved_micro_usdc"] == COST


async def test_admin_revoking_a_revoked_key_again_keeps_its_first_revocation(
    gateway: RunningGateway,
) -> None:
    await create_account(gateway, "studio", "10")
    issued = await issue_key(gateway, "studio")
    async with gateway.admin() as admin:
        first = await admin.post(f"/admin/keys/{issued['id']}/revoke")
        second = await admin.post(f"/admin/keys/{issued['id']}/revoke")
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert await create_status(gateway, issued["key"]) == 401


async def test_admin_account_holds_many_keys_sharing_its_balance_and_tasks(
    gateway: RunningGateway,
) -> None:
    await create_account(gateway, "studio", "10")
    issued = [await issue_key(gateway, "studio") for _ in range(3)]
    assert len({key["id"] for key in issued}) == len({key["key"] for key in issued}) == 3
    async with gateway.client(issued[0]["key"]) as first:
        created = await first.post(CREATE, json=FIRST_EXAMPLE)
    assert created.status_code == 202, created.text
    for key in issued[1:]:
        async with gateway.client(key["key"]) as other:
            polled = await other.get(created.json()["poll_url"])
            assert polled.status_code == 200, polled.text
            assert (await other.post(CREATE, json=FIRST_EXAMPLE)).status_code == 202
    account = await show(gateway, "studio")
    assert account["reserved_micro_usdc"] == 3 * COST
    assert sorted(key["id"] for key in account["keys"]) == sorted(key["id"] for key in issued)
    async with gateway.admin() as admin:
        revoked = await admin.post(f"/admin/keys/{issued[1]['id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert [await create_status(gateway, key["key"]) for key in issued] == [202, 401, 202]
    states = {key["id"]: key["active"] for key in (await show(gateway, "studio"))["keys"]}
    assert states == {issued[0]["id"]: True, issued[1]["id"]: False, issued[2]["id"]: True}


async def test_a_key_sees_only_its_own_accounts_tasks(gateway: RunningGateway) -> None:
    await create_account(gateway, "studio", "10")
    await create_account(gateway, "rival", "10")
    mine, theirs = (await issue_key(gateway, "studio"))["key"], (await issue_key(gateway, "rival"))
    async with gateway.client(mine) as client:
        created = await client.post(CREATE, json=FIRST_EXAMPLE)
    assert created.status_code == 202, created.text
    async with gateway.client(theirs["key"]) as client:
        assert_error(await client.get(created.json()["poll_url"]), 404, "not_found")
    assert (await show(gateway, "rival"))["reserved_micro_usdc"] == 0


async def _stored_text(database_url: str) -> str:
    """Every row of every table, as text, read through the database itself."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
            assert {"accounts", "api_keys", "ledger", "tasks", "meta"} <= set(tables)
            dumped = []
            for table in tables:
                rows = await conn.execute(sa.text(f'SELECT * FROM "{table}"'))
                dumped += [repr(tuple(row)) for row in rows]
    finally:
        await engine.dispose()
    return "\n".join(dumped)


def _sqlite_files(database_url: str) -> list[Path]:
    """The SQLite database file and its journal files (WAL, shared memory), when there are any."""
    if not database_url.startswith("sqlite"):
        return []
    path = Path(database_url.split(":///", 1)[1])
    return [file for file in path.parent.iterdir() if file.name.startswith(path.name)]


async def test_only_the_hash_of_a_key_is_stored(gateway: RunningGateway, database_url: str) -> None:
    await create_account(gateway, "studio", "10")
    from_api = (await issue_key(gateway, "studio"))["key"]
    from_cli = json.loads(
        (await run_cli(database_url, "keys", "create", "studio", "--json")).stdout
    )
    secrets = [from_api, from_cli["key"]]
    for secret in secrets:
        assert await create_status(gateway, secret) == 202
    stored = await _stored_text(database_url)
    hashes = {row[0] for row in await sql(database_url, "SELECT key_hash FROM api_keys")}
    for secret in secrets:
        assert secret not in stored
        assert secret[3:] not in stored  # nor without its rg_ prefix
        assert hashlib.sha256(secret.encode()).hexdigest() in hashes
    files = _sqlite_files(database_url)
    assert bool(files) == database_url.startswith("sqlite")
    for file in files:
        raw = file.read_bytes()
        for secret in secrets:
            assert secret[3:].encode() not in raw, file


# Audit


async def test_admin_audit_is_ok_on_consistent_books(gateway: RunningGateway) -> None:
    await create_account(gateway, "studio", "10")
    assert await create_status(gateway, (await issue_key(gateway, "studio"))["key"]) == 202
    async with gateway.admin() as admin:
        audited = await admin.get("/admin/audit")
    assert audited.status_code == 200, audited.text
    assert audited.json() == {"ok": True, "violations": []}


async def test_admin_audit_names_a_balance_changed_behind_the_ledgers_back_with_its_figures(
    gateway: RunningGateway, database_url: str
) -> None:
    await create_account(gateway, "studio", "10")
    await sql(database_url, "UPDATE accounts SET balance_micro_usdc = 11000000")
    async with gateway.admin() as admin:
        audited = await admin.get("/admin/audit")
    assert audited.status_code == 200, audited.text
    report = audited.json()
    assert report["ok"] is False
    [violation] = report["violations"]
    assert "'studio'" in violation
    # The figures are integer micro-USDC, as stored, on either database.
    assert "balance 11000000" in violation
    assert "credits 10000000" in violation
    assert "commits 0" in violation


# The command line


def assert_failed(result: CliResult, *words: str) -> None:
    """The command exited non-zero with a message naming ``words`` on stderr, nothing on stdout."""
    assert result.code != 0, result
    assert result.stdout == "", result
    assert result.stderr.strip(), result
    assert "Traceback" not in result.stderr, result
    for word in words:
        assert word in result.stderr, (word, result)


async def test_cli_accounts_create_prints_the_account(database_url: str) -> None:
    created = await run_cli(database_url, "accounts", "create", "studio", "--credit-usd", "25")
    assert created.code == 0, created
    assert created.stderr == ""
    assert re.search(r"account\s+studio \(acct_\w+\)", created.stdout), created.stdout
    assert "25.000000 USD (25000000 micro-USDC)" in created.stdout


async def test_cli_accounts_create_json_is_the_admin_apis_account(
    gateway: RunningGateway, database_url: str
) -> None:
    created = await run_cli(
        database_url, "accounts", "create", "studio", "--credit-usd", "0.5", "--json"
    )
    assert created.code == 0, created
    account = json.loads(created.stdout)
    assert set(account) == ACCOUNT_KEYS
    assert account["name"] == "studio"
    assert account["balance_micro_usdc"] == account["available_micro_usdc"] == 500_000
    assert account["reserved_micro_usdc"] == 0
    assert account["keys"] == []
    assert await show(gateway, "studio") == account


async def test_cli_accounts_credit_adds_to_the_balance(database_url: str) -> None:
    assert (await run_cli(database_url, "accounts", "create", "studio")).code == 0
    text = await run_cli(database_url, "accounts", "credit", "studio", "--usd", "1.25")
    assert text.code == 0, text
    assert "1.250000 USD (1250000 micro-USDC)" in text.stdout
    as_json = await run_cli(
        database_url, "accounts", "credit", "studio", "--usd", "0.75", "--note", "bonus", "--json"
    )
    assert as_json.code == 0, as_json
    assert json.loads(as_json.stdout)["balance_micro_usdc"] == 2_000_000
    rows = await sql(database_url, "SELECT kind, amount_micro_usdc, note FROM ledger ORDER BY id")
    assert [(kind, int(amount), note) for kind, amount, note in rows] == [
        ("credit", 1_250_000, None),
        ("credit", 750_000, "bonus"),
    ]


async def test_cli_accounts_show_lists_balance_reservations_and_keys(
    gateway: RunningGateway, database_url: str
) -> None:
    await create_account(gateway, "studio", "10")
    active = await issue_key(gateway, "studio")
    revoked = await issue_key(gateway, "studio")
    assert await create_status(gateway, active["key"]) == 202
    async with gateway.admin() as admin:
        assert (await admin.post(f"/admin/keys/{revoked['id']}/revoke")).status_code == 200
    text = await run_cli(database_url, "accounts", "show", "studio")
    assert text.code == 0, text
    assert "10.000000 USD (10000000 micro-USDC)" in text.stdout
    assert "reserved  0.825000 USD  available 9.175000 USD" in text.stdout
    assert re.search(rf"{active['id']}\s+{active['prefix']}\.\.\.\s+active", text.stdout)
    assert re.search(rf"{revoked['id']}\s+{revoked['prefix']}\.\.\.\s+revoked", text.stdout)
    as_json = await run_cli(database_url, "accounts", "show", "studio", "--json")
    assert as_json.code == 0, as_json
    assert json.loads(as_json.stdout) == await show(gateway, "studio")
    for secret in (active["key"], revoked["key"]):
        assert secret not in text.stdout + as_json.stdout


async def test_cli_keys_create_prints_a_working_key_once(
    gateway: RunningGateway, database_url: str
) -> None:
    await create_account(gateway, "studio", "10")
    text = await run_cli(database_url, "keys", "create", "studio")
    assert text.code == 0, text
    match = re.search(r"^key\s+(rg_\S+)$", text.stdout, re.MULTILINE)
    assert match, text.stdout
    as_json = await run_cli(database_url, "keys", "create", "studio", "--json")
    assert as_json.code == 0, as_json
    issued = json.loads(as_json.stdout)
    assert set(issued) == KEY_KEYS | {"key"}
    assert issued["key"].startswith("rg_")
    assert issued["key"] != match.group(1)
    for secret in (match.group(1), issued["key"]):
        assert await create_status(gateway, secret) == 202
    assert len((await show(gateway, "studio"))["keys"]) == 2


async def test_cli_keys_revoke_shuts_a_key_out(gateway: RunningGateway, database_url: str) -> None:
    await create_account(gateway, "studio", "10")
    issued = await issue_key(gateway, "studio")
    revoked = await run_cli(database_url, "keys", "revoke", issued["id"])
    assert revoked.code == 0, revoked
    assert issued["id"] in revoked.stdout
    # The key was never used, so nothing of it is remembered: the gateway must refuse it now.
    assert await create_status(gateway, issued["key"]) == 401
    [listed] = (await show(gateway, "studio"))["keys"]
    assert listed["active"] is False


async def test_cli_revoked_key_in_use_is_refused_by_the_running_gateway_within_seconds(
    gateway: RunningGateway, database_url: str
) -> None:
    await create_account(gateway, "studio", "10")
    issued = await issue_key(gateway, "studio")
    async with gateway.client(issued["key"]) as client:
        # In use, and so remembered by the gateway, before another process revokes it.
        created = await client.post(CREATE, json=FIRST_EXAMPLE)
        assert created.status_code == 202, created.text
        assert (await client.get(created.json()["poll_url"])).status_code == 200
        revoked = await run_cli(database_url, "keys", "revoke", issued["id"])
        assert revoked.code == 0, revoked
        # The gateway learns of another process's change from the change feed: allow it a while.
        deadline = time.monotonic() + 5
        answer = await client.get(created.json()["poll_url"])
        while answer.status_code == 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            answer = await client.get(created.json()["poll_url"])
        assert_error(answer, 401, "unauthorized")
        assert_error(await client.post(CREATE, json=FIRST_EXAMPLE), 401, "unauthorized")
    assert (await show(gateway, "studio"))["reserved_micro_usdc"] == COST


async def test_cli_audit_passes_on_consistent_books(
    gateway: RunningGateway, database_url: str
) -> None:
    await create_account(gateway, "studio", "10")
    assert await create_status(gateway, (await issue_key(gateway, "studio"))["key"]) == 202
    text = await run_cli(database_url, "audit")
    assert (text.code, text.stderr) == (0, ""), text
    assert "ledger ok" in text.stdout
    as_json = await run_cli(database_url, "audit", "--json")
    assert as_json.code == 0, as_json
    assert json.loads(as_json.stdout) == {"ok": True, "violations": []}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("accounts", "show", "nobody"), ("nobody",)),
        (("accounts", "show", "nobody", "--json"), ("nobody",)),
        (("accounts", "credit", "nobody", "--usd", "1"), ("nobody",)),
        (("keys", "create", "nobody"), ("nobody",)),
        (("keys", "create", "nobody", "--json"), ("nobody",)),
        (("keys", "revoke", UNKNOWN_KEY_ID), (UNKNOWN_KEY_ID,)),
        (("keys", "revoke", "not-a-key-id"), ("not-a-key-id",)),
        (("task", UNKNOWN_TASK_ID), (UNKNOWN_TASK_ID,)),
        (("task", UNKNOWN_TASK_ID, "--json"), (UNKNOWN_TASK_ID,)),
        (("task", "not-a-task-id"), ("not-a-task-id",)),
    ],
    ids=[
        "show",
        "show-json",
        "credit",
        "create-key",
        "create-key-json",
        "revoke-key",
        "revoke-malformed-key-id",
        "task",
        "task-json",
        "malformed-task-id",
    ],
)
async def test_cli_unknown_account_or_key_or_task_exits_1_with_a_message(
    database_url: str, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    result = await run_cli(database_url, *args)
    assert result.code == 1, result
    assert_failed(result, *words)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("accounts", "create", "studio", "--credit-usd", "abc"), ("credit_usd",)),
        (("accounts", "create", "studio", "--credit-usd", "1.0000001"), ("credit_usd", "6")),
        (("accounts", "create", "studio", "--credit-usd=-5"), ("credit_usd", "negative")),
        (("accounts", "create", "bad name"), ("name",)),
        (("accounts", "credit", "existing", "--usd", "abc"), ("usd",)),
        (("accounts", "credit", "existing", "--usd=-1"), ("usd",)),
        (("accounts", "credit", "existing", "--usd", "0"), ("usd",)),
        (("accounts", "create", "existing"), ("existing", "already exists")),
    ],
    ids=[
        "create-not-a-number",
        "create-seven-decimals",
        "create-negative",
        "create-bad-name",
        "credit-not-a-number",
        "credit-negative",
        "credit-zero",
        "create-duplicate",
    ],
)
async def test_cli_invalid_input_exits_1_naming_it_and_changes_nothing(
    database_url: str, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    db = open_database(database_url)
    try:
        await AccountService(db).create("existing", "1")
    finally:
        await db.dispose()
    result = await run_cli(database_url, *args)
    assert result.code == 1, result
    assert_failed(result, *words)
    rows = await sql(database_url, "SELECT name, balance_micro_usdc FROM accounts")
    assert [(name, int(balance)) for name, balance in rows] == [("existing", 1_000_000)]


async def test_cli_usage_error_exits_non_zero_with_usage_on_stderr(database_url: str) -> None:
    result = await run_cli(database_url, "accounts", "credit", "studio")
    assert_failed(result, "--usd")
    assert result.code == 2


async def test_cli_migrate_reports_an_up_to_date_database(database_url: str) -> None:
    result = await run_cli(database_url, "migrate")
    assert result.code == 0, result
    assert "up to date" in result.stdout
