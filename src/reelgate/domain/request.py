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

_MEDIA: Final = "an http(s) URL or an asset:// ID"
_BOOLEAN: Final = "a JSON boolean (true or false)"
_ACCEPTS_KEY: Final = "x-accepts"
"""The words that end "<field> must be ...": kept beside each field's limits, in its schema."""


def _param(description: str, accepts: str, **limits: Any) -> Any:
    """A field's description and what it accepts, said once: in the OpenAPI document, the
    catalogue's parameters and every 400 about it."""
    return Field(description=description, json_schema_extra={_ACCEPTS_KEY: accepts}, **limits)


def _media_list(limit: int) -> str:
    return f"an array of at most {limit} http(s) URLs or asset:// IDs"


class VideoGenerationRequest(BaseModel):
    """A Seedance 2.0 video request as accepted: defaults applied, absent fields None."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, protected_namespaces=())

    model: cat.ModelId = _param("The model.", "one of: " + ", ".join(cat.MODELS))
    prompt: Annotated[str, AfterValidator(_prompt_text)] = _param(
        "Text prompt; length in characters.",
        f"a string of {cat.MIN_PROMPT_CHARS} to {cat.MAX_PROMPT_CHARS} characters, "
        "not blank and without NUL characters",
        min_length=cat.MIN_PROMPT_CHARS,
        max_length=cat.MAX_PROMPT_CHARS,
    )
    first_frame_url: MediaRef | None = _param(f"First frame image: {_MEDIA}.", _MEDIA, default=None)
    last_frame_url: MediaRef | None = _param(
        f"Last frame image: {_MEDIA}. Requires first_frame_url.", _MEDIA, default=None
    )
    reference_image_urls: ReferenceImages = _param(
        f"Reference images: {_MEDIA} each. Not with frame images.",
        _media_list(cat.MAX_REFERENCE_IMAGES),
        default=None,
    )
    reference_video_urls: ReferenceVideos = _param(
        f"Reference videos: {_MEDIA} each. Selects the with_video price tier.",
        _media_list(cat.MAX_REFERENCE_VIDEOS),
        default=None,
    )
    reference_audio_urls: ReferenceAudios = _param(
        f"Reference audio: {_MEDIA} each. Not with frame images.",
        _media_list(cat.MAX_REFERENCE_AUDIOS),
        default=None,
    )
    return_last_frame: bool | None = _param(
        "Deprecated upstream; passed through when given.", _BOOLEAN, default=None
    )
    generate_audio: bool | None = _param("Passed through when given.", _BOOLEAN, default=None)
    resolution: cat.Resolution = _param(
        "Selects the resolution price tier.",
        "one of: " + ", ".join(cat.RESOLUTIONS),
        default=cat.DEFAULT_RESOLUTION,
    )
    aspect_ratio: cat.AspectRatio = _param(
        "Frame shape; adaptive lets the model pick.",
        "one of: " + ", ".join(cat.ASPECT_RATIOS),
        default=cat.DEFAULT_ASPECT_RATIO,
    )
    duration: int = _param(
        "Seconds; multiplies the per-second price.",
        f"an integer from {cat.MIN_DURATION} to {cat.MAX_DURATION}",
        default=cat.DEFAULT_DURATION,
        ge=cat.MIN_DURATION,
        le=cat.MAX_DURATION,
    )
    web_search: bool | None = _param("Passed through when given.", _BOOLEAN, default=None)
    nsfw_checker: bool | None = _param("Passed through when given.", _BOOLEAN, default=None)
    callBackUrl: HttpUrlText | None = _param(
        "http(s) URL that receives the finished task.",
        f"an http(s) URL of at most {MAX_URL_CHARS} characters",
        default=None,
        max_length=MAX_URL_CHARS,
    )

    @property
    def video_input(self) -> bool:
        """Reference videos select the with_video price tier."""
        return bool(self.reference_video_urls)

    def as_accepted(self) -> dict[str, Any]:
        """The request as stored and shown back: every given field, defaults applied."""
        return self.model_dump(exclude_none=True)


FIELDS: Final = tuple(VideoGenerationRequest.model_fields)
SCHEMA: Final[dict[str, Any]] = VideoGenerationRequest.model_json_schema()
"""The request's JSON schema: what the OpenAPI document and the catalogue say of each field."""
_ACCEPTS: Final[dict[str, str]] = {
    name: prop[_ACCEPTS_KEY] for name, prop in SCHEMA["properties"].items()
}
_MEDIA_ITEM: Final = _MEDIA


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
