"""The sandbox held to KIE's documented shapes: records through every state, errors, auth,
validation and credits."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from reelgate.upstream.sandbox import SandboxSettings, create_sandbox_app
from tests.conftest import SANDBOX_KEY, SandboxFactory
from tests.sandbox_support import (
    FAST_480P,
    assert_kie_record,
    create,
    kie_client,
    record,
    serve,
    stats,
    until_finished,
)

ENDPOINTS = [
    ("POST", "/api/v1/jobs/createTask"),
    ("GET", "/api/v1/jobs/recordInfo?taskId=task_bytedance_1"),
    ("GET", "/api/v1/chat/credit"),
    ("GET", "/sandbox/stats"),
    ("GET", "/sandbox/tasks"),
    ("GET", "/sandbox/tasks/task_bytedance_1"),
]


@pytest.fixture(scope="module")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One sandbox for the tables of requests below: starting one per case costs more than the
    case. Its tasks take long enough that none of them renders while the module runs."""
    settings = SandboxSettings(
        api_key=SANDBOX_KEY, waiting_s=60, media_dir=tmp_path_factory.mktemp("media")
    )
    with serve(create_sandbox_app(settings)) as base:
        yield base


def _input(**fields: Any) -> dict[str, Any]:
    return {**FAST_480P, "input": {**FAST_480P["input"], **fields}}


async def test_a_task_moves_through_every_state_in_kies_record_shape(
    start_sandbox: SandboxFactory,
) -> None:
    async with kie_client(start_sandbox()) as client:
        task_id = await create(client)
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["state"] != "success":
            seen.append(await record(client, task_id))
            await asyncio.sleep(0.03)
    assert re.fullmatch(r"task_bytedance_\d+", task_id)
    for data in seen:
        assert_kie_record(data)
        assert (data["taskId"], data["model"]) == (task_id, "bytedance/seedance-2-fast")
        assert orjson.loads(data["param"]) == FAST_480P
        assert (data["failCode"], data["failMsg"]) == ("", "")
    *running, done = seen
    states = [data["state"] for data in seen]
    order = ["waiting", "queuing", "generating", "success"]
    assert states == sorted(states, key=order.index)
    assert set(states) == set(order)
    for data in running:
        assert (data["resultJson"], data["completeTime"], data["costTime"]) == ("", None, 0)
        assert data["createTime"] <= data["updateTime"]
    (url,) = orjson.loads(done["resultJson"])["resultUrls"]
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith(".mp4")
    assert done["updateTime"] == done["completeTime"]
    assert done["costTime"] == done["completeTime"] - done["createTime"] >= 800


async def test_update_time_is_when_the_task_entered_its_state(
    start_sandbox: SandboxFactory,
) -> None:
    async with kie_client(start_sandbox(waiting_s=0.3, queuing_s=5)) as client:
        task_id = await create(client)
        waiting = await record(client, task_id)
        await asyncio.sleep(0.35)
        queuing = await record(client, task_id)
    assert (waiting["state"], queuing["state"]) == ("waiting", "queuing")
    assert waiting["updateTime"] == waiting["createTime"]
    assert queuing["updateTime"] == queuing["createTime"] + 300


async def test_a_failing_task_carries_its_fail_code_and_no_result(
    start_sandbox: SandboxFactory,
) -> None:
    async with kie_client(
        start_sandbox(fail_share=1.0, fail_code="501", fail_message="no luck")
    ) as client:
        data = await until_finished(client, await create(client))
    assert_kie_record(data)
    assert (data["state"], data["failCode"], data["failMsg"]) == ("fail", "501", "no luck")
    assert data["resultJson"] == ""
    assert data["completeTime"] == data["updateTime"] == data["createTime"] + data["costTime"]


async def test_param_is_the_create_body_as_sent_including_the_callback_url(
    start_sandbox: SandboxFactory,
) -> None:
    body = {
        "model": "bytedance/seedance-2",
        "callBackUrl": "http://127.0.0.1:9/cb",
        "input": {
            "prompt": "two cats",
            "reference_image_urls": ["https://example.com/a.png"],
            "generate_audio": False,
            "web_search": True,
        },
    }
    async with kie_client(start_sandbox()) as client:
        data = await record(client, await create(client, body))
    assert isinstance(data["param"], str)
    assert orjson.loads(data["param"]) == body


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("key", [None, "wrong-key"], ids=["no-key", "wrong-key"])
async def test_every_endpoint_refuses_a_missing_or_wrong_key_with_body_code_401(
    start_sandbox: SandboxFactory, method: str, path: str, key: str | None
) -> None:
    async with kie_client(start_sandbox(), key) as client:
        answer = await client.request(method, path, json=FAST_480P)
    assert answer.status_code == 200
    assert answer.json() == {"code": 401, "msg": answer.json()["msg"], "data": None}


async def test_without_a_configured_key_any_bearer_token_is_accepted_but_one_is_required(
    start_sandbox: SandboxFactory,
) -> None:
    base = start_sandbox(api_key=None)
    async with kie_client(base, "anything") as client:
        await create(client)
    async with kie_client(base, None) as client:
        assert (await client.get("/api/v1/chat/credit")).json()["code"] == 401


LONG_PROMPT = "x" * 20_001
INVALID = {
    "unknown-model": {**FAST_480P, "model": "bytedance/seedance-3"},
    "no-model": {"input": FAST_480P["input"]},
    "no-input": {"model": "bytedance/seedance-2"},
    "input-not-object": {"model": "bytedance/seedance-2", "input": "a cat"},
    "no-prompt": {"model": "bytedance/seedance-2", "input": {"duration": 5}},
    "prompt-2-chars": _input(prompt="hi"),
    "prompt-20001-chars": _input(prompt=LONG_PROMPT),
    "duration-3": _input(duration=3),
    "duration-16": _input(duration=16),
    "duration-string": _input(duration="5"),
    "resolution-2k": _input(resolution="2k"),
    "fast-1080p": _input(resolution="1080p"),
    "aspect-2:1": _input(aspect_ratio="2:1"),
    "generate-audio-string": _input(generate_audio="yes"),
    "frames-and-references": _input(
        first_frame_url="https://example.com/f.png",
        reference_image_urls=["https://example.com/r.png"],
    ),
    "last-frame-alone": _input(last_frame_url="https://example.com/l.png"),
    "10-reference-images": _input(
        reference_image_urls=[f"https://example.com/{i}.png" for i in range(10)]
    ),
    "4-reference-videos": _input(
        reference_video_urls=[f"https://example.com/{i}.mp4" for i in range(4)]
    ),
    "4-reference-audios": _input(
        reference_audio_urls=[f"https://example.com/{i}.mp3" for i in range(4)]
    ),
    "bad-image-url": _input(reference_image_urls=["not a url"]),
    "bad-callback-url": {**FAST_480P, "callBackUrl": "nowhere"},
    "body-not-object": ["a", "list"],
}


@pytest.mark.parametrize("body", INVALID.values(), ids=INVALID.keys())
async def test_invalid_creates_answer_body_code_422_and_create_nothing(
    start_sandbox: SandboxFactory, body: object
) -> None:
    async with kie_client(start_sandbox()) as client:
        answer = await client.post("/api/v1/jobs/createTask", json=body)
        assert answer.status_code == 200
        payload = answer.json()
        assert set(payload) == {"code", "msg", "data"}
        assert (payload["code"], payload["data"]) == (422, None)
        assert isinstance(payload["msg"], str)
        assert payload["msg"]
        assert (await stats(client))["created"] == 0


async def test_a_body_that_is_not_json_answers_422(start_sandbox: SandboxFactory) -> None:
    async with kie_client(start_sandbox()) as client:
        answer = await client.post("/api/v1/jobs/createTask", content=b"{not json")
    assert answer.json()["code"] == 422


VALID_EDGES = {
    "prompt-3-chars": _input(prompt="cat"),
    "prompt-20000-chars": _input(prompt="y" * 20_000),
    "duration-15": _input(duration=15),
    "aspect-adaptive": _input(aspect_ratio="adaptive"),
    "first-and-last-frames": _input(
        first_frame_url="asset://asset-20260404242101-76djj",
        last_frame_url="https://example.com/l.png",
    ),
    "all-references-at-their-limits": _input(
        reference_image_urls=[f"https://example.com/{i}.png" for i in range(9)],
        reference_video_urls=[f"https://example.com/{i}.mp4" for i in range(3)],
        reference_audio_urls=[f"https://example.com/{i}.mp3" for i in range(3)],
    ),
    "seedance-2-1080p": {**_input(resolution="1080p"), "model": "bytedance/seedance-2"},
}


@pytest.mark.parametrize("body", VALID_EDGES.values(), ids=VALID_EDGES.keys())
async def test_requests_at_the_edges_of_the_rules_are_accepted(
    start_sandbox: SandboxFactory, body: dict[str, Any]
) -> None:
    async with kie_client(start_sandbox()) as client:
        await create(client, body)


@pytest.mark.parametrize(("params", "code"), [({}, 400), ({"taskId": "task_bytedance_0"}, 404)])
async def test_record_info_without_or_with_an_unknown_task_is_refused(
    start_sandbox: SandboxFactory, params: dict[str, str], code: int
) -> None:
    async with kie_client(start_sandbox()) as client:
        answer = await client.get("/api/v1/jobs/recordInfo", params=params)
    assert answer.status_code == 200
    assert answer.json() == {"code": code, "msg": answer.json()["msg"], "data": None}


async def test_credits_fall_by_kies_price_for_each_create_until_402(
    start_sandbox: SandboxFactory,
) -> None:
    with_video = {
        "model": "bytedance/seedance-2",
        "input": {
            "prompt": "a dance like this one",
            "reference_video_urls": ["https://example.com/moves.mp4"],
            "duration": 5,
        },
    }
    async with kie_client(start_sandbox(credits=200)) as client:
        assert (await client.get("/api/v1/chat/credit")).json() == {
            "code": 200,
            "msg": "success",
            "data": 200,
        }
        await create(client)  # seedance-2-fast, 480p, no video input: 15.5 x 4 s
        assert (await client.get("/api/v1/chat/credit")).json()["data"] == 200 - 62
        await create(client, with_video)  # seedance-2, 720p by default, with video: 25 x 5 s
        assert (await client.get("/api/v1/chat/credit")).json()["data"] == 200 - 62 - 125
        refused = (await client.post("/api/v1/jobs/createTask", json=FAST_480P)).json()
        assert refused == {"code": 402, "msg": refused["msg"], "data": None}
        assert (await client.get("/api/v1/chat/credit")).json()["data"] == 13
        assert (await stats(client))["created"] == 2


async def test_task_ids_are_distinct_even_when_created_in_the_same_millisecond(
    start_sandbox: SandboxFactory,
) -> None:
    async with kie_client(start_sandbox()) as client:
        ids = await asyncio.gather(*(create(client) for _ in range(30)))
    assert len(set(ids)) == 30


async def test_the_task_detail_shows_the_record_and_what_was_drawn(
    start_sandbox: SandboxFactory,
) -> None:
    body = {**FAST_480P, "callBackUrl": "http://127.0.0.1:9/cb"}
    async with kie_client(start_sandbox(callback_duplicate_share=1.0)) as client:
        task_id = await create(client, body)
        await record(client, task_id)
        detail = (await client.get(f"/sandbox/tasks/{task_id}")).json()
        missing = (await client.get("/sandbox/tasks/task_bytedance_0")).json()
    assert detail["code"] == 200
    data = detail["data"]
    assert data["taskId"] == task_id
    assert data["sandbox"]["polls"] == 1
    assert data["sandbox"]["drawnToFail"] is False
    assert data["sandbox"]["callback"] == {
        "url": "http://127.0.0.1:9/cb",
        "lost": False,
        "late_s": 0.0,
        "copies": 2,
    }
    assert missing["code"] == 404


async def test_the_task_list_names_every_task_made_with_its_callback_link_in_order(
    start_sandbox: SandboxFactory,
) -> None:
    async with kie_client(start_sandbox()) as client:
        first = await create(client, {**FAST_480P, "callBackUrl": "http://127.0.0.1:9/cb?n=1"})
        second = await create(client)
        listed = (await client.get("/sandbox/tasks")).json()
    assert listed["code"] == 200
    assert [(t["taskId"], t["callBackUrl"], t["state"]) for t in listed["data"]] == [
        (first, "http://127.0.0.1:9/cb?n=1", "waiting"),
        (second, None, "waiting"),
    ]
    assert all(isinstance(t["createTime"], int) for t in listed["data"])


async def test_stats_count_creates_polls_per_task_and_credit_calls(
    start_sandbox: SandboxFactory,
) -> None:
    async with kie_client(start_sandbox()) as client:
        first, second = await create(client), await create(client)
        for _ in range(3):
            await record(client, first)
        await record(client, second)
        await client.get("/api/v1/chat/credit")
        counts = await stats(client)
    assert counts["created"] == 2
    assert counts["record_calls"] == 4
    assert counts["credit_calls"] == 1
    assert counts["polls"] == {first: 3, second: 1}
    assert counts["overlapping_polls"] == 0


async def _poll_giving_up_after(base: str, task_id: str, seconds: float) -> None:
    """A recordInfo call whose client gives up (closes its connection) after ``seconds``."""
    async with kie_client(base) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}, timeout=seconds)


async def test_overlapping_polls_count_only_requests_whose_client_still_waits(
    start_sandbox: SandboxFactory,
) -> None:
    # Every status call hangs for 5 s: only the client's patience ends one.
    base = start_sandbox(hang_s=5, faults={"record": {"timeout": 1.0}})
    async with kie_client(base) as client:
        task_id = await create(client)
    # One after another: the first was abandoned before the second came. No overlap.
    await _poll_giving_up_after(base, task_id, 0.3)
    await asyncio.sleep(0.1)
    await _poll_giving_up_after(base, task_id, 0.3)
    async with kie_client(base) as client:
        after_sequential = (await stats(client))["overlapping_polls"]
    # Side by side: both clients wait at once. One overlap.
    await asyncio.gather(
        _poll_giving_up_after(base, task_id, 0.5), _poll_giving_up_after(base, task_id, 0.5)
    )
    async with kie_client(base) as client:
        after_concurrent = (await stats(client))["overlapping_polls"]
    assert (after_sequential, after_concurrent) == (0, 1)
