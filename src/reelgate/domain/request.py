"""The create request: its schema, its cross-field rules, and errors saying what is accepted.

Pydantic checks each field; the rules that relate fields (input modes, model capabilities) are
plain code after it. Every failure becomes one :class:`~reelgate.errors.InvalidRequest` naming
the field in ``param``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import ErrorDetails

from reelgate.domain import catalogue as cat
from reelgate.errors import InvalidRequest

MAX_URL_CHARS: Final = 2048
_HTTP_URL: Final = TypeAdapter(AnyHttpUrl)


def _http_url(value: str) -> str:
    if len(value) > MAX_URL_CHARS or any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError("not a URL")
    # Pydantic judges the URL grammar; the client's own spelling is what we keep and pass on.
    _HTTP_URL.validate_python(value)
    # The URL grammar forgives "https:///path"; the spelling we pass on must name its host.
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL with a host")
    return value


def _media_ref(value: str) -> str:
    if value.startswith("asset://"):
        asset_id = value.removeprefix("asset://")
        if (
            not asset_id
            or len(value) > MAX_URL_CHARS
            or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in asset_id)
        ):
            raise ValueError("not an asset ID")
        return value
    return _http_url(value)


def _empty_list_is_absent(value: object) -> object:
    return None if value == [] else value


def _prompt_text(value: str) -> str:
    if not value.strip():
        raise ValueError("blank prompt")
    if "\x00" in value:
        raise ValueError("NUL in prompt")
    return value


MediaRef = Annotated[str, AfterValidator(_media_ref)]
HttpUrlText = Annotated[str, AfterValidator(_http_url)]


# An empty array counts as absent: it must not select the with_video tier or clash with frames.
ReferenceImages = Annotated[
    Annotated[list[MediaRef], Field(max_length=cat.MAX_REFERENCE_IMAGES)] | None,
    BeforeValidator(_empty_list_is_absent),
]
ReferenceVideos = Annotated[
    Annotated[list[MediaRef], Field(max_length=cat.MAX_REFERENCE_VIDEOS)] | None,
    BeforeValidator(_empty_list_is_absent),
]
ReferenceAudios = Annotated[
    Annotated[list[MediaRef], Field(max_length=cat.MAX_REFERENCE_AUDIOS)] | None,
    BeforeValidator(_empty_list_is_absent),
]


class VideoGenerationRequest(BaseModel):
    """A Seedance 2.0 video request as accepted: defaults applied, absent fields None."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, protected_namespaces=())

    model: cat.ModelId = Field(description="seedance-2 or seedance-2-fast.")
    prompt: Annotated[
        str,
        Field(min_length=cat.MIN_PROMPT_CHARS, max_length=cat.MAX_PROMPT_CHARS),
        AfterValidator(_prompt_text),
    ] = Field(description="Text prompt, 3 to 20000 characters.")
    first_frame_url: MediaRef | None = Field(
        default=None, description="First frame image: http(s) URL or asset:// ID."
    )
    last_frame_url: MediaRef | None = Field(
        default=None, description="Last frame image; requires first_frame_url."
    )
    reference_image_urls: ReferenceImages = Field(default=None, description="At most 9.")
    reference_video_urls: ReferenceVideos = Field(
        default=None, description="At most 3; presence selects the with_video price tier."
    )
    reference_audio_urls: ReferenceAudios = Field(default=None, description="At most 3.")
    return_last_frame: bool | None = Field(
        default=None, description="Deprecated upstream; passed through when given."
    )
    generate_audio: bool | None = None
    resolution: cat.Resolution = cat.DEFAULT_RESOLUTION
    aspect_ratio: cat.AspectRatio = cat.DEFAULT_ASPECT_RATIO
    duration: Annotated[int, Field(ge=cat.MIN_DURATION, le=cat.MAX_DURATION)] = cat.DEFAULT_DURATION
    web_search: bool | None = None
    nsfw_checker: bool | None = None
    callBackUrl: HttpUrlText | None = Field(
        default=None, description="Where the finished task is POSTed."
    )

    @property
    def video_input(self) -> bool:
        """Reference videos select the with_video price tier."""
        return bool(self.reference_video_urls)

    def as_accepted(self) -> dict[str, Any]:
        """The request as stored and shown back: every given field, defaults applied."""
        return self.model_dump(exclude_none=True)


FIELDS: Final = tuple(VideoGenerationRequest.model_fields)

_ACCEPTS: Final[dict[str, str]] = {
    "model": "one of: " + ", ".join(cat.MODELS),
    "prompt": (
        f"a string of {cat.MIN_PROMPT_CHARS} to {cat.MAX_PROMPT_CHARS} characters, "
        "not blank and without NUL characters"
    ),
    "first_frame_url": "an http(s) URL or an asset:// ID",
    "last_frame_url": "an http(s) URL or an asset:// ID",
    "reference_image_urls": (
        f"an array of at most {cat.MAX_REFERENCE_IMAGES} http(s) URLs or asset:// IDs"
    ),
    "reference_video_urls": (
        f"an array of at most {cat.MAX_REFERENCE_VIDEOS} http(s) URLs or asset:// IDs"
    ),
    "reference_audio_urls": (
        f"an array of at most {cat.MAX_REFERENCE_AUDIOS} http(s) URLs or asset:// IDs"
    ),
    "return_last_frame": "a JSON boolean (true or false)",
    "generate_audio": "a JSON boolean (true or false)",
    "web_search": "a JSON boolean (true or false)",
    "nsfw_checker": "a JSON boolean (true or false)",
    "resolution": "one of: " + ", ".join(cat.RESOLUTIONS),
    "aspect_ratio": "one of: " + ", ".join(cat.ASPECT_RATIOS),
    "duration": f"an integer from {cat.MIN_DURATION} to {cat.MAX_DURATION}",
    "callBackUrl": f"an http(s) URL of at most {MAX_URL_CHARS} characters",
}
_MEDIA_ITEM: Final = "an http(s) URL or an asset:// ID"


def _to_invalid_request(error: ErrorDetails) -> InvalidRequest:
    loc = error["loc"]
    field = str(loc[0]) if loc else "body"
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(field, FIELDS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return InvalidRequest(
            field,
            f"unknown field '{field}'.{hint} Accepted fields: {', '.join(FIELDS)}",
            code="unknown_parameter",
        )
    if error["type"] == "missing":
        return InvalidRequest(
            field, f"{field} is required: {_ACCEPTS[field]}", code="missing_parameter"
        )
    if len(loc) > 1 and isinstance(loc[1], int):
        return InvalidRequest(field, f"{field}[{loc[1]}] must be {_MEDIA_ITEM}")
    return InvalidRequest(field, f"{field} must be {_ACCEPTS[field]}")


def parse_request(body: object) -> VideoGenerationRequest:
    """Validate a decoded JSON body; raise :class:`InvalidRequest` naming the first bad field."""
    if not isinstance(body, Mapping):
        raise InvalidRequest("body", "the request body must be a JSON object")
    try:
        request = VideoGenerationRequest.model_validate(body)
    except ValidationError as exc:
        raise _to_invalid_request(exc.errors()[0]) from None
    _check_combinations(request)
    return request


def _check_combinations(request: VideoGenerationRequest) -> None:
    model = cat.MODELS[request.model]
    if request.resolution not in model.resolutions:
        raise InvalidRequest(
            "resolution",
            f"{model.id} does not offer {request.resolution}; "
            f"resolution must be one of: {', '.join(model.resolutions)}",
        )
    if request.last_frame_url is not None and request.first_frame_url is None:
        raise InvalidRequest("last_frame_url", "last_frame_url requires first_frame_url")
    if request.first_frame_url is not None:
        for field in ("reference_image_urls", "reference_video_urls", "reference_audio_urls"):
            if getattr(request, field) is not None:
                raise InvalidRequest(
                    field,
                    f"{field} cannot be combined with first_frame_url/last_frame_url: "
                    "use either frame images or multimodal references",
                )
