"""The ModelArk adaptor against the sandbox speaking ModelArk over loopback: every input mode,
every status, every error row of modelark-api.md."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest

from reelgate.domain.request import parse_request
from reelgate.domain.task import TaskState
from reelgate.domain.upstream import UpstreamStatus
from reelgate.errors import UpstreamError
from reelgate.upstream.modelark import ModelArkProvider, create_body, error_for, parse_task
from tests.conftest import SANDBOX_KEY, SandboxFactory

TEXT = {"model": "seedance-2-fast", "prompt": "a paper boat", "resolution": "480p", "duration": 4}
MODES: dict[str, dict[str, Any]] = {
    "text": TEXT,
    "first-frame": {**TEXT, "first_frame_url": "https://example.com/a.png"},
    "first-last": {
        **TEXT,
        "first_frame_url": "https://example.com/a.png",
        "last_frame_url": "asset://asset-1",
    },
    "references": {
        **TEXT,
        "reference_image_urls": ["https://example.com/r.png"],
        "reference_video_urls": ["https://example.com/r.mp4"],
        "reference_audio_urls": ["https://example.com/r.mp3"],
        "generate_audio": False,
        "web_search": True,
        "nsfw_checker": True,
        "aspect_ratio": "9:16",
    },
}


@pytest.fixture
async def ark(start_sandbox: SandboxFactory) -> AsyncIterator[Callable[..., ModelArkProvider]]:
    made: list[ModelArkProvider] = []

    def make(key: str = SANDBOX_KEY, **sandbox: Any) -> ModelArkProvider:
        base = start_sandbox(protocol="modelark", **sandbox)
        provider = ModelArkProvider(base + "/api/v3", key, channel="ark")
        provider.sandbox_url = base  # type: ignore[attr-defined]
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


async def _detail(provider: ModelArkProvider, task_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=provider.sandbox_url,  # type: ignore[attr-defined]
        headers={"authorization": f"Bearer {SANDBOX_KEY}"},
    ) as client:
        data: dict[str, Any] = (await client.get(f"/sandbox/tasks/{task_id}")).json()["data"]
        return data


@pytest.mark.parametrize("mode", list(MODES))
async def test_every_input_mode_reaches_the_upstream_as_its_content_roles(
    ark: Callable[..., ModelArkProvider], mode: str
) -> None:
    provider = ark()
    request = parse_request(MODES[mode])
    task_id = await provider.submit(request, "http://127.0.0.1:9/cb?task_id=task_x&token=t")
    assert task_id.startswith("cgt-")
    made = orjson.loads((await _detail(provider, task_id))["param"])
    given = request.as_accepted()
    for field in (
        "prompt",
        "first_frame_url",
        "last_frame_url",
        "reference_image_urls",
        "reference_video_urls",
        "reference_audio_urls",
        "generate_audio",
        "resolution",
        "aspect_ratio",
        "duration",
    ):
        assert made["input"].get(field) == given.get(field), field
    assert made["callBackUrl"].endswith("task_id=task_x&token=t")
    body = create_body(request, None)
    assert body["model"] == "dreamina-seedance-2-0-fast-260128"
    assert "web_search" not in body
    assert "nsfw_checker" not in body
    assert body["content"][0] == {"type": "text", "text": request.prompt}


async def test_statuses_go_from_queued_through_running_to_succeeded_with_a_video(
    ark: Callable[..., ModelArkProvider],
) -> None:
    provider = ark(waiting_s=0.1, queuing_s=0.1, generating_s=0.3)
    task_id = await provider.submit(parse_request(TEXT), None)
    seen: list[TaskState | None] = []
    deadline = time.monotonic() + 20
    while True:
        status = await provider.fetch_status(task_id)
        if not seen or seen[-1] != status.state:
            seen.append(status.state)
        if status.state is TaskState.SUCCESS:
            break
        assert time.monotonic() < deadline, seen
        await asyncio.sleep(0.05)
    assert seen[0] is TaskState.QUEUING
    assert TaskState.GENERATING in seen
    async with httpx.AsyncClient() as client:
        video = await client.get(status.result_urls[0])
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp"


async def test_a_failed_task_reports_its_code_and_the_list_finds_it_by_its_callback(
    ark: Callable[..., ModelArkProvider],
) -> None:
    provider = ark(waiting_s=0, queuing_s=0, generating_s=0, fail_share=1.0)
    callback = "http://127.0.0.1:9/cb?task_id=task_found&token=t"
    task_id = await provider.submit(parse_request(TEXT), callback)
    status = await provider.fetch_status(task_id)
    assert status.state is TaskState.FAIL
    assert status.fail_code == "501"
    found = await provider.find_created("task_found")
    assert found is not None
    assert found.upstream_task_id == task_id
    assert await provider.find_created("task_other") is None
    await provider.probe()


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("queued", TaskState.QUEUING),
        ("running", TaskState.GENERATING),
        ("succeeded", TaskState.SUCCESS),
        ("failed", TaskState.FAIL),
        ("expired", TaskState.FAIL),
        ("cancelled", TaskState.FAIL),
        ("paused-someday", None),
    ],
)
def test_every_status_maps_to_a_task_state_and_unknown_ones_are_not_final(
    raw: str, state: TaskState | None
) -> None:
    parsed = parse_task({"id": "cgt-1", "status": raw, "content": {"video_url": "https://x/v.mp4"}})
    assert parsed == UpstreamStatus(
        "cgt-1",
        state,
        result_urls=("https://x/v.mp4",),
        fail_code=raw if raw in ("failed", "expired", "cancelled") else None,
    )


@pytest.mark.parametrize(
    ("status", "code", "ours", "fault"),
    [
        (400, "MissingParameter", "upstream_rejected", "request"),
        (400, "InvalidParameter", "upstream_rejected", "request"),
        (400, "InvalidEndpoint.ClosedEndpoint", "upstream_model_unavailable", "operator"),
        (400, "SensitiveContentDetected", "content_policy", "request"),
        (400, "InputTextSensitiveContentDetected", "content_policy", "request"),
        (400, "InputImageSensitiveContentDetected", "content_policy", "request"),
        (401, "AuthenticationError", "upstream_auth", "operator"),
        (403, "AccountOverdueError", "upstream_credits", "operator"),
        (403, "AccessDenied", "upstream_auth", "operator"),
        (404, "InvalidEndpoint.NotFound", "upstream_model_unavailable", "operator"),
        (
            404,
            "InvalidEndpointOrModel.ModelIDAccessDisabled",
            "upstream_model_unavailable",
            "operator",
        ),
        (404, "ResourceNotFound", "upstream_not_found", "upstream"),
        (429, "RateLimitExceeded.EndpointRPMExceeded", "upstream_rate_limited", "upstream"),
        (429, "RateLimitExceeded.EndpointTPMExceeded", "upstream_rate_limited", "upstream"),
        (500, "InternalServiceError", "upstream_server_error", "upstream"),
        (503, "ServiceUnavailable", "upstream_overloaded", "upstream"),
    ],
)
def test_every_error_row_says_whose_fault_without_naming_the_provider(
    status: int, code: str, ours: str, fault: str
) -> None:
    error = error_for(status, code)
    assert (error.code, error.fault) == (ours, fault)
    assert "modelark" not in error.message.lower()
    assert "byteplus" not in error.message.lower()
    assert code not in error.message


@pytest.mark.parametrize(
    ("sandbox", "key", "expected"),
    [
        ({"faults": {"create": {"body_codes": {429: 1.0}}}}, SANDBOX_KEY, "upstream_rate_limited"),
        ({"faults": {"create": {"body_codes": {455: 1.0}}}}, SANDBOX_KEY, "upstream_overloaded"),
        ({"faults": {"create": {"http_500": 1.0}}}, SANDBOX_KEY, "upstream_server_error"),
        ({"faults": {"create": {"http_503": 1.0}}}, SANDBOX_KEY, "upstream_overloaded"),
        ({}, "wrong-key", "upstream_auth"),
        ({"credits": 0}, SANDBOX_KEY, "upstream_credits"),
    ],
)
async def test_the_sandbox_refuses_as_modelark_does_and_the_adaptor_reads_it(
    ark: Callable[..., ModelArkProvider], sandbox: dict[str, Any], key: str, expected: str
) -> None:
    provider = ark(key, **sandbox)
    with pytest.raises(UpstreamError) as refused:
        await provider.submit(parse_request(TEXT), None)
    assert refused.value.code == expected


async def test_a_request_the_upstream_finds_invalid_is_the_requests_fault(
    ark: Callable[..., ModelArkProvider],
) -> None:
    provider = ark()
    provider.models = {"seedance-2-fast": "dreamina-unknown-model"}
    with pytest.raises(UpstreamError) as refused:
        await provider.submit(parse_request(TEXT), None)
    assert refused.value.code == "upstream_model_unavailable"
    provider.models = {}
    with pytest.raises(UpstreamError) as missing:
        await provider.fetch_status("cgt-nothing")
    assert missing.value.code == "upstream_not_found"


def test_a_callback_names_its_task_by_id() -> None:
    provider = ModelArkProvider("http://127.0.0.1:9/api/v3", "k")
    assert (
        provider.read_callback({}, orjson.dumps({"id": "cgt-9", "status": "succeeded"})) == "cgt-9"
    )
