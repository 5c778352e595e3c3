"""Money inputs are bounded so that no sum the ledger can reach leaves a signed 64-bit integer
(issue 14, "credit overflow"): the security probe's cases through the admin API and the command
line, the maximum balance checked in the UPDATE that credits, the database's own CHECKs, and
settings refused at startup, on both databases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import pytest
import sqlalchemy as sa

from reelgate.domain.ids import new_id
from reelgate.domain.money import (
    MAX_BALANCE_MICRO_USDC,
    MAX_BALANCE_USD,
    MAX_COST_MICRO_USDC,
    MAX_LEDGER_ENTRY_MICRO_USDC,
    MAX_MARGIN_PPM,
    MAX_PRICE_PER_SECOND_MICRO_USDC,
)
from reelgate.domain.pricing import Quote
from reelgate.domain.task import LedgerKind, NewTask
from reelgate.errors import Conflict
from reelgate.services.accounts import AccountService
from reelgate.store.database import Database
from reelgate.store.migrate import upgrade
from reelgate.store.schema import accounts, ledger
from reelgate.store.tasks import TaskStore
from tests.conftest import RunningGateway, open_database
from tests.integration.api_helpers import assert_error
from tests.integration.cli_runner import CliResult, run_cli, sql

# The probe's amounts, in USD: twice the first, or the second once, is past 2**63 micro-USDC.
PROBE_TWICE: Final = 5_000_000_000_000
PROBE_ONCE: Final = 9_300_000_000_000
LIMIT: Final = str(MAX_BALANCE_USD)
QUOTE: Final = Quote("480p_no_video", 77_500, 4, 1_000_000, 310_000)

Books = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]


async def books(database_url: str) -> Books:
    """Every account and ledger row, exactly as stored."""
    return (
        await sql(database_url, "SELECT * FROM accounts ORDER BY id"),
        await sql(database_url, "SELECT * FROM ledger ORDER BY id"),
    )


async def create_account(gateway: RunningGateway, name: str, credit_usd: str) -> None:
    async with gateway.admin() as admin:
        created = await admin.post("/admin/accounts", json={"name": name, "credit_usd": credit_usd})
    assert created.status_code == 201, created.text


def assert_cli_refused(result: CliResult, *words: str) -> None:
    assert result.code == 1, result
    assert result.stdout == "", result
    assert "Traceback" not in result.stderr, result
    for word in words:
        assert word in result.stderr, (word, result)


async def assert_account_unharmed(
    gateway: RunningGateway, database_url: str, name: str, balance_micro_usdc: int
) -> None:
    """The account reads through the admin API and the command line with its integer balance,
    and ``reelgate audit`` finds the books consistent."""
    async with gateway.admin() as admin:
        shown = await admin.get(f"/admin/accounts/{name}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["balance_micro_usdc"] == balance_micro_usdc
    cli = await run_cli(database_url, "accounts", "show", name, "--json")
    assert cli.code == 0, cli
    assert json.loads(cli.stdout)["balance_micro_usdc"] == balance_micro_usdc
    audited = await run_cli(database_url, "audit")
    assert (audited.code, audited.stderr) == (0, ""), audited
    assert audited.stdout.startswith("ledger ok"), audited


# The probe, through the admin API


@pytest.mark.parametrize("usd", [PROBE_TWICE, str(PROBE_TWICE)], ids=["integer", "string"])
async def test_admin_credit_of_5e12_usd_twice_is_400_both_times_and_changes_nothing(
    gateway: RunningGateway, database_url: str, usd: int | str
) -> None:
    await create_account(gateway, "studio", "10")
    before = await books(database_url)
    async with gateway.admin() as admin:
        for _ in range(2):
            answer = await admin.post("/admin/accounts/studio/credits", json={"usd": usd})
            assert LIMIT in assert_error(answer, 400, "bad_request", "usd")["message"]
    assert await books(database_url) == before
    await assert_account_unharmed(gateway, database_url, "studio", 10_000_000)


@pytest.mark.parametrize("usd", [PROBE_ONCE, str(PROBE_ONCE)], ids=["integer", "string"])
async def test_admin_credit_of_9_3e12_usd_is_400_naming_usd_and_the_limit_and_changes_nothing(
    gateway: RunningGateway, database_url: str, usd: int | str
) -> None:
    await create_account(gateway, "studio", "10")
    before = await books(database_url)
    async with gateway.admin() as admin:
        answer = await admin.post("/admin/accounts/studio/credits", json={"usd": usd})
    assert LIMIT in assert_error(answer, 400, "bad_request", "usd")["message"]
    assert await books(database_url) == before
    await assert_account_unharmed(gateway, database_url, "studio", 10_000_000)


@pytest.mark.parametrize(
    "credit_usd",
    [PROBE_ONCE, str(PROBE_ONCE), 10**30, "1" + "0" * 30, MAX_BALANCE_USD + 1],
    ids=["9.3e12", "9.3e12-string", "1e30", "1e30-string", "one-over-the-limit"],
)
async def test_admin_account_with_a_huge_opening_credit_is_400_and_not_created(
    gateway: RunningGateway, database_url: str, credit_usd: int | str
) -> None:
    async with gateway.admin() as admin:
        answer = await admin.post("/admin/accounts", json={"name": "big", "credit_usd": credit_usd})
        assert LIMIT in assert_error(answer, 400, "bad_request", "credit_usd")["message"]
        assert (await admin.get("/admin/accounts/big")).status_code == 404
    assert await books(database_url) == ([], [])
    audited = await run_cli(database_url, "audit")
    assert audited.code == 0, audited


# The probe, through the command line


async def test_cli_credit_of_5e12_usd_twice_exits_1_both_times_and_changes_nothing(
    gateway: RunningGateway, database_url: str
) -> None:
    await create_account(gateway, "studio", "10")
    before = await books(database_url)
    for _ in range(2):
        result = await run_cli(
            database_url, "accounts", "credit", "studio", "--usd", str(PROBE_TWICE)
        )
        assert_cli_refused(result, "usd", LIMIT)
    assert await books(database_url) == before
    await assert_account_unharmed(gateway, database_url, "studio", 10_000_000)


async def test_cli_credit_of_9_3e12_usd_exits_1_naming_usd_and_the_limit(
    gateway: RunningGateway, database_url: str
) -> None:
    await create_account(gateway, "studio", "10")
    before = await books(database_url)
    result = await run_cli(database_url, "accounts", "credit", "studio", "--usd", str(PROBE_ONCE))
    assert_cli_refused(result, "usd", LIMIT)
    assert await books(database_url) == before
    await assert_account_unharmed(gateway, database_url, "studio", 10_000_000)


async def test_cli_account_with_a_huge_opening_credit_exits_1_and_is_not_created(
    database_url: str,
) -> None:
    result = await run_cli(
        database_url, "accounts", "create", "big", "--credit-usd", str(PROBE_ONCE)
    )
    assert_cli_refused(result, "credit_usd", LIMIT)
    assert await books(database_url) == ([], [])
    audited = await run_cli(database_url, "audit")
    assert audited.code == 0, audited


# The maximum balance, checked in the UPDATE that adds the credit


async def test_admin_credit_past_the_maximum_balance_is_409_and_one_up_to_it_is_accepted(
    gateway: RunningGateway, database_url: str
) -> None:
    await create_account(gateway, "studio", "600000000")
    before = await books(database_url)
    async with gateway.admin() as admin:
        over = await admin.post("/admin/accounts/studio/credits", json={"usd": "400000000.000001"})
        # A well-formed amount the account's state refuses: a conflict, naming the field.
        assert LIMIT in assert_error(over, 409, "conflict", "usd")["message"]
        assert over.json()["code"] == "balance_limit"
        assert await books(database_url) == before
        up_to = await admin.post("/admin/accounts/studio/credits", json={"usd": 400_000_000})
    assert up_to.status_code == 200, up_to.text
    assert up_to.json()["balance_micro_usdc"] == MAX_BALANCE_MICRO_USDC
    await assert_account_unharmed(gateway, database_url, "studio", MAX_BALANCE_MICRO_USDC)


async def test_cli_credit_past_the_maximum_balance_exits_1_and_changes_nothing(
    gateway: RunningGateway, database_url: str
) -> None:
    await create_account(gateway, "studio", "1")
    before = await books(database_url)
    result = await run_cli(database_url, "accounts", "credit", "studio", "--usd", LIMIT)
    assert_cli_refused(result, "usd", LIMIT, "studio")
    assert await books(database_url) == before
    await assert_account_unharmed(gateway, database_url, "studio", 1_000_000)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = open_database(database_url)
    try:
        yield database
    finally:
        await database.dispose()


async def test_concurrent_credits_cannot_take_a_balance_past_the_maximum(
    db: Database, database_url: str
) -> None:
    service = AccountService(db)
    await service.create("racer")
    third = str(MAX_BALANCE_USD * 3 // 10)  # three fit, a fourth would pass the limit
    outcomes = await asyncio.gather(
        *(service.credit("racer", third) for _ in range(8)), return_exceptions=True
    )
    refused = [outcome for outcome in outcomes if isinstance(outcome, Conflict)]
    assert len(refused) == 5, outcomes
    assert all(error.param == "usd" for error in refused)
    assert (await service.show("racer")).account.balance_micro_usdc == 3 * int(third) * 10**6
    rows = await sql(database_url, "SELECT kind, amount_micro_usdc FROM ledger")
    assert [(kind, int(amount)) for kind, amount in rows] == [("credit", int(third) * 10**6)] * 3
    assert await service.audit() == []


# The database's own refusals


async def _seed(db: Database) -> None:
    """An account with a credit and one reserved task, made through the real services."""
    service = AccountService(db)
    account = await service.create("studio", "10")
    issued = await service.create_key("studio")
    await TaskStore(db).create(
        NewTask(
            id=new_id("task"),
            account_id=account.id,
            key_id=issued.key.id,
            model="seedance-2-fast",
            request={"prompt": "a fox"},
            channel="kie",
            quote=QUOTE,
            created_at_ms=0,
            first_poll_at_ms=2**62,
            deadline_at_ms=2**62,
        )
    )


async def _everything(database_url: str) -> list[list[tuple[Any, ...]]]:
    return [
        await sql(database_url, f"SELECT * FROM {table} ORDER BY id")
        for table in ("accounts", "ledger", "tasks")
    ]


LEDGER_CREDIT: Final = (
    "INSERT INTO ledger (account_id, task_id, kind, amount_micro_usdc, created_at) "
    "SELECT id, NULL, 'credit', {value}, 0 FROM accounts"
)


@pytest.mark.parametrize(
    ("statement", "limit", "past"),
    [
        pytest.param(
            "UPDATE accounts SET balance_micro_usdc = {value}",
            MAX_BALANCE_MICRO_USDC,
            MAX_BALANCE_MICRO_USDC + 1,
            id="balance",
        ),
        pytest.param(
            LEDGER_CREDIT,
            MAX_LEDGER_ENTRY_MICRO_USDC,
            MAX_LEDGER_ENTRY_MICRO_USDC + 1,
            id="ledger-amount",
        ),
        pytest.param(
            "UPDATE tasks SET price_per_second_micro_usdc = {value}",
            MAX_PRICE_PER_SECOND_MICRO_USDC,
            MAX_PRICE_PER_SECOND_MICRO_USDC + 1,
            id="price",
        ),
        pytest.param("UPDATE tasks SET price_per_second_micro_usdc = {value}", 0, -1, id="price-0"),
        pytest.param(
            "UPDATE tasks SET margin_ppm = {value}", MAX_MARGIN_PPM, MAX_MARGIN_PPM + 1, id="margin"
        ),
        pytest.param("UPDATE tasks SET margin_ppm = {value}", 1, 0, id="margin-1-ppm"),
        pytest.param(
            "UPDATE tasks SET cost_micro_usdc = {value}",
            MAX_COST_MICRO_USDC,
            MAX_COST_MICRO_USDC + 1,
            id="cost",
        ),
        pytest.param("UPDATE tasks SET cost_micro_usdc = {value}", 0, -1, id="cost-0"),
    ],
)
async def test_database_accepts_an_amount_at_its_limit_and_refuses_one_past_it(
    db: Database, database_url: str, statement: str, limit: int, past: int
) -> None:
    await _seed(db)
    await sql(database_url, statement.format(value=limit))
    before = await _everything(database_url)
    with pytest.raises(sa.exc.IntegrityError):
        await sql(database_url, statement.format(value=past))
    assert await _everything(database_url) == before


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database: only SQLite stores a value of another type in any column."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'reelgate.db'}"
    upgrade(url)
    return url


@pytest.mark.parametrize(
    "statement",
    [
        # The probe's failure: an integer sum past 2**63, which SQLite turns into a float.
        "UPDATE accounts SET balance_micro_usdc = balance_micro_usdc + 9223372036854775807",
        "UPDATE accounts SET balance_micro_usdc = 10000000.5",
        "UPDATE accounts SET balance_micro_usdc = balance_micro_usdc + 0.5",
        "UPDATE accounts SET balance_micro_usdc = 'ten'",
        "UPDATE accounts SET reserved_micro_usdc = 0.5",
        LEDGER_CREDIT.format(value=2.5),
        LEDGER_CREDIT.format(value="'2'||'x'"),
        "UPDATE tasks SET price_per_second_micro_usdc = 77500.5",
        "UPDATE tasks SET margin_ppm = 1000000.5",
        "UPDATE tasks SET cost_micro_usdc = cost_micro_usdc + 0.5",
    ],
    ids=[
        "balance-overflow",
        "balance-real",
        "balance-plus-a-real",
        "balance-text",
        "reserved-real",
        "ledger-amount-real",
        "ledger-amount-text",
        "price-real",
        "margin-real",
        "cost-real",
    ],
)
async def test_sqlite_refuses_an_amount_not_stored_as_an_integer(
    sqlite_url: str, statement: str
) -> None:
    db = open_database(sqlite_url)
    try:
        await _seed(db)
    finally:
        await db.dispose()
    before = await _everything(sqlite_url)
    with pytest.raises(sa.exc.IntegrityError, match="CHECK constraint failed"):
        await sql(sqlite_url, statement)
    assert await _everything(sqlite_url) == before


async def test_a_write_the_database_refuses_leaves_nothing_of_its_transaction(
    db: Database, database_url: str
) -> None:
    await _seed(db)
    before = await _everything(database_url)
    [(account_id,)] = await sql(database_url, "SELECT id FROM accounts")

    async def credit_past_the_limit() -> None:
        async with db.write() as conn:
            await conn.execute(
                ledger.insert().values(
                    account_id=account_id,
                    task_id=None,
                    kind=LedgerKind.CREDIT,
                    amount_micro_usdc=MAX_BALANCE_MICRO_USDC,
                    created_at=0,
                )
            )
            # Refused by the balance's bound, after the ledger entry was written.
            await conn.execute(
                accounts.update().values(
                    balance_micro_usdc=accounts.c.balance_micro_usdc + MAX_BALANCE_MICRO_USDC
                )
            )

    with pytest.raises(sa.exc.IntegrityError):
        await credit_past_the_limit()
    assert await _everything(database_url) == before


# Settings


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        (
            "REELGATE_PRICES",
            json.dumps({"seedance-2": {"720p_no_video": 10**13}}),
            ("prices.seedance-2.720p_no_video", str(MAX_PRICE_PER_SECOND_MICRO_USDC)),
        ),
        ("REELGATE_CHANNEL_MARGINS", '{"kie": "5000000000000"}', ("channel_margins.kie", "100")),
    ],
    ids=["price", "margin"],
)
async def test_cli_refuses_to_start_with_an_absurd_price_or_margin_naming_it(
    database_url: str, setting: str, value: str, words: tuple[str, ...]
) -> None:
    result = await run_cli(database_url, "migrate", settings={setting: value})
    assert result.code == 2, result
    assert "Traceback" not in result.stderr, result
    for word in ("invalid REELGATE_* setting", *words):
        assert word in result.stderr, (word, result)
