"""``AsyncReelgate`` against a real gateway on loopback: every method, as the sync client's
tests use them, with async iterators."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reelgate_client import (
    AsyncReelgate,
    BadRequest,
    NotFound,
    ServiceUnavailable,
    Task,
    TaskFailed,
    WaitTimeout,
)
from tests.client.conftest import TEXT, TEXT_COST, new_key, video_stream
from tests.client.proxy import CutAfter, Refuse, proxy_to
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.engine_helpers import FAST_ENGINE


async def test_every_method_of_the_async_client(
    live: RunningGateway, key: str, tmp_path: Path
) -> None:
    async with AsyncReelgate(base_url=live.base_url, api_key=key) as rg:
        updates: list[Task] = []
        task = await rg.videos.generate(
            **TEXT, out=tmp_path / "a.mp4", timeout=60, on_update=updates.append
        )
        assert (task.state, task.charged_micro_usdc) == ("success", TEXT_COST)
        assert updates[-1].state == "success"
        assert video_stream(tmp_path / "a.mp4")["codec_name"] == "h264"

        created = await rg.videos.create(**TEXT, idempotency_key="async-1")
        assert (await rg.tasks.retrieve(created.task_id)).state in ("waiting", "queuing")
        snapshots = [s async for s in rg.tasks.stream(created.task_id, timeout=60)]
        assert snapshots[-1].state == "success"
        by_events = await rg.tasks.wait(created.task_id, timeout=60)
        polled = await rg.videos.create(**TEXT)
        by_polling = await rg.tasks.wait(polled.task_id, timeout=60, use_events=False)
        assert (by_events.state, by_polling.state) == ("success", "success")
        path = await rg.tasks.download(polled.task_id, tmp_path / "b.mp4")
        assert video_stream(path)["codec_name"] == "h264"

        listed = [t.task_id async for t in rg.tasks.list(limit=1)]
        assert listed == [polled.task_id, created.task_id, task.task_id]
        page = await rg.tasks.list_page(limit=2, state="success")
        assert (len(page.data), page.has_more) == (2, True)

        models = await rg.models.list()
        assert {m.id for m in models} == {"seedance-2", "seedance-2-fast"}
        assert (await rg.models.retrieve("seedance-2")).tiers[0].id == "480p_no_video"
        price = await rg.models.price("seedance-2-fast", resolution="480p", duration=4)
        assert price == TEXT_COST

        account = await rg.account.retrieve()
        assert account.balance_micro_usdc == 100_000_000 - 3 * TEXT_COST
        usage = await rg.account.usage(group_by="day")
        assert usage.total.tasks_success == 3

        with pytest.raises(BadRequest) as bad:
            await rg.videos.create(**{**TEXT, "prompt": "ab"})
        assert bad.value.param == "prompt"
        with pytest.raises(NotFound):
            await rg.tasks.retrieve("task_missing")


async def test_async_wait_timeout_and_task_failed(
    start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch, quick_sandbox: Path
) -> None:
    idle = start_gateway()  # no engine: tasks stay waiting
    async with AsyncReelgate(base_url=idle.base_url, api_key=new_key(idle, "idle")) as rg:
        task = await rg.videos.create(**TEXT)
        with pytest.raises(WaitTimeout):
            await rg.tasks.wait(task.task_id, timeout=0.3)
    monkeypatch.setenv("REELGATE_SANDBOX_FAIL_SHARE", "1.0")
    failing = start_gateway(**FAST_ENGINE)
    async with AsyncReelgate(base_url=failing.base_url, api_key=new_key(failing, "f")) as rg:
        with pytest.raises(TaskFailed) as raised:
            await rg.videos.generate(**TEXT, timeout=60)
        assert raised.value.task.state == "fail"


async def test_async_retries_and_resumed_download(
    live: RunningGateway, key: str, tmp_path: Path
) -> None:
    async with AsyncReelgate(base_url=live.base_url, api_key=key) as direct:
        done = await direct.videos.generate(**TEXT, timeout=60, out=tmp_path / "whole.mp4")
    whole = (tmp_path / "whole.mp4").read_bytes()
    with proxy_to(live.base_url) as proxy:
        proxy.then(Refuse(503, retry_after="0"), Refuse(502))
        async with AsyncReelgate(base_url=proxy.url, api_key=key) as rg:
            assert (await rg.account.retrieve()).name == "alice"
        assert proxy.connections == 3
        # A new client: the proxy acts per connection, and the last one's is kept alive.
        proxy.then(CutAfter(len(whole) // 2))
        async with AsyncReelgate(base_url=proxy.url, api_key=key) as rg:
            path = await rg.tasks.download(done.task_id, tmp_path / "resumed.mp4")
        assert path.read_bytes() == whole
        assert proxy.connections == 5
        proxy.then(Refuse(503))
        async with AsyncReelgate(base_url=proxy.url, api_key=key, max_retries=0) as rg:
            with pytest.raises(ServiceUnavailable):
                await rg.account.retrieve()


async def test_async_clients_run_side_by_side(live: RunningGateway, key: str) -> None:
    async with AsyncReelgate(base_url=live.base_url, api_key=key) as rg:
        tasks = await asyncio.gather(*(rg.videos.generate(**TEXT, timeout=60) for _ in range(3)))
    assert [t.state for t in tasks] == ["success"] * 3
    assert len({t.task_id for t in tasks}) == 3
