"""Retries and resumes against a real gateway behind a proxy that misbehaves on purpose:
503 and 429 are tried again (Retry-After honoured), a create whose answer was lost is sent
again with the same Idempotency-Key, errors that would repeat are not retried, and a download
cut off mid-file resumes with Range."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reelgate_client import (
    APIConnectionError,
    BadRequest,
    RateLimited,
    Reelgate,
    ServiceUnavailable,
    UpstreamError,
)
from tests.client.conftest import TEXT, new_key, video_stream
from tests.client.proxy import CutAfter, LoseAnswer, Refuse, proxy_to
from tests.conftest import GatewayFactory, RunningGateway, free_port

CREATE = b"POST /v1/videos/generations"


def test_a_create_answered_503_twice_is_retried_and_makes_one_task(
    live: RunningGateway, key: str
) -> None:
    with proxy_to(live.base_url) as proxy:
        proxy.then(Refuse(503), Refuse(503, retry_after="0"))
        with Reelgate(base_url=proxy.url, api_key=key) as client:
            task = client.videos.create(**TEXT)
            assert proxy.count(CREATE) == 3
            assert [t.task_id for t in client.tasks.list()] == [task.task_id]


def test_429_and_502_are_retried_and_the_last_refusal_is_raised_when_retries_run_out(
    live: RunningGateway, key: str
) -> None:
    with proxy_to(live.base_url) as proxy:
        proxy.then(Refuse(429, retry_after="0"), Refuse(502))
        with Reelgate(base_url=proxy.url, api_key=key) as client:
            assert client.account.retrieve().name == "alice"
        proxy.then(Refuse(429, retry_after="7"), Refuse(503))
        with Reelgate(base_url=proxy.url, api_key=key, max_retries=0) as client:
            with pytest.raises(RateLimited) as limited:
                client.account.retrieve()
            assert limited.value.retry_after == 7
            with pytest.raises(ServiceUnavailable) as unavailable:
                client.account.retrieve()
            assert (unavailable.value.status, unavailable.value.error) == (503, "unavailable")


def test_a_request_the_gateway_refuses_for_what_it_is_is_not_retried(
    live: RunningGateway, key: str
) -> None:
    with proxy_to(live.base_url) as proxy, Reelgate(base_url=proxy.url, api_key=key) as client:
        with pytest.raises(BadRequest):
            client.videos.create(**{**TEXT, "resolution": "1080p"})
        assert proxy.count(CREATE) == 1


def test_an_unreachable_gateway_is_a_connection_error_after_the_retries() -> None:
    with (
        Reelgate(base_url=f"http://127.0.0.1:{free_port()}", api_key="rg_x", max_retries=1) as c,
        pytest.raises(APIConnectionError),
    ):
        c.account.retrieve()


def test_retried_creates_send_one_idempotency_key_and_creates_each_their_own(
    live: RunningGateway, key: str
) -> None:
    keys: list[str] = []
    hooks = {"request": [lambda request: keys.append(request.headers["idempotency-key"])]}
    with (
        proxy_to(live.base_url) as proxy,
        httpx.Client(event_hooks=hooks) as http,
        Reelgate(base_url=proxy.url, api_key=key, http_client=http) as client,
    ):
        proxy.then(Refuse(503))
        client.videos.create(**TEXT)
        client.videos.create(**TEXT, idempotency_key="mine-1")
    assert len(keys) == 3
    assert keys[0] == keys[1] != keys[2] == "mine-1"


def test_a_create_retried_after_a_lost_answer_makes_one_task(
    live: RunningGateway, key: str
) -> None:
    """The gateway made the task, its answer never arrived, the client sent the create again
    with the same Idempotency-Key: one task, one reservation. Needs the gateway's side of
    Idempotency-Key (issue 10)."""
    with proxy_to(live.base_url) as proxy:
        proxy.then(LoseAnswer())
        with Reelgate(base_url=proxy.url, api_key=key) as client:
            task = client.videos.create(**TEXT)
            assert proxy.count(CREATE) == 2
            listed = [t.task_id for t in client.tasks.list()]
            account = client.account.retrieve()
    assert listed == [task.task_id]
    assert account.reserved_micro_usdc + (100_000_000 - account.balance_micro_usdc) == (77_500 * 4)


def test_a_download_cut_off_mid_file_resumes_with_range(
    rg: Reelgate, live: RunningGateway, key: str, tmp_path: Path
) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    task = rg.videos.generate(**TEXT, timeout=60)
    whole = rg.tasks.download(task.task_id, downloads / "whole.mp4").read_bytes()
    assert len(whole) > 20_000
    with proxy_to(live.base_url) as proxy:
        # The first answer is cut inside the video, and so is the first resumption.
        proxy.then(CutAfter(len(whole) // 3), CutAfter(len(whole) // 2))
        progress: list[int] = []
        with Reelgate(base_url=proxy.url, api_key=key) as client:
            path = client.tasks.download(
                task.task_id,
                downloads / "resumed.mp4",
                on_progress=lambda done, total: progress.append(done),
            )
    assert path.read_bytes() == whole
    assert proxy.connections == 3
    assert len(proxy.requests) == 3
    assert b"range: bytes=" not in proxy.heads[0].lower()
    assert all(b"range: bytes=" in head.lower() for head in proxy.heads[1:])
    assert progress == sorted(progress)
    assert video_stream(path)["codec_name"] == "h264"
    assert sorted(p.name for p in downloads.iterdir()) == ["resumed.mp4", "whole.mp4"]


def test_wait_falls_back_to_polling_when_the_event_stream_is_refused(
    live: RunningGateway, key: str, rg: Reelgate
) -> None:
    task = rg.videos.create(**TEXT)
    with proxy_to(live.base_url) as proxy:
        proxy.then(Refuse(503))
        with Reelgate(base_url=proxy.url, api_key=key, max_retries=0) as client:
            done = client.tasks.wait(task.task_id, timeout=60)
    assert done.state == "success"
    assert proxy.requests[0].startswith(f"GET /v1/tasks/{task.task_id}/events ".encode())
    assert proxy.requests[1].startswith(f"GET /v1/tasks/{task.task_id} ".encode())


def test_a_stream_refused_or_cut_off_is_opened_again_and_followed_to_the_final_state(
    live: RunningGateway, key: str, rg: Reelgate
) -> None:
    task = rg.videos.create(**TEXT)
    with proxy_to(live.base_url) as proxy:
        # Refused once, then the answer's head and the start of the first event, then nothing.
        proxy.then(Refuse(503, retry_after="0"), CutAfter(300))
        with Reelgate(base_url=proxy.url, api_key=key) as client:
            seen = list(client.tasks.stream(task.task_id, timeout=60))
    assert seen[-1].state == "success"
    assert proxy.count(f"GET /v1/tasks/{task.task_id}/events ".encode()) == 3


def test_a_create_whose_refusal_is_replayed_for_its_key_is_not_sent_again(
    start_gateway: GatewayFactory,
) -> None:
    # An upstream that refuses every connection: the create is answered 502 or 503 (nothing
    # charged), and the gateway keeps that answer for the create's Idempotency-Key.
    gateway = start_gateway(
        kie_base_url=f"http://127.0.0.1:{free_port()}",
        kie_api_key="kie-test",
        allowed_networks=["127.0.0.0/8"],
    )
    key = new_key(gateway, "refused")
    with proxy_to(gateway.base_url) as proxy, Reelgate(base_url=proxy.url, api_key=key) as rg:
        with pytest.raises((UpstreamError, ServiceUnavailable)):
            rg.videos.create(**TEXT)
        # The first answer, then its replay: no third try.
        assert proxy.count(CREATE) == 2
