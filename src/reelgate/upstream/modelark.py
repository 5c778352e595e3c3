"""The adaptor for BytePlus ModelArk's (and Volcengine Ark's) video task API (``modelark-api.md``).

ModelArk says how a call went in the HTTP status, with ``{"error": {"code", "message"}}`` on a
failure. Every failure leaves here as a reelgate :class:`~reelgate.errors.UpstreamError` saying
whose fault it is, with a message that names neither the provider nor its ids or texts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from reelgate.domain.request import VideoGenerationRequest
from reelgate.domain.task import TaskState
from reelgate.domain.upstream import UpstreamStatus
from reelgate.errors import InvalidRequest, UpstreamError
from reelgate.upstream.session import UpstreamSession, no_task_id, unreadable

TASKS_PATH: Final = "/contents/generations/tasks"
LOOKUP_PAGE_SIZE: Final = 100
DEFAULT_MODELS: Final = {
    "seedance-2": "dreamina-seedance-2-0-260128",
    "seedance-2-fast": "dreamina-seedance-2-0-fast-260128",
}

_STATES: Final = {
    "queued": TaskState.QUEUING,
    "running": TaskState.GENERATING,
    "succeeded": TaskState.SUCCESS,
    "failed": TaskState.FAIL,
    "expired": TaskState.FAIL,
    "cancelled": TaskState.FAIL,
}


def _error(fault: str, code: str, message: str, retryable: bool = False) -> UpstreamError:
    return UpstreamError(message, fault=fault, code=code, retryable=retryable)


def error_for(status: int, code: str) -> UpstreamError:
    """What a ModelArk failure (its HTTP status and error code) means for reelgate."""
    if status == 429:
        return _error(
            "upstream", "upstream_rate_limited", "the video provider is rate limiting", True
        )
    if status == 503:
        return _error("upstream", "upstream_overloaded", "the video provider is overloaded", True)
    if status >= 500:
        return _error(
            "upstream", "upstream_server_error", "the video provider had an internal error", True
        )
    if status == 401:
        return _error(
            "operator", "upstream_auth", "the video provider rejected the gateway's credentials"
        )
    if status == 403:
        if code.startswith("AccountOverdue"):
            return _error(
                "operator", "upstream_credits", "the gateway's video provider account is overdue"
            )
        return _error("operator", "upstream_auth", "the video provider denied the gateway access")
    if status == 404:
        if code.startswith(("InvalidEndpoint", "InvalidEndpointOrModel")):
            return _error(
                "operator",
                "upstream_model_unavailable",
                "the gateway's video provider account cannot use this model",
            )
        return _error(
            "upstream", "upstream_not_found", "the video provider does not know this task"
        )
    if status == 400:
        if "Sensitive" in code:
            return _error(
                "request", "content_policy", "the request was refused by the content policy"
            )
        if code.startswith("InvalidEndpoint"):
            return _error(
                "operator",
                "upstream_model_unavailable",
                "the gateway's video provider account cannot use this model",
            )
        return _error("request", "upstream_rejected", "the video provider rejected the request")
    return _error(
        "upstream", "upstream_error", "the video provider answered with an unexpected error", True
    )


def content(request: VideoGenerationRequest) -> list[dict[str, Any]]:
    """The ``content`` array: the prompt, then frames and references with their roles."""
    items: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]

    def media(kind: str, url: str, role: str) -> dict[str, Any]:
        return {"type": kind, kind: {"url": url}, "role": role}

    if request.first_frame_url is not None:
        items.append(media("image_url", request.first_frame_url, "first_frame"))
    if request.last_frame_url is not None:
        items.append(media("image_url", request.last_frame_url, "last_frame"))
    for url in request.reference_image_urls or ():
        items.append(media("image_url", url, "reference_image"))
    for url in request.reference_video_urls or ():
        items.append(media("video_url", url, "reference_video"))
    for url in request.reference_audio_urls or ():
        items.append(media("audio_url", url, "reference_audio"))
    return items


def create_body(
    request: VideoGenerationRequest,
    callback_url: str | None,
    models: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The create body. Fields ModelArk does not take (web_search, nsfw_checker) are not sent;
    the priced ones always are, so that what is made is what was billed."""
    body: dict[str, Any] = {
        "model": (models or DEFAULT_MODELS).get(request.model) or DEFAULT_MODELS[request.model],
        "content": content(request),
        "resolution": request.resolution,
        "ratio": request.aspect_ratio,
        "duration": request.duration,
        "watermark": False,
    }
    if request.generate_audio is not None:
        body["generate_audio"] = request.generate_audio
    if request.return_last_frame is not None:
        body["return_last_frame"] = request.return_last_frame
    if callback_url is not None:
        body["callback_url"] = callback_url
    return body


def parse_task(task: Mapping[str, Any]) -> UpstreamStatus:
    """A task resource (the GET answer, a list item, a callback body) as an UpstreamStatus."""
    task_id = task.get("id")
    if not isinstance(task_id, str) or not task_id:
        raise _error(
            "upstream", "upstream_bad_answer", "the video provider sent a task without an id"
        )
    raw = task.get("status")
    state = _STATES.get(raw) if isinstance(raw, str) else None
    body = task.get("content")
    video = body.get("video_url") if isinstance(body, dict) else None
    urls = (video,) if isinstance(video, str) and video else ()
    if state is TaskState.SUCCESS and not urls:
        state = None  # a success without a video is not one reelgate can hand back
    error = task.get("error")
    fail_code = fail_message = None
    if isinstance(error, dict):
        fail_code = str(error["code"]) if error.get("code") else None
        fail_message = str(error["message"]) if error.get("message") else None
    if state is TaskState.FAIL and fail_code is None and isinstance(raw, str):
        fail_code = raw  # expired or cancelled
    callback_url = task.get("callback_url")
    return UpstreamStatus(
        upstream_task_id=task_id,
        state=state,
        result_urls=urls,
        fail_code=fail_code,
        fail_message=fail_message,
        callback_url=callback_url if isinstance(callback_url, str) else None,
    )


class ModelArkProvider:
    """Creates Seedance tasks at ModelArk and reads them back (aiohttp, as the KIE adaptor)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        channel: str = "modelark",
        models: Mapping[str, str] | None = None,
        connect_timeout_s: float = 5.0,
        timeout_s: float = 20.0,
    ) -> None:
        self.channel = channel
        self.base_url = base_url.rstrip("/")
        self.models = dict(models) if models is not None else dict(DEFAULT_MODELS)
        self._http = UpstreamSession(api_key, connect_timeout_s, timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def submit(self, request: VideoGenerationRequest, callback_url: str | None) -> str:
        body = orjson.dumps(create_body(request, callback_url, self.models))
        data = _answer(*await self._http.create(self.base_url + TASKS_PATH, body))
        task_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise no_task_id()
        return task_id

    async def fetch_status(self, upstream_task_id: str) -> UpstreamStatus:
        data = await self._get(f"{TASKS_PATH}/{upstream_task_id}")
        if not isinstance(data, dict):
            raise unreadable()
        return parse_task(data)

    async def find_created(self, task_id: str) -> UpstreamStatus | None:
        """The provider's own record of a task whose create went unanswered, found in its task
        list by the callback link it was created with (which names the gateway's task)."""
        data = await self._get(TASKS_PATH, {"page_num": "1", "page_size": str(LOOKUP_PAGE_SIZE)})
        items = data.get("items") if isinstance(data, dict) else None
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, dict):
                continue
            callback = item.get("callback_url")
            if isinstance(callback, str) and f"task_id={task_id}" in callback:
                return parse_task(item)
        return None

    async def probe(self) -> None:
        """Listing one task costs nothing."""
        await self._get(TASKS_PATH, {"page_num": "1", "page_size": "1"})

    async def _get(self, path: str, params: dict[str, str] | None = None) -> object:
        return _answer(*await self._http.read(self.base_url + path, params))

    def read_callback(self, headers: Mapping[str, str], body: bytes) -> str:
        """ModelArk's callbacks are not signed: only the task id is read, and the task is read
        back from the provider before anything is believed."""
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("body", "the callback body must be JSON") from None
        if not isinstance(payload, dict):
            raise InvalidRequest("body", "the callback body must be a JSON object")
        nested = payload.get("data")
        task_id = payload.get("id") or (nested.get("id") if isinstance(nested, dict) else None)
        if not isinstance(task_id, str) or not task_id or len(task_id) > 200:
            raise InvalidRequest("id", "the callback must name its task in id")
        return task_id


def _answer(status: int, payload: bytes) -> object:
    """The decoded body of a successful answer; any failure raised."""
    try:
        decoded = orjson.loads(payload) if payload else None
    except orjson.JSONDecodeError:
        decoded = None
    if 200 <= status < 300:
        if decoded is None:
            raise unreadable()
        return decoded
    error = decoded.get("error") if isinstance(decoded, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    raise error_for(status, code if isinstance(code, str) else "")
