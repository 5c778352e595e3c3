"""Malformed create bodies: each gets a 400 error body, never a 500, and is never charged."""

from __future__ import annotations

import json
from typing import Any, Final

import pytest

from tests.conftest import RunningGateway
from tests.integration.api_helpers import (
    CREATE_PATHS,
    JSON_HEADERS,
    assert_error,
    reserved_micro_usdc,
)

BASE: Final[dict[str, Any]] = {
    "model": "seedance-2-fast",
    "prompt": "A calm lake at dawn",
    "duration": 5,
}
FRAME: Final = "https://example.com/first.png"


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def _with(**fields: Any) -> bytes:
    return _json({**BASE, **fields})


def _nested(depth: int, leaf: object) -> object:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


_HEAD = b'{"model": "seedance-2-fast", '

# Every body here is invalid however it is read; each must get a 400 naming a param.
MALFORMED: Final[dict[str, bytes]] = {
    # Wrong types, field by field.
    "model-number": _with(model=2),
    "model-null": _with(model=None),
    "model-object": _with(model={"id": "seedance-2"}),
    "prompt-number": _with(prompt=12345),
    "prompt-array": _with(prompt=["A calm", "lake"]),
    "first-frame-number": _with(first_frame_url=1),
    "last-frame-array": _with(first_frame_url=FRAME, last_frame_url=[FRAME]),
    "reference-images-string": _with(reference_image_urls=FRAME),
    "reference-videos-object": _with(reference_video_urls={"url": FRAME}),
    "reference-audios-numbers": _with(reference_audio_urls=[1, 2]),
    "return-last-frame-string": _with(return_last_frame="true"),
    "generate-audio-number": _with(generate_audio=1),
    "resolution-number": _with(resolution=720),
    "aspect-ratio-float": _with(aspect_ratio=1.777),
    "duration-string": _with(duration="5"),
    "duration-fraction": _with(duration=5.5),
    "duration-integral-float": _with(duration=5.0),
    "duration-boolean": _with(duration=True),
    "web-search-string": _with(web_search="false"),
    "nsfw-checker-number": _with(nsfw_checker=0),
    "callback-url-boolean": _with(callBackUrl=False),
    # Huge numbers and sizes.
    "duration-int64-max": _with(duration=2**63 - 1),
    "duration-beyond-uint64": _with(duration=2**64),
    "duration-thirty-digits": _with(duration=10**30),
    "duration-huge-negative": _with(duration=-(10**20)),
    "duration-overflows-double": _HEAD + b'"prompt": "A calm lake", "duration": 1e400}',
    "prompt-over-max-length": _with(prompt="x" * 20_001),
    # Nested objects and deeply nested arrays.
    "prompt-nested-object": _with(prompt={"text": {"text": {"text": "A calm lake"}}}),
    "unknown-nested-object": _with(options={"a": {"b": {"c": {}}}}),
    "reference-images-nested-64": _with(reference_image_urls=_nested(64, FRAME)),
    "prompt-nested-beyond-parser-limit": (
        _HEAD + b'"prompt": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
    ),
    "body-array-nested-100000": b"[" * 100_000 + b"]" * 100_000,
    # Unicode look-alikes.
    "model-unicode-hyphen": _with(model="seedance\u20102-fast"),
    "resolution-fullwidth-digits": _with(resolution="\uff17\uff12\uff10p"),
    "aspect-ratio-ratio-sign": _with(aspect_ratio="16\u22369"),
    "unknown-field-with-umlaut": _with(**{"pr\u00f6mpt": "A calm lake"}),
    "asset-id-emoji": _with(first_frame_url="asset://\U0001f3ac"),
    # NUL characters, escaped and raw.
    "prompt-with-nul": _with(prompt="A calm\u0000lake"),
    "model-with-nul": _with(model="seedance-2-fast\u0000"),
    "key-with-nul": _with(**{"duration\u0000": 5}),
    "url-with-nul": _with(first_frame_url="https://example.com/a\u0000.png"),
    "callback-url-with-nul": _with(callBackUrl="http://127.0.0.1:9/\u0000hook"),
    "raw-nul-byte-in-prompt": _HEAD + b'"prompt": "A calm\x00lake"}',
    # Lone surrogates, as escapes and as (invalid) UTF-8.
    "prompt-lone-high-surrogate": _HEAD + b'"prompt": "A calm \\ud800 lake"}',
    "prompt-lone-low-surrogate": _HEAD + b'"prompt": "A calm \\udfff lake"}',
    "key-lone-surrogate": _HEAD + b'"prompt": "A calm lake", "\\ud800": 1}',
    "prompt-utf8-encoded-surrogate": _HEAD + b'"prompt": "A calm \xed\xa0\x80 lake"}',
    # Duplicate keys, neither value valid.
    "duplicate-duration": _HEAD + b'"prompt": "A calm lake", "duration": "5", "duration": 99}',
    "duplicate-model": b'{"model": "veo-3", "prompt": "A calm lake", "model": "seedance-3"}',
}


async def test_malformed_create_bodies_get_a_400_error_body_never_a_500_and_reserve_nothing(
    gateway: RunningGateway, api_key: str
) -> None:
    assert all(len(raw) < gateway.settings.max_body_bytes for raw in MALFORMED.values())
    failures = []
    for name, raw in MALFORMED.items():
        # A connection of its own for each: a failed answer must not spill onto the next case.
        async with gateway.client(api_key) as client:
            answer = await client.post(CREATE_PATHS[0], content=raw, headers=JSON_HEADERS)
        try:
            body = assert_error(answer, 400, "bad_request")
            assert body["param"], body
        except AssertionError as exc:
            failures.append(f"{name}: {answer.status_code} {exc}")
    assert not failures, "\n".join(failures)
    assert await reserved_micro_usdc(gateway, "alice") == 0


@pytest.mark.parametrize(
    ("raw", "param", "code", "says"),
    [
        (
            _HEAD + b'"prompt": "A calm lake", "duration": 99, "duration": 4}',
            "duration",
            "duplicate_key",
            "'duration' appears more than once",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "body", "json_too_deep", "deeper than 64 levels"),
        (
            _HEAD + b'"prompt": "A calm lake", "duration": 1e309}',
            "body",
            "number_out_of_range",
            "out of range",
        ),
    ],
    ids=["duplicate-key", "nested-100000", "number-1e309"],
)
async def test_create_bodies_are_told_what_is_wrong_with_their_json(
    gateway: RunningGateway, api_key: str, raw: bytes, param: str, code: str, says: str
) -> None:
    async with gateway.client(api_key) as client:
        answer = await client.post(CREATE_PATHS[0], content=raw, headers=JSON_HEADERS)
    body = assert_error(answer, 400, "bad_request", param)
    assert body["code"] == code, body
    assert says in body["message"], body
    assert await reserved_micro_usdc(gateway, "alice") == 0
