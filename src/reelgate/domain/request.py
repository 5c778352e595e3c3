"""The create request: its schema, its cross-field rules, and errors saying what is accepted.

Pydantic checks each field; the rules that relate fields (input modes, model capabilities) are
plain code after it. Every failure becomes one :class:`~reelgate.errors.InvalidRequest` naming
the field in ``param``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import ErrorDetails

from reelgate.domain import catalogue as cat
from reelgate.errors import InvalidRequest

MAX_URL_CHARS: Final = 2048

# The shapes of URLs and prompts, written once as regular expressions that mean the same in
# Python's re (which judges requests here) and in ECMA-262 (which JSON Schema validators use),
# so the OpenAPI document states exactly what is accepted.
_SPACE: Final = r"\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""Every character for which Python's str.isspace() holds."""
_LABEL: Final = r"[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*"
# A last label that starts with a letter: one of digits would make the host an IPv4 number to
# URL parsers ("a.123" is refused by them).
_TOP_LABEL: Final = r"[A-Za-z][A-Za-z0-9]*(?:[-_][A-Za-z0-9]+)*"
_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4: Final = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H16: Final = r"[0-9A-Fa-f]{1,4}"
_LS32: Final = rf"(?:{_H16}:{_H16}|{_IPV4})"
# RFC 3986's IPv6address, without a zone: the nine ways "::" may stand for zeros.
_IPV6: Final = "|".join(
    [
        rf"(?:{_H16}:){{6}}{_LS32}",
        rf"::(?:{_H16}:){{5}}{_LS32}",
        rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
        rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
        rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
        rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
    ]
)
_HOST: Final = rf"(?:(?:{_LABEL}\.)*{_TOP_LABEL}|{_IPV4}|\[(?:{_IPV6})\])"
_PORT: Final = (
    r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}"
    r"|[1-9][0-9]{0,3}|0))?"
)
_USERINFO: Final = r"(?:(?:[A-Za-z0-9._~!$&'()*+,;=:-]|%[0-9A-Fa-f]{2})*@)?"
_REST: Final = rf"(?:[/?#][^\x00-\x20{_SPACE}]*)?"
_HTTP_URL: Final = rf"[Hh][Tt][Tt][Pp][Ss]?://{_USERINFO}{_HOST}{_PORT}{_REST}"
HTTP_URL_PATTERN: Final = f"^{_HTTP_URL}$"
"""An http(s) URL naming its host: a DNS name (ASCII labels of letters and digits joined by
single '-' or '_', the last starting with a letter), an IPv4 address or a bracketed IPv6 one,
then an optional port, path, query and fragment without spaces or control characters. Every
URL it matches is one URL parsers accept (a property test holds that)."""
MEDIA_REF_PATTERN: Final = rf"^(?:asset://[A-Za-z0-9._-]+|{_HTTP_URL})$"
PROMPT_PATTERN: Final = rf"^[{_SPACE}]*[^\x00{_SPACE}][^\x00]*$"
"""Not blank, and no NUL: written so that matching never backtracks far (linear in length)."""
_HTTP_URL_RE: Final = re.compile(HTTP_URL_PATTERN)
_MEDIA_REF_RE: Final = re.compile(MEDIA_REF_PATTERN)
_PROMPT_RE: Final = re.compile(PROMPT_PATTERN)
CHANNEL_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,39}$"
_CHANNEL_ID_RE: Final = re.compile(CHANNEL_ID_PATTERN)


def _matching(regex: re.Pattern[str], max_chars: int | None = None) -> AfterValidator:
    def check(value: str) -> str:
        if (max_chars is not None and len(value) > max_chars) or not regex.fullmatch(value):
            raise ValueError(f"does not match {regex.pattern}")
        return value

    return AfterValidator(check)


def _empty_list_is_absent(value: object) -> object:
    return None if value == [] else value


def _url_schema(pattern: str) -> WithJsonSchema:
    # IRI, not URI: a path or query may hold characters beyond ASCII, which clients send as
    # they are and URL parsers percent-encode.
    return WithJsonSchema(
        {"type": "string", "format": "iri", "maxLength": MAX_URL_CHARS, "pattern": pattern}
    )


MediaRef = Annotated[str, _matching(_MEDIA_REF_RE, MAX_URL_CHARS), _url_schema(MEDIA_REF_PATTERN)]
HttpUrlText = Annotated[str, _matching(_HTTP_URL_RE, MAX_URL_CHARS), _url_schema(HTTP_URL_PATTERN)]


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


def _param(description: str, accepts: str, pattern: str | None = None, **limits: Any) -> Any:
    """A field's description and what it accepts, said once: in the OpenAPI document, the
    catalogue's parameters and every 400 about it. A ``pattern`` is only stated here: the
    field's validator checks it with Python's re."""
    extra: dict[str, Any] = {_ACCEPTS_KEY: accepts}
    if pattern is not None:
        extra["pattern"] = pattern
    return Field(description=description, json_schema_extra=extra, **limits)


def _media_list(limit: int) -> str:
    return f"an array of at most {limit} http(s) URLs or asset:// IDs"


_REFERENCE_FIELDS: Final = ("reference_image_urls", "reference_video_urls", "reference_audio_urls")


def _combination_rules(schema: dict[str, Any]) -> None:
    """The rules of :func:`_check_combinations`, in JSON Schema's words, so that the document
    calls no request valid that they refuse."""
    given = {"type": "string"}  # a frame URL that is there (null counts as absent)
    first_frame = {"required": ["first_frame_url"], "properties": {"first_frame_url": given}}
    absent = {"anyOf": [{"type": "null"}, {"type": "array", "maxItems": 0}]}
    rules: list[dict[str, Any]] = [
        {
            "if": {"required": ["last_frame_url"], "properties": {"last_frame_url": given}},
            "then": first_frame,
        },
        {"if": first_frame, "then": {"properties": dict.fromkeys(_REFERENCE_FIELDS, absent)}},
    ]
    for model in cat.MODELS.values():
        if set(model.resolutions) != set(cat.RESOLUTIONS):
            offered: dict[str, Any] = {
                "properties": {"resolution": {"enum": list(model.resolutions)}}
            }
            if cat.DEFAULT_RESOLUTION not in model.resolutions:
                offered["required"] = ["resolution"]
            rules.append(
                {
                    "if": {"required": ["model"], "properties": {"model": {"const": model.id}}},
                    "then": offered,
                }
            )
    schema["allOf"] = rules


class VideoGenerationRequest(BaseModel):
    """A Seedance 2.0 video request as accepted: defaults applied, absent fields None."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        protected_namespaces=(),
        json_schema_extra=_combination_rules,
    )

    model: cat.ModelId = _param("The model.", "one of: " + ", ".join(cat.MODELS))
    prompt: Annotated[str, _matching(_PROMPT_RE)] = _param(
        "Text prompt; length in characters.",
        f"a string of {cat.MIN_PROMPT_CHARS} to {cat.MAX_PROMPT_CHARS} characters, "
        "not blank and without NUL characters",
        pattern=PROMPT_PATTERN,
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
    channel_id: Annotated[str, _matching(_CHANNEL_ID_RE)] | None = _param(
        "Pins the channel (upstream account) that makes the video: one of the model's "
        "available_channels in GET /v1/models. Without it the gateway routes.",
        "a channel slug: lowercase letters, digits, '-' and '_', at most 40 characters",
        pattern=CHANNEL_ID_PATTERN,
        default=None,
    )
    callBackUrl: HttpUrlText | None = _param(
        "http(s) URL that receives the finished task.",
        f"an http(s) URL of at most {MAX_URL_CHARS} characters",
        default=None,
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
        for field in _REFERENCE_FIELDS:
            if getattr(request, field) is not None:
                raise InvalidRequest(
                    field,
                    f"{field} cannot be combined with first_frame_url/last_frame_url: "
                    "use either frame images or multimodal references",
                )
