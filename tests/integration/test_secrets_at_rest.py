"""The secrets the database keeps are sealed under a key it never holds: where the key comes
from, what happens with the wrong one, and how a database from before is sealed."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import sys
import time
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from standardwebhooks import Webhook

from reelgate.domain import links
from reelgate.domain.ids import new_id
from reelgate.domain.secret_key import SecretKey
from reelgate.services.accounts import hash_secret
from reelgate.store.sealing import Sealer
from tests.conftest import TEST_SECRET_KEY, GatewayFactory, RunningGateway, free_port
from tests.integration.cli_runner import run_cli, sql
from tests.integration.engine_helpers import FAST_ENGINE, TEXT, audit_passes, create, until_final
from tests.sandbox_support import eventually, receiver

OTHER_KEY: Final = "0f" * 32
SEALED_UNDER_ANOTHER_KEY: Final = "is not the secret key this database's secrets are sealed under"

# Secrets as a reelgate from before sealing kept them: in plaintext.
LEGACY_SECRET: Final = "whsec_" + base64.b64encode(b"the secret from before, 32 bytes").decode()
LEGACY_PREVIOUS: Final = "whsec_" + base64.b64encode(b"the one before that, 32 bytes..").decode()
LEGACY_MEDIA_KEY: Final = "6c" * 32
LEGACY_API_KEY: Final = "rg_legacy-key-kept-by-an-older-reelgate"
WEBHOOKS: Final[dict[str, Any]] = {
    **FAST_ENGINE,
    "webhook_retry_scale": 0.01,
    "allowed_networks": ["127.0.0.0/8"],
}


def _sealer() -> Sealer:
    return Sealer(SecretKey.parse(TEST_SECRET_KEY))


# The key file


RACER: Final = """
import sys, time
from pathlib import Path
from reelgate.config import Settings
from reelgate.services.secret_key import ensure_secret_key, load_secret_key
settings = Settings(secret_key_file=Path(sys.argv[1]))
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
made = ensure_secret_key(settings)
print("made" if made else "found", load_secret_key(settings).fingerprint())
"""


async def test_processes_starting_together_make_one_key_file_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys" / "reelgate.key"
    path.parent.mkdir()
    start_at = str(time.time() + 3)  # every racer has imported reelgate by then
    racers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", RACER, str(path), start_at, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(6)
    ]
    said = [(await racer.communicate())[0].decode().split() for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    assert sorted(verdict for verdict, _ in said) == ["found"] * 5 + ["made"]
    assert len({fingerprint for _, fingerprint in said}) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SecretKey.parse(path.read_text()).fingerprint() == said[0][1]
    assert [p.name for p in path.parent.iterdir()] == ["reelgate.key"], "no temporary file left"


async def test_a_command_without_a_key_stops_saying_where_it_looked_and_makes_none(
    database_url: str, tmp_path: Path
) -> None:
    result = await run_cli(
        database_url, "accounts", "show", "nobody", cwd=tmp_path,
        settings={"REELGATE_SECRET_KEY": None},
    )  # fmt: skip
    assert result.code == 1, result
    assert f"no secret key: {tmp_path / 'reelgate.key'} does not exist" in result.stderr
    assert "reelgate serve" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "reelgate.key").exists(), "only serve makes a key"


# The wrong key


@pytest.mark.parametrize("source", ["variable", "file"])
async def test_another_key_is_refused_at_start_naming_where_it_came_from_and_changes_nothing(
    gateway: RunningGateway, api_key: str, database_url: str, tmp_path: Path, source: str
) -> None:
    before = await sql(database_url, "SELECT * FROM accounts ORDER BY id")
    meta_before = await sql(database_url, "SELECT key, value FROM meta ORDER BY key")
    key_file = tmp_path / "other.key"
    key_file.write_text(OTHER_KEY)
    key_file.chmod(0o600)
    settings: dict[str, str | None] = (
        {"REELGATE_SECRET_KEY": OTHER_KEY}
        if source == "variable"
        else {"REELGATE_SECRET_KEY": None, "REELGATE_SECRET_KEY_FILE": str(key_file)}
    )
    named = "REELGATE_SECRET_KEY" if source == "variable" else f"file {key_file}"
    for args in (("serve", "--port", str(free_port())), ("accounts", "show", "alice")):
        result = await run_cli(database_url, *args, settings=settings)
        assert result.code == 1, result
        assert f"{named} {SEALED_UNDER_ANOTHER_KEY}" in result.stderr, result
        assert "Traceback" not in result.stderr
    assert await sql(database_url, "SELECT * FROM accounts ORDER BY id") == before
    assert await sql(database_url, "SELECT key, value FROM meta ORDER BY key") == meta_before


# uvicorn ends a start that failed with SystemExit, raised in the test server's thread.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_a_gateway_given_another_key_does_not_start(
    gateway: RunningGateway,
    api_key: str,
    start_gateway: GatewayFactory,
    capfd: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(RuntimeError, match="did not start"):
        start_gateway(secret_key=OTHER_KEY)
    assert (
        f"SecretKeyError: REELGATE_SECRET_KEY {SEALED_UNDER_ANOTHER_KEY}" in capfd.readouterr().err
    )
    async with gateway.client(api_key) as client:
        assert (await client.get("/v1/webhooks/secret")).status_code == 200


@pytest.mark.parametrize("source", ["variable", "file"])
async def test_a_malformed_key_stops_the_start_saying_what_a_key_is_without_repeating_it(
    database_url: str, tmp_path: Path, source: str
) -> None:
    malformed = "correct horse battery staple, not 64 hex digits"
    key_file = tmp_path / "malformed.key"
    key_file.write_text(malformed)
    settings: dict[str, str | None] = (
        {"REELGATE_SECRET_KEY": malformed}
        if source == "variable"
        else {"REELGATE_SECRET_KEY": None, "REELGATE_SECRET_KEY_FILE": str(key_file)}
    )
    result = await run_cli(database_url, "accounts", "show", "nobody", settings=settings)
    assert result.code == 1, result
    assert "does not hold a valid secret key: it must be 64 hexadecimal digits" in result.stderr
    assert "battery" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


async def test_a_sealed_secret_moved_to_another_account_does_not_open_nor_sign(
    gateway: RunningGateway, database_url: str
) -> None:
    first = await gateway.account_with_key("first")
    second = await gateway.account_with_key("second")
    # Someone who can write to the database gives the second account the first one's secret.
    await sql(
        database_url,
        "UPDATE accounts SET webhook_secret = "
        "(SELECT webhook_secret FROM accounts WHERE name = 'first') WHERE name = 'second'",
    )
    async with gateway.client(first) as one, gateway.client(second) as other:
        kept = await one.get("/v1/webhooks/secret")
        moved = await other.get("/v1/webhooks/secret")
    assert kept.status_code == 200
    assert moved.status_code == 503
    assert moved.json()["error"] == "internal_error"
    assert kept.json()["secret"] not in moved.text


async def test_after_losing_the_key_reset_starts_over_with_new_secrets_and_keeps_the_money(
    gateway: RunningGateway, api_key: str, database_url: str, start_gateway: GatewayFactory
) -> None:
    async with gateway.client(api_key) as client:
        lost = (await client.get("/v1/webhooks/secret")).json()["secret"]
    books = "SELECT name, balance_micro_usdc, reserved_micro_usdc FROM accounts"
    before = await sql(database_url, books)
    other = {"REELGATE_SECRET_KEY": OTHER_KEY}
    unconfirmed = await run_cli(database_url, "secret-key", "reset", settings=other)
    assert unconfirmed.code == 2, unconfirmed
    assert "--yes" in unconfirmed.stderr
    same = await run_cli(database_url, "secret-key", "reset", "--yes")
    assert same.code == 1, same
    assert "already the key this database's secrets are sealed under" in same.stderr
    reset = await run_cli(database_url, "secret-key", "reset", "--yes", settings=other)
    assert reset.code == 0, reset
    assert "1 accounts have new webhook secrets" in reset.stdout
    assert (await run_cli(database_url, "accounts", "show", "alice", settings=other)).code == 0
    restarted = start_gateway(secret_key=OTHER_KEY)
    async with restarted.client(api_key) as client:
        fresh = await client.get("/v1/webhooks/secret")
    assert fresh.status_code == 200
    assert fresh.json()["secret"] != lost
    assert await sql(database_url, books) == before
    await audit_passes(restarted)


async def test_reset_with_neither_key_nor_file_makes_a_new_key_file(
    gateway: RunningGateway, api_key: str, database_url: str, tmp_path: Path
) -> None:
    reset = await run_cli(
        database_url, "secret-key", "reset", "--yes", cwd=tmp_path,
        settings={"REELGATE_SECRET_KEY": None},
    )  # fmt: skip
    assert reset.code == 0, reset
    key_file = tmp_path / "reelgate.key"
    assert f"secret key generated in {key_file}" in reset.stdout
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    shown = await run_cli(
        database_url, "accounts", "show", "alice", cwd=tmp_path,
        settings={"REELGATE_SECRET_KEY": None},
    )  # fmt: skip
    assert shown.code == 0, shown


# A database from before


async def _legacy_rows(database_url: str) -> str:
    """An account with a rotated webhook secret, its API key and credit, and the media signing
    key, all as a reelgate from before sealing left them; the account's id."""
    account_id, now = new_id("acct"), int(time.time())
    statements = (
        "INSERT INTO accounts (id, name, balance_micro_usdc, reserved_micro_usdc, created_at, "
        "webhook_secret, previous_webhook_secret, webhook_secret_rotated_at) "
        "VALUES (:account, 'legacy', 10000000, 0, :now, :secret, :previous, :now)",
        "INSERT INTO api_keys (id, account_id, key_hash, prefix, created_at) "
        "VALUES (:key, :account, :hash, 'rg_legacy', :now)",
        "INSERT INTO ledger (account_id, task_id, kind, amount_micro_usdc, created_at, note) "
        "VALUES (:account, NULL, 'credit', 10000000, :now, 'opening credit')",
        "INSERT INTO meta (key, value) VALUES ('media_signing_key', :media)",
    )
    params = {
        "account": account_id,
        "key": new_id("key"),
        "hash": hash_secret(LEGACY_API_KEY),
        "now": now,
        "secret": LEGACY_SECRET,
        "previous": LEGACY_PREVIOUS,
        "media": LEGACY_MEDIA_KEY,
    }
    for statement in statements:
        await sql(database_url, statement, params)
    return account_id


def _database_files(directory: Path) -> bytes:
    """The bytes of the SQLite database and its journal files, as a copy of them would hold."""
    return b"".join(path.read_bytes() for path in directory.glob("reelgate.db*"))


async def _stored_secrets(database_url: str) -> list[str]:
    rows = await sql(
        database_url,
        "SELECT webhook_secret FROM accounts UNION ALL SELECT previous_webhook_secret "
        "FROM accounts UNION ALL SELECT value FROM meta WHERE key = 'media_signing_key'",
    )
    return [value for (value,) in rows]


@pytest.mark.usefixtures("quick_sandbox")
async def test_plaintext_from_before_is_sealed_at_the_first_start_and_keeps_signing(
    start_gateway: GatewayFactory, database_url: str, tmp_path: Path
) -> None:
    await _legacy_rows(database_url)
    gateway = start_gateway(**WEBHOOKS)
    stored = await _stored_secrets(database_url)
    assert len(stored) == 3
    assert all(value.startswith("enc1:") for value in stored), stored
    if database_url.startswith("sqlite"):
        # Nothing of the plaintext is left anywhere in the files, free space included.
        files = _database_files(tmp_path)
        for plaintext in (LEGACY_SECRET, LEGACY_PREVIOUS, LEGACY_MEDIA_KEY):
            assert plaintext.removeprefix("whsec_").encode() not in files, plaintext
    with receiver() as hook:
        async with gateway.client(LEGACY_API_KEY) as client:
            read = (await client.get("/v1/webhooks/secret")).json()["secret"]
            task = await create(client, {**TEXT, "callBackUrl": hook.url})
            final = (await until_final(client, task))[-1]
            await eventually(hook.count(1))
    assert read == LEGACY_SECRET
    delivery = hook.deliveries[0]
    for secret in (LEGACY_SECRET, LEGACY_PREVIOUS):
        assert Webhook(secret).verify(delivery.body, delivery.headers)["task_id"] == task
    # A link signed before the upgrade, with the key then kept in plaintext, still works.
    expires = int(parse_qs(urlsplit(final["result"]["data"][0]["url"]).query)["expires"][0])
    signature = links.signature(LEGACY_MEDIA_KEY.encode(), task, 0, expires)
    async with gateway.client() as anonymous:
        video = await anonymous.get(
            f"/v1/tasks/{task}/content/0", params={"expires": expires, "signature": signature}
        )
    assert video.status_code == 200
    await audit_passes(gateway)


async def test_processes_starting_together_on_a_database_from_before_seal_each_secret_once(
    database_url: str,
) -> None:
    account_id = await _legacy_rows(database_url)
    shown = await asyncio.gather(
        *(run_cli(database_url, "accounts", "show", "legacy", "--json") for _ in range(3))
    )
    assert [result.code for result in shown] == [0, 0, 0], shown
    assert all(json.loads(result.stdout)["name"] == "legacy" for result in shown)
    [(current, previous)] = await sql(
        database_url, "SELECT webhook_secret, previous_webhook_secret FROM accounts"
    )
    [[media]] = await sql(database_url, "SELECT value FROM meta WHERE key = 'media_signing_key'")
    sealer = _sealer()
    assert sealer.open(current, f"accounts/{account_id}") == LEGACY_SECRET
    assert sealer.open(previous, f"accounts/{account_id}") == LEGACY_PREVIOUS
    assert sealer.open(media, "meta/media_signing_key") == LEGACY_MEDIA_KEY


@pytest.mark.usefixtures("quick_sandbox")
async def test_an_explicit_media_signing_key_still_signs_the_links(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(media_signing_key="an operator's own link key", **FAST_ENGINE)
    key = await gateway.account_with_key("explicit", credit_usd="10")
    async with gateway.client(key) as client:
        final = (await until_final(client, await create(client, TEXT)))[-1]
    link = final["result"]["data"][0]["url"]
    query = {name: values[0] for name, values in parse_qs(urlsplit(link).query).items()}
    expected = links.signature(
        b"an operator's own link key", final["task_id"], 0, int(query["expires"])
    )
    assert query["signature"] == expected
    async with httpx.AsyncClient(timeout=30) as anyone:
        assert (await anyone.get(link)).status_code == 200
