"""The public API of the contract, over loopback HTTP, on both databases: create, poll,
authentication, body errors and limits, the model catalogue, and unknown routes."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from reelgate.domain.request import VideoGenerationRequest
from tests.conftest import GatewayFactory, RunningGateway
from tests.doubles import AcceptingProvider
from tests.integration.api_helpers import (
    BILLING_KEYS,
    CREATE_PATHS,
    ENVELOPE_KEYS,
    JSON_HEADERS,
    KIE_CREDITS,
    TASK_KEYS,
    VALID_REQUEST,
    assert_error,
    create_task,
    issue_key,
    reserved_micro_usdc,
    tier_id,
    tier_price,
)

# Create


@pytest.mark.parametrize("path", CREATE_PATHS)
async def test_create_answers_202_with_exactly_the_envelope_and_a_location(
    gateway: RunningGateway, api_key: str, path: str
) -> None:
    before = int(time.time())
    async with gateway.client(api_key) as client:
        created = await client.post(path, json=VALID_REQUEST)
    after = int(time.time())
    assert created.status_code == 202, created.text
    body = created.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["task_id"].startswith("task_")
    assert len(body["task_id"]) > len("task_") + 16
    assert body["object"] == "task"
    assert body["model"] == VALID_REQUEST["model"]
    assert body["type"] == "video"
    assert body["state"] == "waiting"
    assert isinstance(body["created_at"], int)
    assert before <= body["created_at"] <= after
    assert body["poll_url"] == f"/v1/tasks/{body['task_id']}"
    assert body["recommended_poll_interval_ms"] == 5000
    assert created.headers["location"] == body["poll_url"]


async def test_each_create_gets_its_own_task_id(gateway: RunningGateway, api_key: str) -> None:
    async with gateway.client(api_key) as client:
        ids = {(await create_task(client))["task_id"] for _ in range(3)}
    assert len(ids) == 3


# The task resource


async def test_new_task_resource_has_exactly_the_contract_keys_and_initial_values(
    gateway: RunningGateway, api_key: str
) -> None:
    async with gateway.client(api_key) as client:
        envelope = await create_task(client, {"model": "seedance-2", "prompt": "A red fox"})
        polled = await client.get(envelope["poll_url"])
    assert polled.status_code == 200, polled.text
    assert polled.headers["content-type"].startswith("application/json")
    task = polled.json()
    assert set(task) == TASK_KEYS
    assert {key: task[key] for key in ENVELOPE_KEYS} == envelope
    assert task["request"] == {
        "model": "seedance-2",
        "prompt": "A red fox",
        "resolution": "720p",
        "aspect_ratio": "16:9",
        "duration": 5,
    }
    assert task["result"] == {}
    assert task["error"] == {}
    assert task["progress"] == 0
    assert task["completed_at"] is None
    assert task["updated_at"] >= task["created_at"]
    assert task["webhook_delivery"] == {}
    price = tier_price("seedance-2", "720p", False)
    assert task["billing"] == {
        "status": "reserved",
        "tier": "720p_no_video",
        "price_per_second_micro_usdc": price,
        "duration": 5,
        "margin": 1.0,
        "reserve_amount_micro_usdc": price * 5,
        "actual_amount_micro_usdc": 0,
        "released_amount_micro_usdc": 0,
        "channel": "kie",
    }


FRAMES_REQUEST: dict[str, Any] = {
    "model": "seedance-2",
    "prompt": "Animate a product reveal from the first frame into the final packaging frame.",
    "first_frame_url": "https://example.com/first.png",
    "last_frame_url": "asset://asset-20260404242101-76djj",
    "return_last_frame": True,
    "generate_audio": False,
    "resolution": "1080p",
    "aspect_ratio": "21:9",
    "duration": 8,
    "web_search": False,
    "nsfw_checker": True,
    "callBackUrl": "https://hooks.example.com/reelgate-hook",
}
REFERENCES_REQUEST: dict[str, Any] = {
    "model": "seedance-2-fast",
    "prompt": "Use the references to create a fast, polished launch video.",
    "reference_image_urls": ["https://example.com/style.png", "asset://style-2"],
    "reference_video_urls": ["https://example.com/motion.mp4"],
    "reference_audio_urls": ["https://example.com/music.mp3"],
    "generate_audio": True,
    "resolution": "480p",
    "aspect_ratio": "9:16",
    "duration": 15,
    "web_search": True,
    "nsfw_checker": False,
}


@pytest.mark.parametrize(
    ("request_body", "video_input"),
    [(FRAMES_REQUEST, False), (REFERENCES_REQUEST, True)],
    ids=["frames", "references"],
)
async def test_task_request_holds_every_given_field_and_billing_follows_the_formula(
    gateway: RunningGateway, api_key: str, request_body: dict[str, Any], video_input: bool
) -> None:
    async with gateway.client(api_key) as client:
        envelope = await create_task(client, request_body)
        task = (await client.get(envelope["poll_url"])).json()
    assert task["request"] == request_body
    billing = task["billing"]
    assert set(billing) == BILLING_KEYS
    price = tier_price(request_body["model"], request_body["resolution"], video_input)
    assert billing["tier"] == tier_id(request_body["resolution"], video_input)
    assert billing["price_per_second_micro_usdc"] == price
    assert billing["duration"] == request_body["duration"]
    assert billing["margin"] == 1.0
    assert billing["reserve_amount_micro_usdc"] == price * request_body["duration"]
    assert billing["status"] == "reserved"
    assert billing["actual_amount_micro_usdc"] == 0
    assert billing["released_amount_micro_usdc"] == 0


async def test_empty_reference_video_array_counts_as_absent(
    gateway: RunningGateway, api_key: str
) -> None:
    body = {"model": "seedance-2", "prompt": "A red fox", "reference_video_urls": []}
    async with gateway.client(api_key) as client:
        envelope = await create_task(client, body)
        task = (await client.get(envelope["poll_url"])).json()
    assert "reference_video_urls" not in task["request"]
    assert task["billing"]["tier"] == "720p_no_video"
    assert (
        task["billing"]["reserve_amount_micro_usdc"] == tier_price("seedance-2", "720p", False) * 5
    )


async def test_upstream_task_id_never_appears_in_any_response(
    start_gateway: GatewayFactory,
) -> None:
    provider = AcceptingProvider()
    gateway = start_gateway(provider=provider)
    key = await gateway.account_with_key("alice")
    seen: list[str] = []
    async with gateway.client(key) as client:
        for path in CREATE_PATHS:
            created = await client.post(path, json=VALID_REQUEST)
            assert created.status_code == 202, created.text
            seen += [created.text, *created.headers.values()]
            for _ in range(3):
                polled = await client.get(created.json()["poll_url"])
                assert polled.status_code == 200, polled.text
                seen += [polled.text, *polled.headers.values()]
    assert len(provider.upstream_ids) == 2
    for upstream_id in provider.upstream_ids:
        assert not [text for text in seen if upstream_id in text]
    assert not [text for text in seen if "UPSTREAM-" in text]


# Polling


async def test_polling_twice_gives_identical_bodies(gateway: RunningGateway, api_key: str) -> None:
    async with gateway.client(api_key) as client:
        envelope = await create_task(client)
        first = await client.get(envelope["poll_url"])
        second = await client.get(envelope["poll_url"])
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    for response in (first, second):
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["cache-control"] == "no-store"


async def test_second_poll_is_answered_from_memory_not_the_database(
    gateway: RunningGateway, api_key: str
) -> None:
    async with gateway.client(api_key) as client:
        envelope = await create_task(client)
        first = await client.get(envelope["poll_url"])
        assert first.json()["progress"] == 0
        # Change the row behind the gateway's back, announcing nothing on the change feed: only a
        # body kept in memory can still say progress 0.
        engine = create_async_engine(gateway.settings.database_url)
        try:
            async with engine.begin() as conn:
                changed = await conn.execute(
                    sa.text("UPDATE tasks SET progress = 42 WHERE id = :id"),
                    {"id": envelope["task_id"]},
                )
                assert changed.rowcount == 1
        finally:
            await engine.dispose()
        second = await client.get(envelope["poll_url"])
    assert second.status_code == 200
    assert second.content == first.content


async def test_another_accounts_task_is_404_as_if_unknown(
    gateway: RunningGateway, api_key: str
) -> None:
    bob = (await issue_key(gateway, "bob"))["key"]
    async with gateway.client(api_key) as alice_client:
        envelope = await create_task(alice_client)
        await alice_client.get(envelope["poll_url"])
        await alice_client.get(envelope["poll_url"])  # now cached in memory for alice
    async with gateway.client(bob) as bob_client:
        foreign = await bob_client.get(envelope["poll_url"])
        unknown_id = "task_" + "0" * 26
        unknown = await bob_client.get(f"/v1/tasks/{unknown_id}")
    foreign_body = assert_error(foreign, 404, "not_found", None)
    unknown_body = assert_error(unknown, 404, "not_found", None)
    assert {k: v for k, v in foreign_body.items() if k != "message"} == {
        k: v for k, v in unknown_body.items() if k != "message"
    }
    assert (
        foreign_body["message"].replace(envelope["task_id"], unknown_id) == unknown_body["message"]
    )


UNKNOWN_TASK_IDS = {
    "well-formed": "task_" + "0" * 26,
    "short": "nope",
    "long": "task_" + "x" * 4000,
    "nul": "%00",
    "nul-suffix": "task_%00",
    "bad-utf8": "%FF%FE",
    "accent": "caf%C3%A9",
    "emoji": "%F0%9F%8E%AC",
}


async def test_unknown_task_id_is_404(gateway: RunningGateway, api_key: str) -> None:
    async with gateway.client(api_key) as client:
        await create_task(client)  # the account has a task; these ids are not it
    failures = []
    for name, task_id in UNKNOWN_TASK_IDS.items():
        # A connection of its own for each: a failed answer must not spill onto the next case.
        async with gateway.client(api_key) as client:
            polled = await client.get(f"/v1/tasks/{task_id}")
            try:
                assert_error(polled, 404, "not_found", None)
            except AssertionError as exc:
                failures.append(f"{name} ({task_id[:20]}): {polled.status_code} {exc}")
    assert not failures, "\n".join(failures)


# Authentication


def _bad_authorizations(key: str) -> dict[str, dict[str, str]]:
    """Headers that must not authenticate, by name, given a real key of the account."""
    basic = "Basic " + base64.b64encode(b"alice:pw").decode()
    return {
        "missing": {},
        "empty": {"authorization": ""},
        "basic-scheme": {"authorization": basic},
        "non-bearer-scheme-with-real-key": {"authorization": f"Token {key}"},
        "bare-real-key": {"authorization": key},
        "bearer-without-key": {"authorization": "Bearer"},
        "unknown-key": {"authorization": "Bearer rg_" + "A" * 43},
        "altered-key": {"authorization": f"Bearer {key}x"},
    }


def _check_401(answer: Any) -> None:
    assert_error(answer, 401, "unauthorized", None)
    assert answer.headers["www-authenticate"].lower().startswith("bearer"), answer.headers


async def test_create_without_a_valid_key_is_401_and_reserves_nothing(
    gateway: RunningGateway, api_key: str
) -> None:
    failures = []
    async with gateway.client() as client:
        for name, headers in _bad_authorizations(api_key).items():
            for path in CREATE_PATHS:
                answer = await client.post(path, json=VALID_REQUEST, headers=headers)
                try:
                    _check_401(answer)
                except AssertionError as exc:
                    failures.append(f"{name} on {path}: {exc}")
    assert not failures, "\n".join(failures)
    assert await reserved_micro_usdc(gateway, "alice") == 0


async def test_poll_of_a_cached_task_without_a_valid_key_is_401(
    gateway: RunningGateway, api_key: str
) -> None:
    async with gateway.client(api_key) as owner:
        envelope = await create_task(owner)
        for _ in range(2):  # the second answer comes from memory
            assert (await owner.get(envelope["poll_url"])).status_code == 200
    failures = []
    async with gateway.client() as client:
        for name, headers in _bad_authorizations(api_key).items():
            answer = await client.get(envelope["poll_url"], headers=headers)
            try:
                _check_401(answer)
            except AssertionError as exc:
                failures.append(f"{name}: {exc}")
    assert not failures, "\n".join(failures)


async def _until_unauthorized(
    client: Any, path: str, deadline_s: float = 2.5, pause_s: float = 0.02
) -> Any:
    """Poll ``path`` until it answers 401, for at most ``deadline_s``; the last answer."""
    give_up = time.monotonic() + deadline_s
    for _ in range(int(deadline_s / pause_s) + 1):
        answer = await client.get(path)
        if answer.status_code == 401 or time.monotonic() > give_up:
            return answer
        assert answer.status_code == 200, answer.text
        await asyncio.sleep(pause_s)
    return answer


async def test_revoked_key_is_401_on_poll_and_create_even_with_the_task_cached(
    gateway: RunningGateway,
) -> None:
    issued = await issue_key(gateway, "carol")
    async with gateway.client(issued["key"]) as client:
        envelope = await create_task(client)
        first = await client.get(envelope["poll_url"])
        second = await client.get(envelope["poll_url"])
        assert first.status_code == second.status_code == 200
        async with gateway.admin() as admin:
            revoked = await admin.post(f"/admin/keys/{issued['id']}/revoke")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["active"] is False
        polled = await _until_unauthorized(client, envelope["poll_url"])
        assert_error(polled, 401, "unauthorized", None)
        again = await client.get(envelope["poll_url"])
        assert_error(again, 401, "unauthorized", None)
        for path in CREATE_PATHS:
            assert_error(await client.post(path, json=VALID_REQUEST), 401, "unauthorized", None)
    assert (
        await reserved_micro_usdc(gateway, "carol")
        == tier_price("seedance-2-fast", "720p", False) * 5
    )


# Bodies


async def _post_each(
    gateway: RunningGateway, key: str, bodies: Mapping[str, bytes], check: Callable[[Any], object]
) -> list[str]:
    """POST each raw body to create; the names of those whose answer fails ``check``, with why."""
    failures = []
    for name, raw in bodies.items():
        async with gateway.client(key) as client:
            answer = await client.post(CREATE_PATHS[0], content=raw, headers=JSON_HEADERS)
            try:
                check(answer)
            except AssertionError as exc:
                failures.append(f"{name}: {exc}")
    return failures


NOT_JSON = {
    "empty": b"",
    "text": b"not json",
    "single-quotes": b"{'model': 'seedance-2', 'prompt': 'A red fox'}",
    "truncated": b'{"model": "seedance-2",',
    "form-encoded": b"model=seedance-2&prompt=A+red+fox",
    "trailing-garbage": b'{"model": "seedance-2", "prompt": "A red fox"} x',
}
NOT_AN_OBJECT = {
    "empty-array": b"[]",
    "array-of-request": b'[{"model": "seedance-2", "prompt": "A red fox"}]',
    "string": b'"text"',
    "number": b"42",
    "null": b"null",
    "boolean": b"true",
}


async def test_body_that_is_not_json_is_400(gateway: RunningGateway, api_key: str) -> None:
    failures = await _post_each(
        gateway, api_key, NOT_JSON, lambda answer: assert_error(answer, 400, "bad_request", "body")
    )
    assert not failures, "\n".join(failures)


async def test_body_that_is_not_an_object_is_400(gateway: RunningGateway, api_key: str) -> None:
    failures = await _post_each(
        gateway,
        api_key,
        NOT_AN_OBJECT,
        lambda answer: assert_error(answer, 400, "bad_request", "body"),
    )
    assert not failures, "\n".join(failures)


async def test_body_that_is_not_utf8_is_400(gateway: RunningGateway, api_key: str) -> None:
    raw = b'{"model": "seedance-2", "prompt": "caf\xe9 au lait at dawn"}'
    async with gateway.client(api_key) as client:
        answer = await client.post(CREATE_PATHS[0], content=raw, headers=JSON_HEADERS)
    assert_error(answer, 400, "bad_request", "body")


async def test_unknown_field_is_400_naming_it(gateway: RunningGateway, api_key: str) -> None:
    async with gateway.client(api_key) as client:
        for field_name in ("callbackUrl", "seed", "negative_prompt", "Model"):
            answer = await client.post(CREATE_PATHS[0], json={**VALID_REQUEST, field_name: "x"})
            body = assert_error(answer, 400, "bad_request", field_name)
            assert field_name in body["message"]


def _body_of_size(size: int) -> bytes:
    """A valid create body of exactly ``size`` bytes (the prompt pads it)."""
    empty = json.dumps({**VALID_REQUEST, "prompt": ""}).encode()
    body = json.dumps({**VALID_REQUEST, "prompt": "x" * (size - len(empty))}).encode()
    assert len(body) == size
    return body


LIMIT = 2048


async def test_body_over_the_limit_with_content_length_is_413(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(max_body_bytes=LIMIT)
    key = await gateway.account_with_key("alice")
    async with gateway.client(key) as client:
        answer = await client.post(
            CREATE_PATHS[0], content=_body_of_size(LIMIT + 1), headers=JSON_HEADERS
        )
    assert answer.request.headers["content-length"] == str(LIMIT + 1)
    assert_error(answer, 413, "payload_too_large")
    assert await reserved_micro_usdc(gateway, "alice") == 0


async def test_body_over_the_limit_without_content_length_is_413(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(max_body_bytes=LIMIT)
    key = await gateway.account_with_key("alice")
    body = _body_of_size(4 * LIMIT)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    async with gateway.client(key) as client:
        answer = await client.post(CREATE_PATHS[0], content=chunks(), headers=JSON_HEADERS)
    assert "content-length" not in answer.request.headers
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert_error(answer, 413, "payload_too_large")
    assert await reserved_micro_usdc(gateway, "alice") == 0


async def test_body_of_exactly_the_limit_is_accepted(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(max_body_bytes=LIMIT)
    key = await gateway.account_with_key("alice")
    async with gateway.client(key) as client:
        answer = await client.post(
            CREATE_PATHS[0], content=_body_of_size(LIMIT), headers=JSON_HEADERS
        )
    assert answer.status_code == 202, answer.text


# Models

TIER_KEYS = {"id", "label", "unit", "resolution", "video_input", "price_micro_usdc"}


def _expected_tiers(model: str, margin: Decimal = Decimal(1)) -> list[dict[str, Any]]:
    return [
        {
            "id": tier_id(resolution, video_input),
            "label": f"{resolution} with video input" if video_input else resolution,
            "unit": "second",
            "resolution": resolution,
            "video_input": video_input,
            "price_micro_usdc": int(tier_price(model, resolution, video_input) * margin),
        }
        for resolution, video_input in KIE_CREDITS[model]
    ]


def _tiers_by_id(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {tier["id"]: tier for tier in card["capabilities"]["pricing"]["tiers"]}


async def test_models_list_both_models_with_their_tiers_at_kie_prices(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as client:  # public: no key
        listed = await client.get("/v1/models")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["object"] == "list"
    cards = {card["id"]: card for card in body["data"]}
    assert sorted(cards) == ["seedance-2", "seedance-2-fast"]
    for model, tier_count in (("seedance-2", 6), ("seedance-2-fast", 4)):
        card = cards[model]
        assert card["object"] == "model"
        assert card["owned_by"] == "bytedance"
        assert card["upstream_id"] == f"bytedance/{model}"
        assert card["type"] == "video"
        assert card["modalities"] == ["video"]
        capabilities = card["capabilities"]
        assert capabilities["async_supported"] is True
        assert capabilities["request_mode"] == ["task"]
        assert capabilities["pricing"]["mode"] == "per_second_resolution_video_input"
        tiers = capabilities["pricing"]["tiers"]
        assert len(tiers) == tier_count
        assert all(set(tier) == TIER_KEYS for tier in tiers)
        assert _tiers_by_id(card) == {tier["id"]: tier for tier in _expected_tiers(model)}


async def test_models_show_the_parameters_each_model_accepts(gateway: RunningGateway) -> None:
    async with gateway.client() as client:
        cards = {card["id"]: card for card in (await client.get("/v1/models")).json()["data"]}
    for model, resolutions in (
        ("seedance-2", ["480p", "720p", "1080p"]),
        ("seedance-2-fast", ["480p", "720p"]),
    ):
        parameters = {p["name"]: p for p in cards[model]["capabilities"]["parameters"]}
        assert set(parameters) == set(VideoGenerationRequest.model_fields) - {"model"}
        assert parameters["resolution"]["enum"] == resolutions
        assert parameters["resolution"]["default"] == "720p"
        assert parameters["aspect_ratio"]["default"] == "16:9"
        assert (parameters["duration"]["minimum"], parameters["duration"]["maximum"]) == (4, 15)
        assert parameters["duration"]["default"] == 5
        assert parameters["prompt"]["required"] is True


async def test_model_card_is_the_listed_model(gateway: RunningGateway) -> None:
    async with gateway.client() as client:
        listed = (await client.get("/v1/models")).json()
        for model in ("seedance-2", "seedance-2-fast"):
            card = await client.get(f"/v1/models/{model}")
            assert card.status_code == 200, card.text
            assert card.json() == next(entry for entry in listed["data"] if entry["id"] == model)


async def test_unknown_model_is_404(gateway: RunningGateway) -> None:
    async with gateway.client() as client:
        for model in ("seedance-3", "SEEDANCE-2", "bytedance%2Fseedance-2", "%00", "x" * 3000):
            answer = await client.get(f"/v1/models/{model}")
            assert_error(answer, 404, "not_found", None)


async def test_margin_is_included_in_shown_prices_and_reservations(
    start_gateway: GatewayFactory,
) -> None:
    margin = Decimal("1.5")
    gateway = start_gateway(channel_margins={"kie": margin})
    key = await gateway.account_with_key("alice")
    async with gateway.client(key) as client:
        cards = {card["id"]: card for card in (await client.get("/v1/models")).json()["data"]}
        single = (await client.get("/v1/models/seedance-2")).json()
        envelope = await create_task(client, REFERENCES_REQUEST)
        task = (await client.get(envelope["poll_url"])).json()
    for model in KIE_CREDITS:
        assert _tiers_by_id(cards[model]) == {
            tier["id"]: tier for tier in _expected_tiers(model, margin)
        }
    assert single == cards["seedance-2"]
    base = tier_price("seedance-2-fast", "480p", True)
    billing = task["billing"]
    assert billing["margin"] == 1.5
    assert billing["price_per_second_micro_usdc"] == base
    assert billing["reserve_amount_micro_usdc"] == int(base * 15 * margin)
    assert await reserved_micro_usdc(gateway, "alice") == int(base * 15 * margin)


async def test_cost_is_rounded_half_up_once_at_the_end(start_gateway: GatewayFactory) -> None:
    # 45,000 x 5 x 1.00002 = 225,004.5 exactly: half up gives 225,005.
    gateway = start_gateway(channel_margins={"kie": Decimal("1.00002")})
    key = await gateway.account_with_key("alice")
    body = {
        "model": "seedance-2-fast",
        "prompt": "A red fox",
        "resolution": "480p",
        "reference_video_urls": ["https://example.com/motion.mp4"],
    }
    async with gateway.client(key) as client:
        task = (await client.get((await create_task(client, body))["poll_url"])).json()
    assert task["billing"]["price_per_second_micro_usdc"] == 45_000
    assert task["billing"]["reserve_amount_micro_usdc"] == 225_005


# Routes

UNKNOWN_ROUTES = [
    ("GET", "/"),
    ("GET", "/v1"),
    ("GET", "/v1/nothing"),
    ("POST", "/v1/videos"),
    ("GET", "/v1/task"),
    ("GET", "/v1/tasks/task_1/extra"),
    ("POST", "/v1/video/generation"),
]
WRONG_METHODS = [
    ("DELETE", "/v1/models"),
    ("POST", "/v1/models/seedance-2"),
    ("GET", "/v1/videos/generations"),
    ("PUT", "/v1/video/generations"),
    ("POST", "/v1/tasks/task_1"),
    ("DELETE", "/v1/tasks/task_1"),
    ("POST", "/v1/tasks"),
    ("DELETE", "/v1/account"),
]


async def _request_each(
    gateway: RunningGateway,
    key: str,
    routes: list[tuple[str, str]],
    check: Callable[[str, Any], object],
) -> list[str]:
    failures = []
    async with gateway.client(key) as client:
        for method, path in routes:
            answer = await client.request(method, path)
            try:
                check(method, answer)
            except AssertionError as exc:
                failures.append(f"{method} {path}: {exc}")
    return failures


async def test_unknown_route_is_404_with_the_error_body(
    gateway: RunningGateway, api_key: str
) -> None:
    failures = await _request_each(
        gateway, api_key, UNKNOWN_ROUTES, lambda _, answer: assert_error(answer, 404, "not_found")
    )
    assert not failures, "\n".join(failures)


async def test_wrong_method_is_405_with_the_error_body(
    gateway: RunningGateway, api_key: str
) -> None:
    failures = await _request_each(
        gateway, api_key, WRONG_METHODS, lambda _, answer: assert_error(answer, 405, None, None)
    )
    assert not failures, "\n".join(failures)


def _names_allowed_methods(method: str, answer: Any) -> None:
    assert answer.status_code == 405, answer.text
    allow = answer.headers.get("allow", "")
    allowed = {part.strip() for part in allow.split(",") if part.strip()}
    assert allowed, f"no Allow header: {dict(answer.headers)}"
    assert method not in allowed, allow


async def test_wrong_method_405_names_the_allowed_methods(
    gateway: RunningGateway, api_key: str
) -> None:
    # RFC 9110 section 15.5.6: a 405 response MUST carry an Allow header.
    failures = await _request_each(gateway, api_key, WRONG_METHODS, _names_allowed_methods)
    assert not failures, "\n".join(failures)
