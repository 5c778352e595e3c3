"""The KIE adaptor against the sandbox served on loopback: requests, answers and every KIE code."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable

import orjson
import pytest

from reelgate.domain.request import parse_request
from reelgate.domain.task import TaskState
from reelgate.errors import InvalidRequest, Unauthorized, UpstreamError, UpstreamOutcomeUnknown
from reelgate.upstream.kie import KieProvider, meaning_of, parse_record
from tests.conftest import SANDBOX_KEY, SandboxFactory
from tests.sandbox_support import kie_client, record, stats
from tests.spec_examples import TEXT_TO_VIDEO as FIRST_EXAMPLE

ProviderFactory = Callable[..., KieProvider]


@pytest.fixture
async def kie(start_sandbox: SandboxFactory) -> AsyncIterator[ProviderFactory]:
    """Adaptors pointed at freshly started sandboxes; all closed when the test ends."""
    providers: list[KieProvider] = []

    def make(
        api_key: str = SANDBOX_KEY,
        timeout_s: float = 5.0,
        hmac_key: str | None = None,
        **sandbox: object,
    ) -> KieProvider:
        provider = KieProvider(
            start_sandbox(**sandbox), api_key, hmac_key=hmac_key, timeout_s=timeout_s
        )
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        await provider.aclose()


async def _until_final(provider: KieProvider, task_id: str) -> TaskState:
    for _ in range(100):
        status = await provider.fetch_status(task_id)
        if status.state in (TaskState.SUCCESS, TaskState.FAIL):
            return status.state
        await asyncio.sleep(0.05)
    raise AssertionError("the sandbox task did not finish within 5 s")


async def test_submit_sends_the_upstream_model_and_only_the_given_and_priced_fields(
    kie: ProviderFactory,
) -> None:
    provider = kie()
    request = parse_request(
        {"model": "seedance-2", "prompt": "a quiet harbour", "web_search": False}
    )
    task_id = await provider.submit(request, callback_url="https://gateway.example/cb/task_1")
    async with kie_client(provider.base_url) as client:
        sent = orjson.loads((await record(client, task_id))["param"])
    assert sent == {
        "model": "bytedance/seedance-2",
        "callBackUrl": "https://gateway.example/cb/task_1",
        "input": {
            "prompt": "a quiet harbour",
            "web_search": False,
            "resolution": "720p",
            "aspect_ratio": "16:9",
            "duration": 5,
        },
    }


async def test_a_created_task_is_followed_to_success_with_its_video_url(
    kie: ProviderFactory,
) -> None:
    provider = kie()
    task_id = await provider.submit(parse_request(FIRST_EXAMPLE), callback_url=None)
    first = await provider.fetch_status(task_id)
    assert first.upstream_task_id == task_id
    assert first.state in (TaskState.WAITING, TaskState.QUEUING)
    assert await _until_final(provider, task_id) is TaskState.SUCCESS
    status = await provider.fetch_status(task_id)
    assert len(status.result_urls) == 1
    assert status.result_urls[0].endswith(".mp4")


async def test_a_failed_task_reports_its_fail_code_and_message(kie: ProviderFactory) -> None:
    provider = kie(fail_share=1.0, fail_code="501", fail_message="content rejected")
    task_id = await provider.submit(parse_request(FIRST_EXAMPLE), callback_url=None)
    assert await _until_final(provider, task_id) is TaskState.FAIL
    status = await provider.fetch_status(task_id)
    assert (status.fail_code, status.fail_message, status.result_urls) == (
        "501",
        "content rejected",
        (),
    )


@pytest.mark.parametrize(
    ("code", "fault", "error_code", "retryable"),
    [
        (401, "operator", "upstream_auth", False),
        (402, "operator", "upstream_credits", False),
        (404, "upstream", "upstream_not_found", False),
        (408, "upstream", "upstream_timeout", True),
        (422, "request", "upstream_rejected", False),
        (429, "upstream", "upstream_rate_limited", True),
        (433, "operator", "upstream_quota", True),
        (455, "upstream", "upstream_maintenance", True),
        (500, "upstream", "upstream_server_error", True),
        (501, "upstream", "upstream_generation_failed", False),
        (505, "operator", "upstream_feature_disabled", False),
    ],
)
async def test_every_kie_body_code_on_create_becomes_an_upstream_error_naming_whose_fault(
    kie: ProviderFactory, code: int, fault: str, error_code: str, retryable: bool
) -> None:
    provider = kie(faults={"create": {"body_codes": {code: 1.0}}})
    with pytest.raises(UpstreamError) as raised:
        await provider.submit(parse_request(FIRST_EXAMPLE), callback_url=None)
    error = raised.value
    assert not isinstance(error, UpstreamOutcomeUnknown)
    assert (error.fault, error.code, error.retryable) == (fault, error_code, retryable)
    assert "kie" not in error.message.lower()


@pytest.mark.parametrize("status", [500, 503])
async def test_an_http_5xx_on_create_is_an_upstream_fault_and_not_an_unknown_outcome(
    kie: ProviderFactory, status: int
) -> None:
    provider = kie(faults={"create": {f"http_{status}": 1.0}})
    with pytest.raises(UpstreamError) as raised:
        await provider.submit(parse_request(FIRST_EXAMPLE), callback_url=None)
    assert not isinstance(raised.value, UpstreamOutcomeUnknown)
    assert raised.value.fault == "upstream"


async def test_a_wrong_key_is_the_operators_fault(kie: ProviderFactory) -> None:
    provider = kie(api_key="not-the-sandbox-key")
    with pytest.raises(UpstreamError) as raised:
        await provider.submit(parse_request(FIRST_EXAMPLE), callback_url=None)
    assert (raised.value.fault, raised.value.code) == ("operator", "upstream_auth")


async def test_an_empty_upstream_account_is_the_operators_fault(kie: ProviderFactory) -> None:
    provider = kie(credits=10)
    with pytest.raises(UpstreamError) as raised:
        await provider.submit(parse_request(FIRST_EXAMPLE), callback_url=None)
    assert (raised.value.fault, raised.value.code) == ("operator", "upstream_credits")


async def test_a_request_the_upstream_finds_invalid_is_the_requests_fault(
    kie: ProviderFactory,
) -> None:
    provider = kie()
    # Built without validation: the gateway would refuse it, the sandbox must too.
    request = parse_request(FIRST_EXAMPLE).model_copy(update={"duration": 99})
    with pytest.raises(UpstreamError) as raised:
        await provider.submit(request, callback_url=None)
    assert (raised.value.fault, raised.value.code) == ("request", "upstream_rejected")


async def test_an_unknown_task_is_not_found(kie: ProviderFactory) -> None:
    provider = kie()
    with pytest.raises(UpstreamError) as raised:
        await provider.fetch_status("task_bytedance_0")
    assert raised.value.code == "upstream_not_found"


@pytest.mark.parametrize("code", [429, 455, 500])
async def test_status_errors_on_record_info_are_retryable(kie: ProviderFactory, code: int) -> None:
    provider = kie(faults={"record": {"body_codes": {code: 1.0}}})
    with pytest.raises(UpstreamError) as raised:
        await provider.fetch_status("task_bytedance_1")
    assert raised.value.retryable
    assert raised.value.code == meaning_of(code).code


async def test_a_create_that_times_out_after_the_task_was_made_is_an_unknown_outcome(
    kie: ProviderFactory,
) -> None:
    provider = kie(timeout_s=0.5, hang_s=3, faults={"create": {"timeout_after_create": 1.0}})
    started = time.monotonic()
    with pytest.raises(UpstreamOutcomeUnknown):
        await provider.submit(parse_request(FIRST_EXAMPLE), callback_url=None)
    assert time.monotonic() - started < 2.5, "the adaptor's timeout must bound the wait"
    async with kie_client(provider.base_url) as client:
        assert (await stats(client))["created"] == 1


async def test_an_unreachable_upstream_is_a_refusal_not_an_unknown_outcome() -> None:
    provider = KieProvider("http://127.0.0.1:9", SANDBOX_KEY, connect_timeout_s=1)
    try:
        with pytest.raises(UpstreamError) as raised:
            await provider.submit(parse_request(FIRST_EXAMPLE), callback_url=None)
        assert not isinstance(raised.value, UpstreamOutcomeUnknown)
        assert raised.value.code == "upstream_unreachable"
    finally:
        await provider.aclose()


async def test_remaining_credits_are_read_and_fall_with_each_create(kie: ProviderFactory) -> None:
    provider = kie(credits=1000)
    assert await provider.credits() == 1000
    await provider.submit(parse_request(FIRST_EXAMPLE), callback_url=None)
    assert await provider.credits() == 1000 - 33 * 5  # seedance-2-fast 720p: 33 credits a second


def _signed(key: str, task_id: str, timestamp: str) -> str:
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _callback(task_id: str, state: str = "success") -> bytes:
    return orjson.dumps(
        {
            "code": 200,
            "msg": "success",
            "data": {
                "taskId": task_id,
                "state": state,
                "resultJson": orjson.dumps({"resultUrls": ["https://cdn.example/v.mp4"]}).decode(),
                "failCode": "",
                "failMsg": "",
            },
        }
    )


def test_a_signed_callback_names_its_task_and_nothing_else_is_taken_from_it() -> None:
    provider = KieProvider("http://127.0.0.1:9", "k", hmac_key="secret")
    timestamp = str(int(time.time()))
    headers = {
        "X-Webhook-Timestamp": timestamp,
        "X-Webhook-Signature": _signed("secret", "t1", timestamp),
    }
    assert provider.read_callback(headers, _callback("t1")) == "t1"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Webhook-Timestamp": "now", "X-Webhook-Signature": "x"},
        {"X-Webhook-Timestamp": "\u00b2", "X-Webhook-Signature": "x"},
        {"X-Webhook-Timestamp": "{now}", "X-Webhook-Signature": "forged"},
        {"X-Webhook-Timestamp": "{now}", "X-Webhook-Signature": "\u00e9"},
        {"X-Webhook-Timestamp": "{old}", "X-Webhook-Signature": "{old_signature}"},
    ],
    ids=["unsigned", "bad-timestamp", "unicode-digit", "forged", "non-ascii", "stale"],
)
def test_an_unsigned_forged_or_stale_callback_is_refused(headers: dict[str, str]) -> None:
    provider = KieProvider("http://127.0.0.1:9", "k", hmac_key="secret")
    now, old = str(int(time.time())), str(int(time.time()) - 3600)
    filled = {
        name: value.format(now=now, old=old, old_signature=_signed("secret", "t1", old))
        for name, value in headers.items()
    }
    with pytest.raises(Unauthorized) as raised:
        provider.read_callback(filled, _callback("t1"))
    assert raised.value.code == "invalid_callback_signature"


@pytest.mark.parametrize(
    "body",
    [
        {"data": {"taskId": "t1", "state": "generating"}},
        {"data": {"task_id": "t1", "state": "generating"}},
        {"taskId": "t1", "data": {"state": "generating"}},
    ],
    ids=["camel-case-id", "snake-case-id", "top-level-id"],
)
def test_callbacks_name_their_task_in_any_of_the_documented_places(body: dict[str, object]) -> None:
    provider = KieProvider("http://127.0.0.1:9", "k")
    assert provider.read_callback({}, orjson.dumps(body)) == "t1"


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1]", b'{"data": {"state": "success"}}', b'{"data": {"taskId": 7}}'],
    ids=["not-json", "not-an-object", "no-id", "id-not-text"],
)
def test_a_callback_that_names_no_task_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        KieProvider("http://127.0.0.1:9", "k").read_callback({}, body)


@pytest.mark.parametrize("state", ["paused", "", "SUCCESS", None])
def test_an_unknown_upstream_state_is_never_final(state: object) -> None:
    status = parse_record({"taskId": "t1", "state": state})
    assert status.state is None


def test_a_success_without_a_video_is_not_taken_as_final() -> None:
    assert parse_record({"taskId": "t1", "state": "success", "resultJson": ""}).state is None


def test_the_record_names_the_callback_link_the_task_was_created_with() -> None:
    param = orjson.dumps({"callBackUrl": "https://gw.example/cb?task_id=task_1&token=t"})
    status = parse_record({"taskId": "t1", "state": "waiting", "param": param.decode()})
    assert status.callback_url == "https://gw.example/cb?task_id=task_1&token=t"


@pytest.mark.parametrize("code", [600, 599, 418])
def test_codes_outside_the_table_are_still_upstream_errors(code: int) -> None:
    meaning = meaning_of(code)
    assert meaning.fault == "upstream"
    assert meaning.retryable
