"""The task engine end to end: tasks created through the gateway reach their end at the sandbox,
settle exactly once, and survive upstream faults."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import httpx
import pytest

from reelgate.config import Settings
from reelgate.engine.process import EngineProcess
from reelgate.services.destinations import Reach
from reelgate.store.tasks import TaskStore
from reelgate.upstream.kie import KieProvider
from tests.conftest import SANDBOX_KEY, GatewayFactory, SandboxFactory, free_port, open_database
from tests.doubles import AcceptingProvider
from tests.integration.engine_helpers import (
    FAST_ENGINE,
    SANDBOX_ON_LOOPBACK,
    TEXT,
    audit_passes,
    create,
    until_final,
)
from tests.integration.test_task_store import _tasks as waiting_tasks

MODES = {
    "text": TEXT,
    "first-frame": {**TEXT, "first_frame_url": "https://example.com/first.png"},
    "first-and-last-frame": {
        **TEXT,
        "first_frame_url": "https://example.com/first.png",
        "last_frame_url": "asset://asset-20260404242101-76djj",
    },
    "multimodal": {
        **TEXT,
        "reference_image_urls": ["https://example.com/style.png"],
        "reference_video_urls": ["https://example.com/motion.mp4"],
        "reference_audio_urls": ["https://example.com/music.mp3"],
    },
}


@pytest.mark.usefixtures("quick_sandbox")
@pytest.mark.parametrize("mode", list(MODES))
async def test_a_task_of_each_input_mode_reaches_success_with_a_playable_video(
    start_gateway: GatewayFactory, mode: str
) -> None:
    gateway = start_gateway(**FAST_ENGINE)
    key = await gateway.account_with_key("maker", credit_usd="10")
    async with gateway.client(key) as client:
        seen = await until_final(client, await create(client, MODES[mode]))
        video = await client.get(seen[-1]["result"]["data"][0]["url"])
    final = seen[-1]
    assert (final["state"], final["progress"], final["billing"]["status"]) == (
        "success",
        100,
        "committed",
    )
    assert (
        final["billing"]["actual_amount_micro_usdc"]
        == final["billing"]["reserve_amount_micro_usdc"]
    )
    assert final["result"]["resolution"] == "480p"
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp", "the result must be an MP4 file"
    await audit_passes(gateway)


@pytest.mark.usefixtures("quick_sandbox")
async def test_progress_only_rises_through_the_states_and_is_100_only_on_success(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(**FAST_ENGINE)
    key = await gateway.account_with_key("watcher", credit_usd="10")
    async with gateway.client(key) as client:
        seen = await until_final(client, await create(client, TEXT))
    order = ["waiting", "queuing", "generating", "success"]
    states = [order.index(task["state"]) for task in seen]
    progress = [task["progress"] for task in seen]
    assert states == sorted(states)
    assert progress == sorted(progress)
    assert all(
        value < 100
        for task, value in zip(seen, progress, strict=True)
        if task["state"] != "success"
    )
    assert seen[-1]["progress"] == 100


async def test_a_failed_generation_ends_in_fail_with_the_money_released(
    start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch, quick_sandbox: Path
) -> None:
    monkeypatch.setenv("REELGATE_SANDBOX_FAIL_SHARE", "1.0")
    gateway = start_gateway(**FAST_ENGINE)
    key = await gateway.account_with_key("unlucky", credit_usd="1")
    async with gateway.client(key) as client:
        final = (await until_final(client, await create(client, TEXT)))[-1]
    assert (final["state"], final["billing"]["status"]) == ("fail", "released")
    assert (
        final["billing"]["released_amount_micro_usdc"]
        == final["billing"]["reserve_amount_micro_usdc"]
    )
    assert final["error"]["code"] == "generation_failed"
    assert "kie" not in final["error"]["message"].lower()
    assert final["result"] == {}
    async with gateway.admin() as admin:
        assert (await admin.get("/admin/accounts/unlucky")).json()[
            "available_micro_usdc"
        ] == 1_000_000
    await audit_passes(gateway)


async def test_a_task_not_done_by_its_deadline_fails_with_the_money_released(
    start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch, quick_sandbox: Path
) -> None:
    monkeypatch.setenv("REELGATE_SANDBOX_GENERATING_S", "60")
    gateway = start_gateway(**FAST_ENGINE, task_deadline_s=1.5)
    key = await gateway.account_with_key("patient", credit_usd="1")
    async with gateway.client(key) as client:
        final = (await until_final(client, await create(client, TEXT), seconds=10))[-1]
    assert (final["state"], final["billing"]["status"]) == ("fail", "released")
    assert final["error"]["code"] == "deadline_exceeded"
    await audit_passes(gateway)


async def test_a_callback_moves_its_task_at_once_without_waiting_for_a_poll(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    sandbox = start_sandbox(hmac_key="kie-hmac")
    port = free_port()
    gateway = start_gateway(
        provider=KieProvider(sandbox, SANDBOX_KEY, hmac_key="kie-hmac"),
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        # The first poll would come a minute later: only the callback can end the task.
        **{
            **FAST_ENGINE,
            **SANDBOX_ON_LOOPBACK,
            "engine_first_poll_s": 60,
            "engine_poll_min_s": 60,
        },
    )
    key = await gateway.account_with_key("called", credit_usd="10")
    async with gateway.client(key) as client:
        final = (await until_final(client, await create(client, TEXT), seconds=15))[-1]
        video = await client.get(final["result"]["data"][0]["url"])
    async with httpx.AsyncClient(
        base_url=sandbox, headers={"authorization": f"Bearer {SANDBOX_KEY}"}
    ) as s:
        stats = (await s.get("/sandbox/stats")).json()
    assert (final["state"], final["billing"]["status"]) == ("success", "committed")
    assert video.status_code == 200
    # The one status read is the callback's own: the gateway believes what it reads back.
    assert stats["callbacks_sent"] == 1
    assert stats["record_calls"] == 1


async def test_with_upstream_faults_every_task_ends_and_settles_exactly_once(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    sandbox = start_sandbox(
        fail_share=0.3,
        hmac_key="kie-hmac",
        callback_lost_share=0.4,
        callback_duplicate_share=0.4,
        callback_late_share=0.2,
        callback_late_s=0.5,
        faults={
            "record": {
                "http_503": 0.2,
                "body_codes": {429: 0.2, 455: 0.1},
                "timeout": 0.1,
                "latency_ms": 20,
            }
        },
        # A check that times out is over before the engine asks again (0.5 s later), so the
        # sandbox's count of overlapping checks only counts real overlaps.
        hang_s=0.6,
    )
    provider = KieProvider(sandbox, SANDBOX_KEY, hmac_key="kie-hmac", timeout_s=0.3)
    # Polls and callbacks race for every task: the sandbox calls back to this gateway.
    port = free_port()
    gateway = start_gateway(
        provider=provider,
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        **FAST_ENGINE,
        **SANDBOX_ON_LOOPBACK,
    )
    key = await gateway.account_with_key("busy", credit_usd="20")
    async with gateway.client(key) as client:
        task_ids = await asyncio.gather(*(create(client, TEXT) for _ in range(12)))
        finals = [(await until_final(client, task_id, seconds=60))[-1] for task_id in task_ids]
    assert {task["state"] for task in finals} <= {"success", "fail"}
    assert all(
        (task["state"], task["billing"]["status"])
        in {("success", "committed"), ("fail", "released")}
        for task in finals
    )
    await audit_passes(gateway)
    async with httpx.AsyncClient(
        base_url=sandbox, headers={"authorization": f"Bearer {SANDBOX_KEY}"}
    ) as s:
        stats = (await s.get("/sandbox/stats")).json()
    assert stats.get("overlapping_polls", 0) == 0
    assert stats["faults"]["record_timeout"] > 0


@pytest.mark.postgres
async def test_two_engine_processes_share_one_backlog_without_polling_a_task_twice_at_once(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several engines share a backlog on PostgreSQL only")
    sandbox = start_sandbox(
        waiting_s=0.3, queuing_s=0.3, generating_s=1.0, faults={"record": {"latency_ms": 50}}
    )
    gateway = start_gateway(provider=KieProvider(sandbox, SANDBOX_KEY))
    key = await gateway.account_with_key("backlog", credit_usd="50")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")},
        "REELGATE_DATABASE_URL": database_url,
        # An engine opens the secrets the gateway sealed: it needs the gateway's key.
        "REELGATE_SECRET_KEY": gateway.settings.secret_key.get_secret_value(),
        "REELGATE_KIE_API_KEY": SANDBOX_KEY,
        "REELGATE_KIE_BASE_URL": sandbox,
        # Engines write the videos the gateway serves: they share its media directory.
        "REELGATE_MEDIA_DIR": str(gateway.settings.media_dir),
        "REELGATE_ENGINE_POLL_MIN_S": "0.2",
        "REELGATE_ENGINE_POLL_MAX_S": "0.4",
        "REELGATE_ENGINE_FIRST_POLL_S": "0.2",
        "REELGATE_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
    }
    engines = [
        await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "reelgate"),
            "engine",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        async with gateway.client(key) as client:
            task_ids = await asyncio.gather(*(create(client, TEXT) for _ in range(40)))
            finals = [(await until_final(client, task_id, seconds=60))[-1] for task_id in task_ids]
    finally:
        for engine in engines:
            engine.terminate()
        for engine in engines:
            await asyncio.wait_for(engine.wait(), timeout=20)
    assert {task["state"] for task in finals} == {"success"}
    async with gateway.client(key) as client:
        video = await client.get(finals[-1]["result"]["data"][0]["url"])
    assert video.status_code == 200, "the gateway serves what the engines stored"
    async with httpx.AsyncClient(
        base_url=sandbox, headers={"authorization": f"Bearer {SANDBOX_KEY}"}
    ) as s:
        stats = (await s.get("/sandbox/stats")).json()
    assert stats.get("overlapping_polls", 0) == 0
    assert stats["record_calls"] >= 40
    await audit_passes(gateway)


async def test_an_engine_never_fails_a_task_for_upstream_outages_before_its_deadline(
    start_sandbox: SandboxFactory, start_gateway: GatewayFactory
) -> None:
    sandbox = start_sandbox(faults={"record": {"http_503": 1.0}})
    gateway = start_gateway(provider=KieProvider(sandbox, SANDBOX_KEY), **FAST_ENGINE)
    key = await gateway.account_with_key("outage", credit_usd="1")
    async with (
        gateway.client(key) as client,
        httpx.AsyncClient(
            base_url=sandbox, headers={"authorization": f"Bearer {SANDBOX_KEY}"}
        ) as upstream,
    ):
        task_id = await create(client, TEXT)
        # The engine keeps asking through the outage (slowed down, never giving up).
        for _ in range(100):
            stats = (await upstream.get("/sandbox/stats")).json()
            if stats["record_calls"] >= 3:
                break
            await asyncio.sleep(0.1)
        task = (await client.get(f"/v1/tasks/{task_id}")).json()
    assert stats["record_calls"] >= 3, stats
    assert stats["faults"]["record_http_503"] == stats["record_calls"]
    assert (task["state"], task["billing"]["status"]) == ("waiting", "reserved")


async def _engine_once(env: dict[str, str]) -> None:
    once = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "reelgate"),
        "engine",
        "--once",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(once.communicate(), timeout=60)
    assert once.returncode == 0, stderr.decode()


async def test_engine_once_does_the_work_due_now_and_exits_so_cron_can_run_it(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory, database_url: str
) -> None:
    sandbox = start_sandbox()
    # The API alone: nothing follows the tasks but the runs of `reelgate engine --once`.
    gateway = start_gateway(provider=KieProvider(sandbox, SANDBOX_KEY), engine_first_poll_s=0.1)
    key = await gateway.account_with_key("cron", credit_usd="10")
    async with gateway.client(key) as client:
        task_ids = await asyncio.gather(*(create(client, TEXT) for _ in range(3)))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")},
        "REELGATE_DATABASE_URL": database_url,
        # An engine opens the secrets the gateway sealed: it needs the gateway's key.
        "REELGATE_SECRET_KEY": gateway.settings.secret_key.get_secret_value(),
        "REELGATE_KIE_API_KEY": SANDBOX_KEY,
        "REELGATE_KIE_BASE_URL": sandbox,
        "REELGATE_MEDIA_DIR": str(gateway.settings.media_dir),
        "REELGATE_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "REELGATE_ENGINE_POLL_MIN_S": "0.1",
    }
    async with gateway.client(key) as client:
        for _ in range(15):
            await asyncio.sleep(0.3)
            await _engine_once(env)  # returns: it never waits for work that is not due
            finals = [(await client.get(f"/v1/tasks/{task_id}")).json() for task_id in task_ids]
            if all(task["state"] == "success" for task in finals):
                break
    assert [(t["state"], t["billing"]["status"]) for t in finals] == [("success", "committed")] * 3
    await _engine_once(env)  # with nothing due at all, it exits at once too
    await audit_passes(gateway)


async def test_an_engine_of_its_own_is_woken_when_another_process_makes_a_task_due(
    database_url: str, tmp_path: Path
) -> None:
    """A callback taken by an API process makes its task due; an engine in another process
    hears of it through the change feed (NOTIFY, or the change table) and looks at once."""
    settings = Settings(database_url=database_url, media_dir=tmp_path / "media")
    engine_db, api_db = open_database(database_url), open_database(database_url)
    engine = EngineProcess(
        engine_db, settings, AcceptingProvider(), lambda _task: b"", Reach(), follow_due=True
    )
    woken = asyncio.Event()
    engine.wake = woken.set  # type: ignore[method-assign]  # observed, not replaced: it only sets
    stop = asyncio.Event()
    running = asyncio.create_task(engine.run(stop))
    try:
        [task_id] = await waiting_tasks(api_db, 1, due_in_ms=3_600_000)
        # Made due again until heard, bounded: a notice sent before the engine listens is not
        # for it to hear (it looks at every task due when it starts anyway).
        for _ in range(20):
            await TaskStore(api_db).make_due(task_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout=0.5)
                break

    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=20)
        await engine_db.dispose()
        await api_db.dispose()
    assert woken.is_set()
    assert engine.health["due"].restarts == 0
