"""``Reelgate`` against a real gateway on loopback: every method, the videos decoded by
ffprobe, and the errors as the contract's bodies say them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reelgate_client import (
    AuthenticationError,
    BadRequest,
    InsufficientBalance,
    NotFound,
    Reelgate,
    Task,
    TaskFailed,
    WaitTimeout,
)
from tests.client.conftest import TEXT, TEXT_COST, new_key, video_stream
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.engine_helpers import FAST_ENGINE


def test_generate_creates_waits_and_downloads_a_video_ffprobe_decodes(
    rg: Reelgate, tmp_path: Path
) -> None:
    updates: list[Task] = []
    progress: list[tuple[int, int | None]] = []
    out = tmp_path / "beach.mp4"
    task = rg.videos.generate(
        **TEXT,
        aspect_ratio="16:9",
        out=out,
        timeout=60,
        on_update=updates.append,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert task.state == "success"
    assert task.billing is not None
    assert (task.billing.status, task.charged_micro_usdc) == ("committed", TEXT_COST)
    assert updates[0].state == "waiting"
    assert updates[-1].state == "success"
    assert [u.progress for u in updates] == sorted(u.progress for u in updates)
    stream = video_stream(out)
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 854, 480)
    assert progress[-1] == (out.stat().st_size, out.stat().st_size)
    assert not list(tmp_path.glob(".*.part"))


def test_create_retrieve_wait_by_events_and_by_polling_then_download(
    rg: Reelgate, tmp_path: Path
) -> None:
    created = rg.videos.create(**TEXT)
    assert (created.state, created.object, created.model) == ("waiting", "task", TEXT["model"])
    assert created.poll_url == f"/v1/tasks/{created.task_id}"
    again = rg.tasks.retrieve(created.task_id)
    assert again.request["prompt"] == TEXT["prompt"]
    assert again.billing is not None
    assert again.billing.reserve_amount_micro_usdc == TEXT_COST

    by_events = rg.tasks.wait(created.task_id, timeout=60)
    polled = rg.videos.create(**TEXT)
    seen: list[Task] = []
    by_polling = rg.tasks.wait(polled.task_id, timeout=60, on_update=seen.append, use_events=False)
    assert (by_events.state, by_polling.state) == ("success", "success")
    assert seen[-1].state == "success"
    assert by_events.urls
    assert by_events.urls[0].startswith(rg.config.base_url)

    path = rg.tasks.download(by_polling.task_id, tmp_path / "polled.mp4")
    assert path == tmp_path / "polled.mp4"
    assert video_stream(path)["codec_name"] == "h264"


def test_stream_yields_snapshots_until_the_final_one(rg: Reelgate) -> None:
    created = rg.videos.create(**TEXT)
    snapshots = list(rg.tasks.stream(created.task_id, timeout=60))
    assert snapshots[-1].state == "success"
    assert all(not s.is_final for s in snapshots[:-1])
    states = ["waiting", "queuing", "generating", "success"]
    assert [states.index(s.state) for s in snapshots] == sorted(
        states.index(s.state) for s in snapshots
    )
    # A finished task's stream is its final state, once.
    assert [s.state for s in rg.tasks.stream(created.task_id)] == ["success"]


def test_wait_raises_wait_timeout_with_the_task_still_running(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway()  # no engine: the task stays waiting
    with Reelgate(base_url=gateway.base_url, api_key=new_key(gateway, "slow")) as client:
        task = client.videos.create(**TEXT)
        for use_events in (True, False):
            with pytest.raises(WaitTimeout) as raised:
                client.tasks.wait(task.task_id, timeout=0.3, use_events=use_events)
            assert raised.value.task_id == task.task_id
        assert client.tasks.retrieve(task.task_id).state == "waiting"


def test_a_failed_task_raises_task_failed_carrying_it(
    start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch, quick_sandbox: Path
) -> None:
    monkeypatch.setenv("REELGATE_SANDBOX_FAIL_SHARE", "1.0")
    gateway = start_gateway(**FAST_ENGINE)
    with (
        Reelgate(base_url=gateway.base_url, api_key=new_key(gateway, "unlucky")) as client,
        pytest.raises(TaskFailed) as raised,
    ):
        client.videos.generate(**TEXT, timeout=60)
    failed = raised.value.task
    assert failed.state == "fail"
    assert failed.billing is not None
    assert failed.billing.status == "released"
    assert raised.value.code == failed.error["code"]


def test_lists_page_by_themselves_with_filters(rg: Reelgate) -> None:
    made = [rg.videos.create(**TEXT).task_id for _ in range(5)]
    listed = [t.task_id for t in rg.tasks.list(limit=2)]
    assert listed == made[::-1]
    page = rg.tasks.list_page(limit=2)
    assert (len(page.data), page.has_more, page.next_after) == (2, True, made[3])
    assert [t.task_id for t in rg.tasks.list(model="seedance-2", limit=2)] == []
    assert [t.task_id for t in rg.tasks.list(after=made[2])] == made[1::-1]
    later = rg.tasks.list(created_after=int(time.time()) + 3600)
    assert list(later) == []
    rg.tasks.wait(made[0], timeout=60)
    done = [t.task_id for t in rg.tasks.list(state="success")]
    assert made[0] in done


def test_models_and_their_prices_are_what_the_gateway_reserves(rg: Reelgate) -> None:
    models = rg.models.list()
    assert {m.id for m in models} == {"seedance-2", "seedance-2-fast"}
    fast = rg.models.retrieve("seedance-2-fast")
    assert len(fast.tiers) == 4
    assert fast.default("resolution") == "720p"
    assert rg.models.price("seedance-2-fast") == 165_000 * 5
    for resolution, duration, video_input in [("480p", 4, False), ("720p", 7, True)]:
        price = rg.models.price(
            "seedance-2-fast", resolution=resolution, duration=duration, video_input=video_input
        )
        fields = {"reference_video_urls": ["https://example.com/m.mp4"]} if video_input else {}
        task = rg.videos.create(
            model="seedance-2-fast",
            prompt="a price check",
            resolution=resolution,
            duration=duration,
            **fields,
        )
        reserved = rg.tasks.retrieve(task.task_id).billing
        assert reserved is not None
        assert reserved.reserve_amount_micro_usdc == price
    with pytest.raises(ValueError, match="no 1080p tier"):
        rg.models.price("seedance-2-fast", resolution="1080p")
    # One channel, the default: pinned, a create is reserved at its price.
    assert [c.id for c in fast.available_channels] == ["kie"]
    pinned_price = rg.models.price("seedance-2-fast", duration=4, channel_id="kie")
    pinned = rg.videos.create(
        model="seedance-2-fast", prompt="pinned", duration=4, channel_id="kie"
    )
    billing = rg.tasks.retrieve(pinned.task_id).billing
    assert billing is not None
    assert (billing.channel, billing.reserve_amount_micro_usdc) == ("kie", pinned_price)
    with pytest.raises(ValueError, match="no channel 'elsewhere'"):
        rg.models.price("seedance-2-fast", channel_id="elsewhere")
    with pytest.raises(NotFound):
        rg.models.retrieve("seedance-3")


def test_account_and_usage(rg: Reelgate) -> None:
    before = rg.account.retrieve()
    assert (before.name, before.balance_micro_usdc, before.reserved_micro_usdc) == (
        "alice",
        100_000_000,
        0,
    )
    task = rg.videos.generate(**TEXT, timeout=60)
    after = rg.account.retrieve()
    assert after.balance_micro_usdc == before.balance_micro_usdc - task.charged_micro_usdc
    usage = rg.account.usage(group_by="model")
    assert usage.group_by == "model"
    assert [(row.group, row.tasks_success) for row in usage.data] == [("seedance-2-fast", 1)]
    assert usage.total.committed_micro_usdc == TEXT_COST
    assert usage.total.generated_seconds == TEXT["duration"]
    assert rg.account.usage(from_=int(time.time()) + 3600).total.tasks_success == 0


def test_errors_mirror_the_contract_body(rg: Reelgate, live: RunningGateway) -> None:
    with pytest.raises(BadRequest) as bad:
        rg.videos.create(**{**TEXT, "duration": 99})
    assert (bad.value.status, bad.value.error, bad.value.param) == (400, "bad_request", "duration")
    assert bad.value.request_id
    with pytest.raises(NotFound):
        rg.tasks.retrieve("task_nope")
    with (
        Reelgate(base_url=live.base_url, api_key="rg_wrong") as stranger,
        pytest.raises(AuthenticationError) as unauthorized,
    ):
        stranger.account.retrieve()
    assert unauthorized.value.status == 401
    poor = new_key(live, "poor", credit_usd="0")
    with (
        Reelgate(base_url=live.base_url, api_key=poor) as client,
        pytest.raises(InsufficientBalance) as short,
    ):
        client.videos.create(**TEXT)
    assert short.value.status == 402
    with pytest.raises(ValueError, match="base_url"):
        Reelgate(base_url="127.0.0.1:8000")


def test_settings_come_from_the_environment(
    live: RunningGateway, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REELGATE_BASE_URL", live.base_url)
    monkeypatch.setenv("REELGATE_API_KEY", key)
    with Reelgate() as client:
        assert client.account.retrieve().name == "alice"
