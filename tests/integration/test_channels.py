"""Channels: two upstream accounts (a KIE sandbox and a ModelArk sandbox on loopback), routing,
failover that never creates twice, circuits, margins per channel."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest

from reelgate.domain.links import callback_token
from reelgate.domain.secret_key import KeyUse, SecretKey
from reelgate.upstream.sandbox import SandboxSettings, create_sandbox_app
from tests.conftest import (
    SANDBOX_KEY,
    TEST_SECRET_KEY,
    GatewayFactory,
    SandboxFactory,
    _ServerThread,
    free_port,
)
from tests.integration.api_helpers import tier_price
from tests.integration.cli_runner import run_cli
from tests.integration.engine_helpers import (
    FAST_ENGINE,
    SANDBOX_ON_LOOPBACK,
    TEXT,
    audit_passes,
    create,
    until_final,
)

# Every KIE answer that means "not accepted", each drawn in turn (the later shares are larger so
# that each kind is drawn about as often), then HTTP 500 and 503.
NOT_ACCEPTED_CODES = (429, 433, 455, 500, 501, 505)


def kie(base_url: str, **extra: Any) -> dict[str, Any]:
    return {"id": "main", "provider": "kie", "base_url": base_url, "api_key": SANDBOX_KEY, **extra}


def ark(base_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "ark",
        "provider": "modelark",
        "base_url": base_url + "/api/v3",
        "api_key": SANDBOX_KEY,
        "priority": 1,
        **extra,
    }


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


async def sandbox_tasks(base_url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(
        base_url=base_url, headers={"authorization": f"Bearer {SANDBOX_KEY}"}, timeout=10
    ) as client:
        listed: list[dict[str, Any]] = (await client.get("/sandbox/tasks")).json()["data"]
        return listed


async def sandbox_stats(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=base_url, headers={"authorization": f"Bearer {SANDBOX_KEY}"}, timeout=10
    ) as client:
        stats: dict[str, Any] = (await client.get("/sandbox/stats")).json()
        return stats


async def channels_of(gateway: Any) -> dict[str, dict[str, Any]]:
    async with gateway.admin() as admin:
        answer = await admin.get("/admin/channels")
    assert answer.status_code == 200, answer.text
    return {c["id"]: c for c in answer.json()["data"]}


def _shares(codes: tuple[int, ...]) -> dict[int, float]:
    return {code: 1 / (len(codes) - i) for i, code in enumerate(codes)}


async def test_every_not_accepted_answer_moves_tasks_to_the_second_channel_created_once(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    first = start_sandbox(
        faults={
            "create": {
                "http_500": 0.12,
                "http_503": 0.12,
                "body_codes": _shares(NOT_ACCEPTED_CODES),
            }
        }
    )
    second = start_sandbox(protocol="modelark")
    port = free_port()
    gateway = start_gateway(
        port=port,
        channels=[kie(first), ark(second)],
        circuit_failures=1000,  # every create tries the first channel
        public_url=f"http://127.0.0.1:{port}",
        **FAST_ENGINE,
        **SANDBOX_ON_LOOPBACK,
    )
    key = await gateway.account_with_key("moved")
    async with gateway.client(key) as client:
        ids = [await create(client, TEXT) for _ in range(24)]
        ends = [(await until_final(client, task_id))[-1] for task_id in ids]
    assert {end["state"] for end in ends} == {"success"}
    assert {end["billing"]["channel"] for end in ends} == {"ark"}
    faults = (await sandbox_stats(first))["faults"]
    assert set(faults) == {
        "create_http_500",
        "create_http_503",
        *(f"create_code_{code}" for code in NOT_ACCEPTED_CODES),
    }
    assert await sandbox_tasks(first) == []
    made = await sandbox_tasks(second)
    named = sorted(t["callBackUrl"].split("task_id=")[1].split("&")[0] for t in made)
    assert named == sorted(ids)  # each task created upstream exactly once
    assert (await sandbox_stats(second))["callbacks_sent"] == len(ids)  # to /callbacks/ark
    await audit_passes(gateway)


async def test_a_timeout_after_the_create_was_sent_is_never_sent_again_and_the_task_still_ends(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    first = start_sandbox(faults={"create": {"timeout_after_create": 1.0}}, hang_s=1)
    second = start_sandbox(protocol="modelark")
    port = free_port()
    gateway = start_gateway(
        port=port,
        channels=[kie(first), ark(second)],
        kie_timeout_s=0.3,
        public_url=f"http://127.0.0.1:{port}",
        **FAST_ENGINE,
        **SANDBOX_ON_LOOPBACK,
    )
    key = await gateway.account_with_key("unknown")
    async with gateway.client(key) as client:
        task_id = await create(client, TEXT)
        end = (await until_final(client, task_id))[-1]
    assert end["state"] == "success"  # found again by its callback
    assert end["billing"]["channel"] == "main"
    assert len(await sandbox_tasks(first)) == 1
    assert await sandbox_tasks(second) == []
    await audit_passes(gateway)


async def test_an_unanswered_modelark_create_is_found_in_its_task_list_when_callbacks_are_lost(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    upstream = start_sandbox(
        protocol="modelark",
        faults={"create": {"timeout_after_create": 1.0}},
        hang_s=1,
        callback_lost_share=1.0,
    )
    port = free_port()
    gateway = start_gateway(
        port=port,
        channels=[ark(upstream, priority=0)],
        kie_timeout_s=0.3,
        public_url=f"http://127.0.0.1:{port}",
        **FAST_ENGINE,
        **SANDBOX_ON_LOOPBACK,
    )
    key = await gateway.account_with_key("listed")
    async with gateway.client(key) as client:
        task_id = await create(client, TEXT)
        end = (await until_final(client, task_id))[-1]
    assert end["state"] == "success"
    assert len(await sandbox_tasks(upstream)) == 1
    assert (await sandbox_stats(upstream))["callbacks_sent"] == 0
    await audit_passes(gateway)


async def test_channel_id_pins_a_channel_and_a_bad_one_is_a_400_naming_it(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    first, second = start_sandbox(), start_sandbox(protocol="modelark")
    gateway = start_gateway(
        channels=[
            kie(first),
            ark(second),
            {**kie(first), "id": "off", "enabled": False},
            {**kie(first), "id": "slow-only", "models": {"seedance-2": "bytedance/seedance-2"}},
            {**kie(first), "id": "hd-only", "resolutions": {"seedance-2-fast": ["720p"]}},
        ]
    )
    key = await gateway.account_with_key("pinned")
    async with gateway.client(key) as client:
        task_id = await create(client, {**TEXT, "channel_id": "ark"})
        task = (await client.get(f"/v1/tasks/{task_id}")).json()
        assert task["billing"]["channel"] == "ark"
        for bad in ("nowhere", "off", "slow-only", "hd-only", "Not A Slug"):
            refused = await client.post("/v1/videos/generations", json={**TEXT, "channel_id": bad})
            assert refused.status_code == 400, refused.text
            assert refused.json()["param"] == "channel_id"
    assert len(await sandbox_tasks(second)) == 1
    assert await sandbox_tasks(first) == []


async def test_a_channel_at_max_in_flight_is_skipped(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    first, second = start_sandbox(), start_sandbox(protocol="modelark")
    gateway = start_gateway(channels=[kie(first, max_in_flight=2), ark(second)])
    key = await gateway.account_with_key("capped")
    async with gateway.client(key) as client:
        ids = [await create(client, TEXT) for _ in range(4)]
        channels = [
            (await client.get(f"/v1/tasks/{task_id}")).json()["billing"]["channel"]
            for task_id in ids
        ]
    assert channels == ["main", "main", "ark", "ark"]
    listed = await channels_of(gateway)
    assert (listed["main"]["in_flight"], listed["ark"]["in_flight"]) == (2, 2)


async def test_a_circuit_opens_after_consecutive_failures_and_a_probe_closes_it(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory, tmp_path: Any, database_url: str
) -> None:
    down_port = free_port()
    second = start_sandbox(protocol="modelark")
    channels = [kie(f"http://127.0.0.1:{down_port}"), ark(second)]
    gateway = start_gateway(channels=channels, circuit_failures=2, circuit_cool_down_s=0.3)
    key = await gateway.account_with_key("circuit")
    async with gateway.client(key) as client:
        for _ in range(3):
            await create(client, TEXT)  # each to the second channel
        listed = await channels_of(gateway)
        assert listed["main"]["circuit"] == "open"
        assert listed["main"]["consecutive_failures"] == 2  # the third create did not try it
        assert listed["main"]["last_error"] == "upstream_unreachable"
        assert listed["ark"]["circuit"] == "closed"
        # Every process sees the same circuit: the command line reads it from the database.
        env = {"REELGATE_CHANNELS": json.dumps(channels)}
        shown = await run_cli(database_url, "channels", "--json", settings=env)
        assert shown.code == 0, shown.stderr
        by_id = {c["id"]: c for c in json.loads(shown.stdout)["data"]}
        # Open, or by now past its short cool-down and waiting for its probe.
        assert by_id["main"]["circuit"] in ("open", "half_open")
        assert by_id["main"]["last_error"] == "upstream_unreachable"
        assert by_id["ark"]["circuit"] == "closed"
        assert SANDBOX_KEY not in shown.stdout
        text = await run_cli(database_url, "channels", settings=env)
        assert re.search(
            r"^main\s.*\s(open|half_open)\s.*upstream_unreachable$", text.stdout, re.M
        ), text.stdout
        # The first channel comes back; once its cool-down is over one probe closes it.
        settings = SandboxSettings(
            api_key=SANDBOX_KEY,
            waiting_s=0.2,
            queuing_s=0.2,
            generating_s=0.4,
            media_dir=tmp_path / "revived",
        )
        with _ServerThread(create_sandbox_app(settings), down_port):
            for _ in range(100):
                if (await channels_of(gateway))["main"]["circuit"] == "half_open":
                    break
                await asyncio.sleep(0.05)
            probe = await create(client, TEXT)
            task = (await client.get(f"/v1/tasks/{probe}")).json()
            assert task["billing"]["channel"] == "main"
            assert (await channels_of(gateway))["main"]["circuit"] == "closed"
    assert len(await sandbox_tasks(second)) == 3


async def test_all_channels_down_is_a_503_with_retry_after_and_nothing_charged(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(
        channels=[kie(closed_port_url()), ark(closed_port_url())], circuit_failures=1
    )
    key = await gateway.account_with_key("down", credit_usd="5")
    async with gateway.client(key) as client:
        first = await client.post("/v1/videos/generations", json=TEXT)
        assert first.status_code == 502  # both tried, neither reached
        assert first.json()["code"] == "upstream_unreachable"
        answer = await client.post("/v1/videos/generations", json=TEXT)
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "upstream_unavailable"
    assert int(answer.headers["retry-after"]) >= 1
    async with gateway.admin() as admin:
        account = (await admin.get("/admin/accounts/down")).json()
    assert account["balance_micro_usdc"] == 5_000_000
    assert account["reserved_micro_usdc"] == 0
    await audit_passes(gateway)


async def test_margins_per_channel_in_the_catalogue_and_a_failover_charges_the_cheaper_one(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    first = start_sandbox(faults={"create": {"body_codes": {455: 1.0}}})
    second = start_sandbox(protocol="modelark")
    gateway = start_gateway(
        channels=[kie(first, margin="1.5"), ark(second, margin="1.2")],
        **FAST_ENGINE,
        **SANDBOX_ON_LOOPBACK,
    )
    price = tier_price("seedance-2-fast", "480p", False)
    async with gateway.client() as anyone:
        model = (await anyone.get("/v1/models/seedance-2-fast")).json()
    tiers = {t["id"]: t["price_micro_usdc"] for t in model["capabilities"]["pricing"]["tiers"]}
    assert tiers["480p_no_video"] == price * 3 // 2  # the default route's (first) margin
    offered = {
        c["slug"]: {t["id"]: t["price_micro_usdc"] for t in c["pricing"]["tiers"]}
        for c in model["available_channels"]
    }
    assert offered["main"]["480p_no_video"] == price * 3 // 2
    assert offered["ark"]["480p_no_video"] == price * 6 // 5
    key = await gateway.account_with_key("margins")
    async with gateway.client(key) as client:
        task_id = await create(client, TEXT)
        end = (await until_final(client, task_id))[-1]
    billing = end["billing"]
    assert end["state"] == "success"
    assert billing["channel"] == "ark"
    assert billing["reserve_amount_micro_usdc"] == price * 4 * 3 // 2
    assert billing["actual_amount_micro_usdc"] == price * 4 * 6 // 5
    assert billing["released_amount_micro_usdc"] == price * 4 * 3 // 10
    assert billing["margin"] == 1.2
    async with gateway.admin() as admin:
        account = (await admin.get("/admin/accounts/margins")).json()
    assert account["balance_micro_usdc"] == 100_000_000 - price * 4 * 6 // 5
    assert account["reserved_micro_usdc"] == 0
    async with gateway.admin() as admin:
        total = (await admin.get("/admin/usage", params={"from": 0})).json()["total"]
    assert (total["tasks_success"], total["tasks_fail"]) == (1, 0)
    assert total["committed_micro_usdc"] == price * 4 * 6 // 5
    await audit_passes(gateway)


async def test_a_failover_never_goes_to_a_dearer_channel(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    first = start_sandbox(faults={"create": {"body_codes": {429: 1.0}}})
    second = start_sandbox(protocol="modelark")
    gateway = start_gateway(channels=[kie(first), ark(second, margin="2")])
    key = await gateway.account_with_key("dearer")
    async with gateway.client(key) as client:
        refused = await client.post("/v1/videos/generations", json=TEXT)
    assert refused.status_code == 502
    assert refused.json()["code"] == "upstream_rate_limited"
    assert await sandbox_tasks(second) == []


@pytest.mark.parametrize("code", [401, 422])
async def test_a_refusal_that_is_not_an_outage_fails_at_once_without_failover(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory, code: int
) -> None:
    first = start_sandbox(faults={"create": {"body_codes": {code: 1.0}}})
    second = start_sandbox(protocol="modelark")
    gateway = start_gateway(channels=[kie(first), ark(second)])
    key = await gateway.account_with_key("refused")
    async with gateway.client(key) as client:
        refused = await client.post("/v1/videos/generations", json=TEXT)
    assert refused.status_code == 502
    assert await sandbox_tasks(second) == []


async def test_a_callback_on_another_channels_path_changes_nothing(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    first, second = start_sandbox(), start_sandbox(protocol="modelark")
    gateway = start_gateway(channels=[kie(first), ark(second)])
    key = await gateway.account_with_key("crossed")
    secret = SecretKey.parse(TEST_SECRET_KEY).derive(KeyUse.CALLBACK_TOKENS)
    async with gateway.client(key) as client:
        task_id = await create(client, {**TEXT, "channel_id": "ark"})
        [made] = await sandbox_tasks(second)
        token = callback_token(secret, task_id)
        crossed = await client.post(
            "/v1/upstream/callbacks/main",
            params={"task_id": task_id, "token": token},
            json={"code": 200, "data": {"taskId": made["taskId"]}},
        )
        unknown = await client.post(
            "/v1/upstream/callbacks/nowhere",
            params={"task_id": task_id, "token": token},
            json={"id": made["taskId"]},
        )
    assert crossed.status_code == 200
    assert crossed.json()["changed"] is False
    assert unknown.status_code == 404


async def test_a_forged_modelark_callback_is_refused_without_its_token_and_not_believed_with_it(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    # The ModelArk sandbox keeps the task queued for long: only a forged body could end it.
    second = start_sandbox(protocol="modelark", waiting_s=60)
    gateway = start_gateway(channels=[ark(second)])
    key = await gateway.account_with_key("forged-ark")
    secret = SecretKey.parse(TEST_SECRET_KEY).derive(KeyUse.CALLBACK_TOKENS)
    async with gateway.client(key) as client:
        task_id = await create(client, TEXT)
        [made] = await sandbox_tasks(second)
        forged = {
            "id": made["taskId"],
            "status": "succeeded",
            "content": {"video_url": "http://127.0.0.1:1/secret.mp4"},
        }
        untokened = await client.post(
            "/v1/upstream/callbacks/ark", params={"task_id": task_id}, json=forged
        )
        wrong = await client.post(
            "/v1/upstream/callbacks/ark",
            params={"task_id": task_id, "token": callback_token(secret, "task_other")},
            json=forged,
        )
        believed = await client.post(
            "/v1/upstream/callbacks/ark",
            params={"task_id": task_id, "token": callback_token(secret, task_id)},
            json=forged,
        )
        task = (await client.get(f"/v1/tasks/{task_id}")).json()
    assert (untokened.status_code, untokened.json()["param"]) == (400, "token")
    assert wrong.status_code == 401
    assert believed.status_code == 200  # looked at: the provider's own answer decides
    assert task["state"] in ("waiting", "queuing")
    assert task["billing"]["status"] == "reserved"


async def test_modelark_answers_that_mean_not_accepted_move_tasks_to_the_next_channel(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    codes = (429, 455, 500)  # ModelArk 429, 503 and 500
    first = start_sandbox(
        protocol="modelark",
        faults={"create": {"http_500": 0.2, "http_503": 0.2, "body_codes": _shares(codes)}},
    )
    second = start_sandbox()
    gateway = start_gateway(
        channels=[ark(first, priority=0), {**kie(second), "priority": 1}],
        circuit_failures=1000,
    )
    key = await gateway.account_with_key("ark-first")
    async with gateway.client(key) as client:
        ids = [await create(client, TEXT) for _ in range(20)]
        channels = {
            (await client.get(f"/v1/tasks/{task_id}")).json()["billing"]["channel"]
            for task_id in ids
        }
    assert channels == {"main"}
    assert await sandbox_tasks(first) == []
    assert len(await sandbox_tasks(second)) == len(ids)
    assert len((await sandbox_stats(first))["faults"]) == 5


async def test_a_circuit_one_gateway_opened_is_skipped_by_another_on_the_same_database(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    first = start_sandbox(faults={"create": {"body_codes": {455: 1.0}}})
    second = start_sandbox(protocol="modelark")
    settings: dict[str, Any] = {
        "channels": [kie(first), ark(second)],
        "circuit_failures": 2,
        "circuit_cool_down_s": 60,
    }
    opener, other = start_gateway(**settings), start_gateway(**settings)
    key = await opener.account_with_key("shared")
    async with opener.client(key) as client:
        for _ in range(2):
            await create(client, TEXT)
    assert (await sandbox_stats(first))["faults"] == {"create_code_455": 2}
    # The other gateway reads the shared circuit within a second: from then on it never
    # sends the first channel anything.
    async with other.client(key) as client:
        for _ in range(40):
            before = (await sandbox_stats(first))["faults"]["create_code_455"]
            await create(client, TEXT)
            if (await sandbox_stats(first))["faults"]["create_code_455"] == before:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the other gateway kept trying the open channel")
        for _ in range(3):
            await create(client, TEXT)
    assert (await sandbox_stats(first))["faults"]["create_code_455"] == before
    assert await sandbox_tasks(first) == []
