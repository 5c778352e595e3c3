"""The create request's rules, from the specification and contract.md, as tables.

Accepted bodies must come back from ``as_accepted()`` with defaults applied and absent optional
fields left out; rejected bodies must raise ``InvalidRequest`` naming the offending field in
``param``, with a ``code`` and a message that says what would be accepted.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reelgate.domain.request import parse_request
from reelgate.errors import InvalidRequest
from tests.spec_examples import FIRST_AND_LAST_FRAME as SPEC_FIRST_AND_LAST_FRAME
from tests.spec_examples import MULTIMODAL as SPEC_MULTIMODAL
from tests.spec_examples import TEXT_TO_VIDEO as SPEC_TEXT_TO_VIDEO

# The three example bodies of the specification, verbatim.

MODEL = "seedance-2"
PROMPT = "A red fox running through snow."
BASE: dict[str, Any] = {"model": MODEL, "prompt": PROMPT}
DEFAULTS: dict[str, Any] = {"resolution": "720p", "aspect_ratio": "16:9", "duration": 5}

IMG = "https://example.com/a.png"
VID = "https://example.com/a.mp4"
AUD = "https://example.com/a.mp3"
ASSET = "asset://asset-20260404242101-76djj"

REFERENCE_ARRAYS = ("reference_image_urls", "reference_video_urls", "reference_audio_urls")
BOOLEAN_FIELDS = ("return_last_frame", "generate_audio", "web_search", "nsfw_checker")
MEDIA_ACCEPTS = "an http(s) URL or an asset:// ID"


def body(**fields: Any) -> dict[str, Any]:
    """The minimal valid body with ``fields`` added or replaced."""
    return {**BASE, **fields}


def without(key: str) -> dict[str, Any]:
    return {k: v for k, v in BASE.items() if k != key}


def rejection(payload: object) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(payload)
    return caught.value


# --------------------------------------------------------------------------------------------
# Accepted requests
# --------------------------------------------------------------------------------------------

ACCEPTED: list[Any] = [
    pytest.param(SPEC_TEXT_TO_VIDEO, SPEC_TEXT_TO_VIDEO, id="spec-example-text-to-video"),
    pytest.param(
        SPEC_FIRST_AND_LAST_FRAME, SPEC_FIRST_AND_LAST_FRAME, id="spec-example-first-and-last-frame"
    ),
    pytest.param(SPEC_MULTIMODAL, SPEC_MULTIMODAL, id="spec-example-multimodal"),
    pytest.param(BASE, {**BASE, **DEFAULTS}, id="prompt-only-gets-defaults"),
    pytest.param(
        body(first_frame_url=IMG),
        {**BASE, "first_frame_url": IMG, **DEFAULTS},
        id="first-frame-only",
    ),
    pytest.param(
        body(first_frame_url=ASSET, last_frame_url="asset://asset-2"),
        {**BASE, "first_frame_url": ASSET, "last_frame_url": "asset://asset-2", **DEFAULTS},
        id="asset-ids-as-frames-pass-unchanged",
    ),
    pytest.param(
        body(
            reference_image_urls=[ASSET, IMG],
            reference_video_urls=["asset://vid_1.a"],
            reference_audio_urls=["asset://AUD-9"],
        ),
        {
            **BASE,
            "reference_image_urls": [ASSET, IMG],
            "reference_video_urls": ["asset://vid_1.a"],
            "reference_audio_urls": ["asset://AUD-9"],
            **DEFAULTS,
        },
        id="asset-ids-in-reference-arrays-pass-unchanged",
    ),
    pytest.param(
        body(reference_image_urls=[], reference_video_urls=[], reference_audio_urls=[]),
        {**BASE, **DEFAULTS},
        id="empty-arrays-are-absent",
    ),
    pytest.param(
        body(
            first_frame_url=IMG,
            last_frame_url=IMG,
            reference_image_urls=[],
            reference_video_urls=[],
            reference_audio_urls=[],
        ),
        {**BASE, "first_frame_url": IMG, "last_frame_url": IMG, **DEFAULTS},
        id="empty-arrays-do-not-clash-with-frames",
    ),
    pytest.param(
        body(
            first_frame_url=None,
            last_frame_url=None,
            reference_image_urls=None,
            reference_video_urls=None,
            reference_audio_urls=None,
            return_last_frame=None,
            generate_audio=None,
            web_search=None,
            nsfw_checker=None,
            callBackUrl=None,
        ),
        {**BASE, **DEFAULTS},
        id="null-optional-fields-are-absent",
    ),
    pytest.param(
        body(
            reference_image_urls=[f"https://example.com/{i}.png" for i in range(9)],
            reference_video_urls=[f"https://example.com/{i}.mp4" for i in range(3)],
            reference_audio_urls=[f"https://example.com/{i}.mp3" for i in range(3)],
        ),
        {
            **BASE,
            "reference_image_urls": [f"https://example.com/{i}.png" for i in range(9)],
            "reference_video_urls": [f"https://example.com/{i}.mp4" for i in range(3)],
            "reference_audio_urls": [f"https://example.com/{i}.mp3" for i in range(3)],
            **DEFAULTS,
        },
        id="max-array-sizes-9-3-3",
    ),
    pytest.param(body(duration=4), {**BASE, **DEFAULTS, "duration": 4}, id="duration-4"),
    pytest.param(body(duration=15), {**BASE, **DEFAULTS, "duration": 15}, id="duration-15"),
    pytest.param(body(prompt="abc"), {**BASE, **DEFAULTS, "prompt": "abc"}, id="prompt-3-chars"),
    pytest.param(
        body(prompt="p" * 20_000), {**BASE, **DEFAULTS, "prompt": "p" * 20_000}, id="prompt-20000"
    ),
    pytest.param(
        body(prompt="é" * 20_000),
        {**BASE, **DEFAULTS, "prompt": "é" * 20_000},
        id="prompt-20000-chars-counted-as-characters-not-bytes",
    ),
    pytest.param(
        body(
            return_last_frame=True,
            generate_audio=True,
            web_search=True,
            nsfw_checker=True,
            callBackUrl="https://hooks.example.com/seedance?x=1",
        ),
        {
            **BASE,
            **DEFAULTS,
            "return_last_frame": True,
            "generate_audio": True,
            "web_search": True,
            "nsfw_checker": True,
            "callBackUrl": "https://hooks.example.com/seedance?x=1",
        },
        id="pass-through-booleans-and-callback",
    ),
    pytest.param(
        body(callBackUrl="http://127.0.0.1:8080/cb"),
        {**BASE, **DEFAULTS, "callBackUrl": "http://127.0.0.1:8080/cb"},
        id="callback-plain-http-with-port",
    ),
    pytest.param(
        body(model="seedance-2", resolution="1080p"),
        {**BASE, **DEFAULTS, "resolution": "1080p"},
        id="seedance-2-offers-1080p",
    ),
]


@pytest.mark.parametrize(("payload", "accepted"), ACCEPTED)
def test_valid_body_is_accepted_with_defaults_and_without_absent_fields(
    payload: dict[str, Any], accepted: dict[str, Any]
) -> None:
    assert parse_request(copy.deepcopy(payload)).as_accepted() == accepted


@pytest.mark.parametrize("duration", range(4, 16), ids=lambda d: f"duration-{d}")
def test_every_integer_duration_from_4_to_15_is_accepted(duration: int) -> None:
    assert parse_request(body(duration=duration)).duration == duration


@pytest.mark.parametrize(
    ("model", "resolution"),
    [
        ("seedance-2", "480p"),
        ("seedance-2", "720p"),
        ("seedance-2", "1080p"),
        ("seedance-2-fast", "480p"),
        ("seedance-2-fast", "720p"),
    ],
    ids=lambda v: v,
)
def test_each_resolution_the_model_offers_is_accepted(model: str, resolution: str) -> None:
    request = parse_request(body(model=model, resolution=resolution))
    assert (request.model, request.resolution) == (model, resolution)


@pytest.mark.parametrize("aspect_ratio", ["1:1", "4:3", "3:4", "16:9", "9:16", "21:9", "adaptive"])
def test_each_aspect_ratio_is_accepted(aspect_ratio: str) -> None:
    assert parse_request(body(aspect_ratio=aspect_ratio)).aspect_ratio == aspect_ratio


@pytest.mark.parametrize("field", BOOLEAN_FIELDS)
@pytest.mark.parametrize("value", [True, False], ids=["true", "false"])
def test_json_boolean_is_accepted_and_passed_through(field: str, value: bool) -> None:
    assert parse_request(body(**{field: value})).as_accepted()[field] is value


VIDEO_INPUT: list[Any] = [
    pytest.param(BASE, False, id="no-references"),
    pytest.param(body(reference_video_urls=[]), False, id="empty-video-array"),
    pytest.param(body(reference_video_urls=None), False, id="null-video-array"),
    pytest.param(body(reference_image_urls=[IMG]), False, id="images-only"),
    pytest.param(body(reference_audio_urls=[AUD]), False, id="audio-only"),
    pytest.param(body(first_frame_url=IMG, last_frame_url=IMG), False, id="frames"),
    pytest.param(body(reference_video_urls=[VID]), True, id="one-video"),
    pytest.param(body(reference_video_urls=[ASSET]), True, id="video-asset-id"),
    pytest.param(SPEC_MULTIMODAL, True, id="spec-multimodal-example"),
]


@pytest.mark.parametrize(("payload", "video_input"), VIDEO_INPUT)
def test_video_input_is_true_only_with_non_empty_reference_video_urls(
    payload: dict[str, Any], video_input: bool
) -> None:
    assert parse_request(payload).video_input is video_input


# --------------------------------------------------------------------------------------------
# Rejected requests: (body, param, code, a fragment of the message saying what is accepted)
# --------------------------------------------------------------------------------------------

INVALID = "invalid_parameter"
MISSING = "missing_parameter"
UNKNOWN = "unknown_parameter"

MODEL_ACCEPTS = "seedance-2, seedance-2-fast"
PROMPT_ACCEPTS = "3 to 20000"
RESOLUTION_ACCEPTS = "480p, 720p, 1080p"
ASPECT_ACCEPTS = "1:1, 4:3, 3:4, 16:9, 9:16, 21:9, adaptive"
DURATION_ACCEPTS = "4 to 15"
BOOLEAN_ACCEPTS = "JSON boolean"

REJECTED: list[Any] = [
    # model
    pytest.param(body(model="seedance-3"), "model", INVALID, MODEL_ACCEPTS, id="model-unknown"),
    pytest.param(
        body(model="bytedance/seedance-2"),
        "model",
        INVALID,
        MODEL_ACCEPTS,
        id="model-upstream-id-is-not-public",
    ),
    pytest.param(body(model="Seedance-2"), "model", INVALID, MODEL_ACCEPTS, id="model-wrong-case"),
    pytest.param(body(model=""), "model", INVALID, MODEL_ACCEPTS, id="model-empty"),
    pytest.param(body(model=None), "model", INVALID, MODEL_ACCEPTS, id="model-null"),
    pytest.param(without("model"), "model", MISSING, MODEL_ACCEPTS, id="model-missing"),
    # prompt
    pytest.param(without("prompt"), "prompt", MISSING, PROMPT_ACCEPTS, id="prompt-missing"),
    pytest.param(body(prompt=""), "prompt", INVALID, PROMPT_ACCEPTS, id="prompt-empty"),
    pytest.param(body(prompt="ab"), "prompt", INVALID, PROMPT_ACCEPTS, id="prompt-2-chars"),
    pytest.param(
        body(prompt="p" * 20_001), "prompt", INVALID, PROMPT_ACCEPTS, id="prompt-20001-chars"
    ),
    pytest.param(body(prompt="   "), "prompt", INVALID, "not blank", id="prompt-blank-spaces"),
    pytest.param(body(prompt=" \t\n "), "prompt", INVALID, "not blank", id="prompt-blank-mixed"),
    pytest.param(body(prompt="ab\x00cd"), "prompt", INVALID, "NUL", id="prompt-with-nul"),
    pytest.param(body(prompt=12345), "prompt", INVALID, PROMPT_ACCEPTS, id="prompt-number"),
    pytest.param(body(prompt=None), "prompt", INVALID, PROMPT_ACCEPTS, id="prompt-null"),
    pytest.param(body(prompt=["abc"]), "prompt", INVALID, PROMPT_ACCEPTS, id="prompt-array"),
    # resolution
    pytest.param(
        body(resolution="4k"), "resolution", INVALID, RESOLUTION_ACCEPTS, id="resolution-4k"
    ),
    pytest.param(
        body(resolution="720P"), "resolution", INVALID, RESOLUTION_ACCEPTS, id="resolution-case"
    ),
    pytest.param(
        body(resolution="720"), "resolution", INVALID, RESOLUTION_ACCEPTS, id="resolution-no-p"
    ),
    pytest.param(
        body(resolution=720), "resolution", INVALID, RESOLUTION_ACCEPTS, id="resolution-number"
    ),
    pytest.param(
        body(model="seedance-2-fast", resolution="1080p"),
        "resolution",
        INVALID,
        "480p, 720p",
        id="seedance-2-fast-has-no-1080p",
    ),
    # aspect_ratio
    pytest.param(
        body(aspect_ratio="2:1"), "aspect_ratio", INVALID, ASPECT_ACCEPTS, id="aspect-ratio-2-1"
    ),
    pytest.param(
        body(aspect_ratio="16/9"), "aspect_ratio", INVALID, ASPECT_ACCEPTS, id="aspect-ratio-slash"
    ),
    pytest.param(
        body(aspect_ratio="auto"), "aspect_ratio", INVALID, ASPECT_ACCEPTS, id="aspect-ratio-auto"
    ),
    pytest.param(
        body(aspect_ratio="Adaptive"),
        "aspect_ratio",
        INVALID,
        ASPECT_ACCEPTS,
        id="aspect-ratio-case",
    ),
    # duration
    pytest.param(body(duration=5.0), "duration", INVALID, DURATION_ACCEPTS, id="duration-float"),
    pytest.param(body(duration=5.5), "duration", INVALID, DURATION_ACCEPTS, id="duration-fraction"),
    pytest.param(body(duration="5"), "duration", INVALID, DURATION_ACCEPTS, id="duration-string"),
    pytest.param(body(duration=True), "duration", INVALID, DURATION_ACCEPTS, id="duration-true"),
    pytest.param(body(duration=False), "duration", INVALID, DURATION_ACCEPTS, id="duration-false"),
    pytest.param(body(duration=3), "duration", INVALID, DURATION_ACCEPTS, id="duration-3"),
    pytest.param(body(duration=16), "duration", INVALID, DURATION_ACCEPTS, id="duration-16"),
    pytest.param(body(duration=0), "duration", INVALID, DURATION_ACCEPTS, id="duration-0"),
    pytest.param(body(duration=-5), "duration", INVALID, DURATION_ACCEPTS, id="duration-negative"),
    # input modes
    pytest.param(
        body(last_frame_url=IMG),
        "last_frame_url",
        INVALID,
        "requires first_frame_url",
        id="last-frame-without-first",
    ),
    *[
        pytest.param(
            body(**frames, **{array: [ref]}),
            array,
            INVALID,
            "cannot be combined with first_frame_url",
            id=f"{frames_id}-with-{array}",
        )
        for frames_id, frames in (
            ("first-frame", {"first_frame_url": IMG}),
            ("first-and-last-frame", {"first_frame_url": IMG, "last_frame_url": IMG}),
        )
        for array, ref in zip(REFERENCE_ARRAYS, (IMG, VID, AUD), strict=True)
    ],
    # array sizes and types
    pytest.param(
        body(reference_image_urls=[IMG] * 10),
        "reference_image_urls",
        INVALID,
        "at most 9",
        id="reference-images-10",
    ),
    pytest.param(
        body(reference_video_urls=[VID] * 4),
        "reference_video_urls",
        INVALID,
        "at most 3",
        id="reference-videos-4",
    ),
    pytest.param(
        body(reference_audio_urls=[AUD] * 4),
        "reference_audio_urls",
        INVALID,
        "at most 3",
        id="reference-audios-4",
    ),
    *[
        pytest.param(
            body(**{array: ref}), array, INVALID, "an array of", id=f"{array}-given-as-a-string"
        )
        for array, ref in zip(REFERENCE_ARRAYS, (IMG, VID, AUD), strict=True)
    ],
    *[
        pytest.param(
            body(**{array: {"url": IMG}}), array, INVALID, "an array of", id=f"{array}-as-object"
        )
        for array in REFERENCE_ARRAYS
    ],
    # callBackUrl
    pytest.param(
        body(callBackUrl="ftp://example.com/hook"),
        "callBackUrl",
        INVALID,
        "http(s) URL",
        id="callback-ftp",
    ),
    pytest.param(
        body(callBackUrl="asset://asset-1"),
        "callBackUrl",
        INVALID,
        "http(s) URL",
        id="callback-asset-id",
    ),
    pytest.param(
        body(callBackUrl="example.com/hook"),
        "callBackUrl",
        INVALID,
        "http(s) URL",
        id="callback-no-scheme",
    ),
    pytest.param(
        body(callBackUrl="https:///hook"),
        "callBackUrl",
        INVALID,
        "http(s) URL",
        id="callback-no-host",
    ),
    pytest.param(
        body(callBackUrl="https://example.com/a hook"),
        "callBackUrl",
        INVALID,
        "http(s) URL",
        id="callback-with-space",
    ),
    pytest.param(body(callBackUrl=""), "callBackUrl", INVALID, "http(s) URL", id="callback-empty"),
    pytest.param(body(callBackUrl=1), "callBackUrl", INVALID, "http(s) URL", id="callback-number"),
    # unknown top-level fields
    pytest.param(
        body(callbackUrl="https://example.com/hook"),
        "callbackUrl",
        UNKNOWN,
        "Did you mean 'callBackUrl'?",
        id="unknown-callbackUrl-suggests-callBackUrl",
    ),
    pytest.param(
        body(callback_url="https://example.com/hook"),
        "callback_url",
        UNKNOWN,
        "Did you mean 'callBackUrl'?",
        id="unknown-callback_url-suggests-callBackUrl",
    ),
    pytest.param(
        body(**{"reference_video_urls ": [VID]}),
        "reference_video_urls ",
        UNKNOWN,
        "Did you mean 'reference_video_urls'?",
        id="unknown-trailing-space-suggests-reference_video_urls",
    ),
    pytest.param(
        body(aspectRatio="16:9"),
        "aspectRatio",
        UNKNOWN,
        "Did you mean 'aspect_ratio'?",
        id="unknown-aspectRatio-suggests-aspect_ratio",
    ),
    pytest.param(body(seed=42), "seed", UNKNOWN, "Accepted fields: model", id="unknown-seed"),
    pytest.param(
        body(input={"prompt": PROMPT}), "input", UNKNOWN, "Accepted fields:", id="unknown-input"
    ),
    # a body that is not an object
    pytest.param([BASE], "body", INVALID, "JSON object", id="body-list"),
    pytest.param("model=seedance-2", "body", INVALID, "JSON object", id="body-string"),
    pytest.param(42, "body", INVALID, "JSON object", id="body-number"),
    pytest.param(None, "body", INVALID, "JSON object", id="body-null"),
    pytest.param(True, "body", INVALID, "JSON object", id="body-boolean"),
]


@pytest.mark.parametrize(("payload", "param", "code", "accepts"), REJECTED)
def test_invalid_body_is_rejected_naming_the_field_and_what_is_accepted(
    payload: object, param: str, code: str, accepts: str
) -> None:
    error = rejection(payload)
    assert (error.param, error.code) == (param, code)
    assert accepts in error.message


def test_unknown_field_message_names_the_unknown_field_and_lists_accepted_fields() -> None:
    error = rejection(body(callbackUrl="https://example.com/hook"))
    assert "'callbackUrl'" in error.message
    for field in ("model", "prompt", "duration", "callBackUrl", "reference_video_urls"):
        assert field in error.message


@pytest.mark.parametrize("field", BOOLEAN_FIELDS)
@pytest.mark.parametrize("value", ["true", "false", 1, 0, "1", "yes", [True]], ids=repr)
def test_boolean_field_refuses_anything_but_a_json_boolean(field: str, value: object) -> None:
    error = rejection(body(**{field: value}))
    assert (error.param, error.code) == (field, INVALID)
    assert BOOLEAN_ACCEPTS in error.message


BAD_MEDIA_REFS: list[Any] = [
    pytest.param("ftp://example.com/a.png", id="ftp-scheme"),
    pytest.param("file:///etc/passwd", id="file-scheme"),
    pytest.param("data:image/png;base64,AAAA", id="data-uri"),
    pytest.param("https:///x", id="no-host"),
    pytest.param("https://", id="scheme-only"),
    pytest.param("/images/a.png", id="absolute-path"),
    pytest.param("images/a.png", id="relative-path"),
    pytest.param("example.com/a.png", id="no-scheme"),
    pytest.param("asset://", id="asset-without-id"),
    pytest.param("asset://abc def", id="asset-with-space"),
    pytest.param("asset://abc/def", id="asset-with-slash"),
    pytest.param("https://example.com/a b.png", id="space-inside-url"),
    pytest.param(" https://example.com/a.png", id="leading-space"),
    pytest.param("https://example.com/a.png\n", id="trailing-newline"),
    pytest.param("https://example.com/a\tb.png", id="tab-inside-url"),
    pytest.param("", id="empty-string"),
    pytest.param(123, id="number"),
]


@pytest.mark.parametrize("ref", BAD_MEDIA_REFS)
@pytest.mark.parametrize("field", ["first_frame_url", "last_frame_url"])
def test_frame_refuses_a_media_ref_that_is_not_http_url_with_host_or_asset_id(
    field: str, ref: object
) -> None:
    # last_frame_url is judged with a valid first frame beside it.
    error = rejection(body(**{"first_frame_url": IMG, field: ref}))
    assert (error.param, error.code) == (field, INVALID)
    assert MEDIA_ACCEPTS in error.message


@pytest.mark.parametrize("ref", BAD_MEDIA_REFS)
@pytest.mark.parametrize("array", REFERENCE_ARRAYS)
def test_reference_array_refuses_a_bad_item_naming_the_array_and_the_index(
    array: str, ref: object
) -> None:
    error = rejection(body(**{array: [IMG, ref]}))
    assert (error.param, error.code) == (array, INVALID)
    assert f"{array}[1]" in error.message
    assert MEDIA_ACCEPTS in error.message
