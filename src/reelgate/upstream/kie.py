"""The adaptor for KIE's Market "jobs" API (``kie-market-api.md``).

KIE reports outcomes both in the HTTP status and in a body ``code``; a call succeeded only when
both say so. Every failure leaves here as a reelgate :class:`~reelgate.errors.UpstreamError` that
says whose fault it is, with a message that names neither KIE nor its ids.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from reelgate.domain.catalogue import MODELS
from reelgate.domain.numbers import plain_int
from reelgate.domain.request import VideoGenerationRequest
from reelgate.domain.task import TaskState
from reelgate.domain.upstream import UpstreamStatus
from reelgate.errors import InvalidRequest, Unauthorized, UpstreamError
from reelgate.upstream.session import UpstreamSession, no_task_id, unreadable

CHANNEL: Final = "kie"
CREATE_PATH: Final = "/api/v1/jobs/createTask"
RECORD_PATH: Final = "/api/v1/jobs/recordInfo"
CREDIT_PATH: Final = "/api/v1/chat/credit"
CALLBACK_MAX_SKEW_S: Final = 15 * 60
"""KIE retries callbacks, so a signature stays acceptable for a while, but not forever."""

_STATES: Final = {
    "waiting": TaskState.WAITING,
    "queuing": TaskState.QUEUING,
    "generating": TaskState.GENERATING,
    "success": TaskState.SUCCESS,
    "fail": TaskState.FAIL,
}
# Fields that the gateway always sends because the price depends on them; all others are passed
# through only when the client gave them.
_PRICED_FIELDS: Final = ("resolution", "aspect_ratio", "duration")
# The gateway's own fields: the upstream never sees them.
_NOT_SENT: Final = ("model", "callBackUrl", "channel_id")


@dataclass(frozen=True, slots=True)
class _Meaning:
    fault: str
    code: str
    message: str
    retryable: bool


# What each KIE body code means for reelgate. None of the operator-side ones is the client's fault.
_CODES: Final[dict[int, _Meaning]] = {
    401: _Meaning(
        "operator", "upstream_auth", "the video provider rejected the gateway's credentials", False
    ),
    402: _Meaning(
        "operator",
        "upstream_credits",
        "the gateway's video provider account is out of credit",
        False,
    ),
    404: _Meaning(
        "upstream", "upstream_not_found", "the video provider does not know this task", False
    ),
    408: _Meaning("upstream", "upstream_timeout", "the video provider stopped responding", True),
    422: _Meaning("request", "upstream_rejected", "the video provider rejected the request", False),
    429: _Meaning("upstream", "upstream_rate_limited", "the video provider is rate limiting", True),
    433: _Meaning(
        "operator", "upstream_quota", "the gateway's video provider key is over its limit", True
    ),
    455: _Meaning(
        "upstream", "upstream_maintenance", "the video provider is under maintenance", True
    ),
    500: _Meaning(
        "upstream", "upstream_server_error", "the video provider had an internal error", True
    ),
    501: _Meaning("upstream", "upstream_generation_failed", "the video generation failed", False),
    505: _Meaning(
        "operator",
        "upstream_feature_disabled",
        "this feature is disabled at the video provider",
        False,
    ),
}
_UNKNOWN_CODE: Final = _Meaning(
    "upstream", "upstream_error", "the video provider answered with an unexpected error", True
)


def meaning_of(code: int) -> _Meaning:
    if code in _CODES:
        return _CODES[code]
    return _CODES[500] if code >= 500 else _UNKNOWN_CODE


def _error(meaning: _Meaning) -> UpstreamError:
    return UpstreamError(
        meaning.message, fault=meaning.fault, code=meaning.code, retryable=meaning.retryable
    )


def create_body(
    request: VideoGenerationRequest,
    callback_url: str | None,
    models: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The createTask body: the upstream model, and only the fields the client gave (plus the
    priced ones, so that what is made is what was billed)."""
    given = request.model_dump(exclude_none=True, exclude_unset=True)
    accepted = request.as_accepted()
    fields = {
        name: value
        for name, value in accepted.items()
        if name not in _NOT_SENT and (name in given or name in _PRICED_FIELDS)
    }
    upstream_model = (models or {}).get(request.model) or MODELS[request.model].upstream_id
    body: dict[str, Any] = {"model": upstream_model, "input": fields}
    if callback_url is not None:
        body["callBackUrl"] = callback_url
    return body


def _json_field(value: object) -> dict[str, Any]:
    """KIE string-encodes nested JSON (``param``, ``resultJson``); accept it either way."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {}
        return decoded if isinstance(decoded, dict) else {}
    return {}


def parse_record(data: Mapping[str, Any]) -> UpstreamStatus:
    """A recordInfo ``data`` object (callbacks carry the same) as an UpstreamStatus."""
    task_id = data.get("taskId") or data.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise UpstreamError(
            "the video provider sent a task without an id", code="upstream_bad_answer"
        )
    raw_state = data.get("state")
    state = _STATES.get(raw_state) if isinstance(raw_state, str) else None
    urls = _json_field(data.get("resultJson")).get("resultUrls")
    result_urls = (
        tuple(url for url in urls if isinstance(url, str)) if isinstance(urls, list) else ()
    )
    if state is TaskState.SUCCESS and not result_urls:
        # A success without a video is not one reelgate can hand back: keep asking.
        state = None
    fail_code = data.get("failCode")
    fail_message = data.get("failMsg")
    callback_url = _json_field(data.get("param")).get("callBackUrl")
    return UpstreamStatus(
        upstream_task_id=task_id,
        state=state,
        result_urls=result_urls,
        fail_code=str(fail_code) if fail_code not in (None, "") else None,
        fail_message=str(fail_message) if fail_message not in (None, "") else None,
        callback_url=callback_url if isinstance(callback_url, str) else None,
    )


def callback_signature(hmac_key: str, task_id: str, timestamp: str) -> str:
    digest = hmac.new(hmac_key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


class KieProvider:
    """Creates Seedance tasks at KIE and reads them back.

    The transport is aiohttp: the engine asks KIE about thousands of tasks a second over many
    connections, where aiohttp's pool costs a small, constant time per request (httpx's grew
    with the number of connections: 180 against 11,000 requests a second at 64 in flight,
    measured against the sandbox on one core).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        hmac_key: str | None = None,
        connect_timeout_s: float = 5.0,
        timeout_s: float = 20.0,
        channel: str = CHANNEL,
        models: Mapping[str, str] | None = None,
    ) -> None:
        self.channel = channel
        self.models = dict(models) if models is not None else None
        self.base_url = base_url.rstrip("/")
        self.hmac_key = hmac_key
        self._http = UpstreamSession(api_key, connect_timeout_s, timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def submit(self, request: VideoGenerationRequest, callback_url: str | None) -> str:
        body = orjson.dumps(create_body(request, callback_url, self.models))
        data = _data(*await self._http.create(self.base_url + CREATE_PATH, body))
        task_id = data.get("taskId") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise no_task_id()
        return task_id

    async def fetch_status(self, upstream_task_id: str) -> UpstreamStatus:
        data = await self._get(RECORD_PATH, {"taskId": upstream_task_id})
        if not isinstance(data, dict):
            raise unreadable()
        return parse_record(data)

    async def find_created(self, task_id: str) -> UpstreamStatus | None:
        """KIE has no way to list tasks: an unanswered create is found by its callback."""
        return None

    async def credits(self) -> float:
        """The operator's remaining KIE credits."""
        data = await self._get(CREDIT_PATH)
        if not isinstance(data, int | float) or isinstance(data, bool):
            raise unreadable()
        return float(data)

    async def probe(self) -> None:
        """Asking for the credits left costs nothing."""
        await self.credits()

    async def _get(self, path: str, params: dict[str, str] | None = None) -> object:
        return _data(*await self._http.read(self.base_url + path, params))

    def read_callback(self, headers: Mapping[str, str], body: bytes) -> str:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("body", "the callback body must be JSON") from None
        if not isinstance(payload, dict):
            raise InvalidRequest("body", "the callback body must be a JSON object")
        nested = payload.get("data")
        data: dict[str, Any] = nested if isinstance(nested, dict) else {}
        task_id = data.get("taskId") or data.get("task_id") or payload.get("taskId")
        if not isinstance(task_id, str) or not task_id or len(task_id) > 200:
            raise InvalidRequest("data.taskId", "the callback must name its task in data.taskId")
        if self.hmac_key is not None:
            self._verify(headers, task_id)
        return task_id

    def _verify(self, headers: Mapping[str, str], task_id: str) -> None:
        lowered = {name.lower(): value for name, value in headers.items()}
        timestamp = lowered.get("x-webhook-timestamp", "")
        signature = lowered.get("x-webhook-signature", "")
        sent_at = plain_int(timestamp)
        if sent_at is None or abs(time.time() - sent_at) > CALLBACK_MAX_SKEW_S:
            raise Unauthorized(
                "missing or stale X-Webhook-Timestamp", code="invalid_callback_signature"
            )
        expected = callback_signature(self.hmac_key or "", task_id, timestamp)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise Unauthorized(
                "the callback's X-Webhook-Signature does not match",
                code="invalid_callback_signature",
            )


def _data(status: int, payload: bytes) -> object:
    """The ``data`` of a successful answer; any failure, by status or by body code, raised."""
    try:
        envelope = orjson.loads(payload)
    except orjson.JSONDecodeError:
        envelope = None
    code = envelope.get("code") if isinstance(envelope, dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and code != 200:
        raise _error(meaning_of(code))
    if status != 200:
        raise _error(meaning_of(status))
    if code != 200:
        raise unreadable()
    assert isinstance(envelope, dict)
    return envelope.get("data")
