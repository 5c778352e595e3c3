"""Per-key limits: models, expiry, tasks in flight, budgets and rates, on both databases (rates
also through the real Redis on 127.0.0.1:6379)."""

from __future__ import annotations

import asyncio
import datetime
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from reelgate.config import Settings
from reelgate.domain.pricing import PriceBook
from reelgate.errors import KeyBudgetExceeded
from reelgate.services.accounts import AccountService
from reelgate.services.channels import Channels
from reelgate.services.metrics import Metrics
from reelgate.services.tasks import TaskService
from reelgate.store.database import Database
from reelgate.upstream.wiring import single_channel
from tests.conftest import REQUIRE_SERVICES, GatewayFactory, RunningGateway, open_database
from tests.doubles import AcceptingProvider, RefusingProvider
from tests.integration.api_helpers import (
    CREATE_PATHS,
    VALID_REQUEST,
    assert_error,
    reserved_micro_usdc,
)

CREATE = CREATE_PATHS[0]
REDIS_URL = os.environ.get("REELGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")
# seedance-2-fast, 480p, 4 s: 0.31 USD.
CHEAP = {**VALID_REQUEST, "resolution": "480p", "duration": 4}
CHEAP_MICRO = 310_000


async def _task_service(
    db: Database, settings: Settings, clock: Callable[[], float]
) -> TaskService:
    """The create service alone, on one channel whose upstream accepts everything, at ``clock``."""
    upstream = single_channel(settings, AcceptingProvider())
    channels = Channels(db, upstream.channels, upstream.providers, Metrics())
    await channels.start()
    return TaskService(db, settings, PriceBook(), channels, lambda _channel, _id: None, clock)


async def limited_key(
    gateway: RunningGateway, account: str, credit_usd: str = "100", **limits: Any
) -> dict[str, Any]:
    """A new account with one key created through POST /admin/keys with ``limits``."""
    async with gateway.admin() as admin:
        created = await admin.post(
            "/admin/accounts", json={"name": account, "credit_usd": credit_usd}
        )
        assert created.status_code == 201, created.text
        issued = await admin.post("/admin/keys", json={"account": account, **limits})
        assert issued.status_code == 201, issued.text
        key: dict[str, Any] = issued.json()
        return key


@pytest.fixture
async def redis_url() -> str:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis is required under CI: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    finally:
        await client.aclose()
    return REDIS_URL


async def test_a_key_may_use_only_the_models_it_names(gateway: RunningGateway) -> None:
    key = (await limited_key(gateway, "narrow", models=["seedance-2-fast"]))["key"]
    async with gateway.client(key) as client:
        other = await client.post(CREATE, json={**VALID_REQUEST, "model": "seedance-2"})
        allowed = await client.post(CREATE, json=VALID_REQUEST)
    body = assert_error(other, 403, "forbidden", "model")
    assert body["code"] == "model_not_allowed"
    assert allowed.status_code == 202, allowed.text


async def test_an_expired_key_is_refused_401_key_expired_and_can_be_extended(
    gateway: RunningGateway,
) -> None:
    issued = await limited_key(gateway, "brief", expires_in="1h")
    async with gateway.client(issued["key"]) as client:
        task = await client.post(CREATE, json=VALID_REQUEST)
        assert task.status_code == 202, task.text
        async with gateway.admin() as admin:
            changed = await admin.patch(f"/admin/keys/{issued['id']}", json={"expires_at": 1})
            assert changed.status_code == 200, changed.text
        for refused in (
            await client.post(CREATE, json=VALID_REQUEST),
            await client.get(task.json()["poll_url"]),
        ):
            assert assert_error(refused, 401, "unauthorized")["code"] == "key_expired"
        async with gateway.admin() as admin:
            extended = await admin.patch(f"/admin/keys/{issued['id']}", json={"expires_at": None})
            assert extended.status_code == 200, extended.text
        assert (await client.get(task.json()["poll_url"])).status_code == 200


async def test_max_in_flight_lets_exactly_that_many_of_50_concurrent_creates_through(
    gateway: RunningGateway,
) -> None:
    key = (await limited_key(gateway, "bounded", max_in_flight=7))["key"]
    async with gateway.client(key) as client:
        answers = await asyncio.gather(*(client.post(CREATE, json=CHEAP) for _ in range(50)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [202] * 7 + [429] * 43, statuses
    refused = next(a for a in answers if a.status_code == 429)
    assert assert_error(refused, 429, "rate_limited")["code"] == "concurrency_limit"
    assert int(refused.headers["retry-after"]) >= 1
    # Nothing was charged for the refused ones.
    assert await reserved_micro_usdc(gateway, "bounded") == 7 * CHEAP_MICRO


async def test_a_key_budget_refuses_the_create_that_would_cross_it_with_402(
    gateway: RunningGateway,
) -> None:
    key = (await limited_key(gateway, "thrifty", budget_usd="1/day"))["key"]
    async with gateway.client(key) as client:
        made = [await client.post(CREATE, json=CHEAP) for _ in range(3)]
        over = await client.post(CREATE, json=CHEAP)
    assert [m.status_code for m in made] == [202, 202, 202]
    body = assert_error(over, 402, "key_budget_exceeded")
    assert body["code"] == "key_budget_exceeded"
    assert await reserved_micro_usdc(gateway, "thrifty") == 3 * CHEAP_MICRO


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = open_database(database_url)
    yield database
    await database.dispose()


def _at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC).timestamp()


@pytest.mark.parametrize(
    ("period", "later", "allowed_later"),
    [
        ("day", "2026-03-31T23:59:59", False),
        ("day", "2026-04-01T00:00:00", True),
        ("month", "2026-04-30T23:00:00", True),
        ("month", "2026-03-02T00:00:00", False),
        ("total", "2027-01-01T00:00:00", False),
    ],
)
async def test_budgets_count_the_spending_of_their_utc_period(
    db: Database, period: str, later: str, allowed_later: bool
) -> None:
    """Two tasks fill a 0.62 USD budget on 31 March; a third is allowed only in a new period."""
    now = [_at("2026-03-31T10:00:00")]
    settings = Settings(database_url="sqlite://", secret_key="7e57" * 16)
    service = await _task_service(db, settings, lambda: now[0])
    accounts = AccountService(db)
    await accounts.create("periodic", "100")
    issued = await accounts.create_key("periodic", {"budget_usd": f"0.62/{period}"})
    for _ in range(2):
        await service.create(issued.key, CHEAP)
    with pytest.raises(KeyBudgetExceeded):
        await service.create(issued.key, CHEAP)
    now[0] = _at(later)
    if allowed_later:
        await service.create(issued.key, CHEAP)
    else:
        with pytest.raises(KeyBudgetExceeded):
            await service.create(issued.key, CHEAP)


async def test_a_rate_refuses_with_429_and_the_ratelimit_headers_counting_creates_and_reads_apart(
    gateway: RunningGateway,
) -> None:
    key = (await limited_key(gateway, "paced", rate="2/min"))["key"]
    async with gateway.client(key) as client:
        made = [await client.post(CREATE, json=CHEAP) for _ in range(2)]
        over = await client.post(CREATE, json=CHEAP)
        reads = [await client.get(made[0].json()["poll_url"]) for _ in range(3)]
    assert [m.status_code for m in made] == [202, 202]
    assert assert_error(over, 429, "rate_limited")["code"] == "rate_limited"
    assert int(over.headers["retry-after"]) >= 1
    assert over.headers["ratelimit-policy"] == '"creates";q=2;w=60'
    assert over.headers["ratelimit"].startswith('"creates";r=0;t=')
    assert [r.status_code for r in reads] == [200, 200, 429]
    assert reads[2].headers["ratelimit-policy"] == '"reads";q=2;w=60'


async def test_two_gateways_share_one_keys_rate_through_redis(
    start_gateway: GatewayFactory, redis_url: str
) -> None:
    one = start_gateway(redis_url=redis_url)
    two = start_gateway(redis_url=redis_url)
    key = (await limited_key(one, f"shared-{uuid.uuid4().hex[:8]}", rate="3/min"))["key"]
    answers = []
    for gateway in (one, two, one, two):
        async with gateway.client(key) as client:
            answers.append(await client.post(CREATE, json=CHEAP))
    assert [a.status_code for a in answers] == [202, 202, 202, 429]


async def test_without_redis_each_gateway_counts_the_rate_in_its_own_memory(
    start_gateway: GatewayFactory,
) -> None:
    one, two = start_gateway(), start_gateway()
    key = (await limited_key(one, "apart", rate="1/min"))["key"]
    answers = []
    for gateway in (one, two, one):
        async with gateway.client(key) as client:
            answers.append(await client.post(CREATE, json=CHEAP))
    assert [a.status_code for a in answers] == [202, 202, 429]


async def test_an_upstream_refusal_is_stored_as_the_idempotent_answer(
    start_gateway: GatewayFactory,
) -> None:
    from reelgate.errors import UpstreamError

    provider = RefusingProvider(UpstreamError("the video provider refused the task"))
    gateway = start_gateway(provider=provider)
    key = (await limited_key(gateway, "refused"))["key"]
    async with gateway.client(key) as client:
        first = await client.post(CREATE, json=CHEAP, headers={"idempotency-key": "k"})
        again = await client.post(CREATE, json=CHEAP, headers={"idempotency-key": "k"})
    assert_error(first, 502, "upstream_error")
    assert again.status_code == 502
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert provider.submissions == 1


async def test_cli_creates_updates_and_lists_keys_with_limits(database_url: str) -> None:
    from tests.integration.cli_runner import run_cli

    assert (await run_cli(database_url, "accounts", "create", "cli-limits")).code == 0
    created = await run_cli(
        database_url,
        *("keys", "create", "cli-limits", "--rate", "5/s", "--burst", "10"),
        *("--max-in-flight", "20", "--models", "seedance-2-fast,seedance-2"),
        *("--budget-usd", "50/day", "--expires-in", "30d", "--name", "app", "--json"),
    )
    assert created.code == 0, created.stderr
    issued = orjson.loads(created.stdout)
    assert issued["name"] == "app"
    limits = issued["limits"]
    assert (limits["rate"], limits["burst"], limits["max_in_flight"]) == ("5/s", 10, 20)
    assert limits["models"] == ["seedance-2-fast", "seedance-2"]
    assert (limits["budget_usd"], limits["budget_micro_usdc"]) == ("50/day", 50_000_000)
    assert limits["expires_at"] > issued["created_at"]
    updated = await run_cli(
        database_url, "keys", "update", issued["id"], "--rate", "none", "--models", "none", "--json"
    )
    assert updated.code == 0, updated.stderr
    assert orjson.loads(updated.stdout)["limits"]["rate"] is None
    listed = await run_cli(database_url, "keys", "list", "cli-limits", "--json")
    [shown] = orjson.loads(listed.stdout)["data"]
    assert shown["limits"] == {**limits, "rate": None, "burst": None, "models": None}
    wrong = await run_cli(database_url, "keys", "update", issued["id"], "--budget-usd", "5/week")
    assert wrong.code == 1
    assert "budget_usd must be an amount per day, month or total" in wrong.stderr


async def test_idempotency_keys_are_pruned_once_their_time_is_up(db: Database) -> None:
    from reelgate.domain.idempotency import StoredAnswer
    from reelgate.services.tasks import Once

    now = [_at("2026-03-31T10:00:00")]
    settings = Settings(database_url="sqlite://", secret_key="7e57" * 16, idempotency_ttl_s=3600)
    service = await _task_service(db, settings, lambda: now[0])
    accounts = AccountService(db)
    await accounts.create("pruned", "100")
    issued = await accounts.create_key("pruned")
    once = Once(
        "k",
        "fingerprint",
        lambda record: StoredAnswer(202, record.id.encode(), None),
        lambda exc: StoredAnswer(502, b"", None),
    )
    first = await service.create(issued.key, CHEAP, once=once)
    assert await service.create(issued.key, CHEAP, once=once) == StoredAnswer(
        202, first.id.encode() if not isinstance(first, StoredAnswer) else b"", None
    )
    now[0] += 3599
    assert await service.prune_idempotency_keys() == 0
    now[0] += 1
    assert await service.prune_idempotency_keys() == 1
