"""The sandbox speaking ModelArk (``modelark-api.md``): its task paths, bodies, statuses and
errors, over the same simulated account, timings, renders and fault knobs as the KIE face.

Faults keep their KIE-flavoured knobs (``body_codes`` among them); here each answers as
ModelArk would: an HTTP status with ``{"error": {"code", "message", "param", "type"}}``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reelgate.config import DEFAULT_UPSTREAM_MODELS
from reelgate.domain.catalogue import MODELS
from reelgate.upstream.sandbox.service import KieRefusal, Sandbox
from reelgate.upstream.sandbox.tasks import ARK_STATUS, ark_task, now_ms

BASE: Final = "/api/v3"
TASKS: Final = BASE + "/contents/generations/tasks"
_ARK_TO_KIE: Final = {
    ark: MODELS[public].upstream_id for public, ark in DEFAULT_UPSTREAM_MODELS["modelark"].items()
}
# What each KIE body code of the fault knobs (and each refusal) becomes at ModelArk.
_ERRORS: Final[dict[int, tuple[int, str, str]]] = {
    400: (400, "MissingParameter", "a required parameter is missing"),
    401: (401, "AuthenticationError", "the API key is missing or invalid"),
    402: (403, "AccountOverdueError", "the account is overdue"),
    404: (404, "ResourceNotFound", "the task was not found"),
    422: (400, "InvalidParameter", "a parameter is invalid"),
    429: (429, "RateLimitExceeded.EndpointRPMExceeded", "too many requests"),
    433: (429, "RateLimitExceeded.EndpointTPMExceeded", "too many tokens"),
    455: (503, "ServiceUnavailable", "the service is unavailable"),
    500: (500, "InternalServiceError", "internal error"),
    501: (500, "InternalServiceError", "internal error"),
    503: (503, "ServiceUnavailable", "the service is unavailable"),
    505: (403, "AccessDenied", "access denied"),
}

Check = Callable[[Request], bool]


def ark_error(status: int, code: str, message: str, param: str = "") -> Response:
    body = {"error": {"code": code, "message": message, "param": param, "type": "BadRequest"}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _from_kie(code: int, message: str | None = None) -> Response:
    status, ark_code, default = _ERRORS.get(code, (500, "InternalServiceError", "internal error"))
    return ark_error(status, ark_code, message or default)


def _faulted(response: Response) -> Response:
    """A fault the shared knobs produced, in KIE's shape, answered in ModelArk's."""
    try:
        code = orjson.loads(bytes(response.body)).get("code")
    except (orjson.JSONDecodeError, AttributeError):
        code = 500
    return _from_kie(code if isinstance(code, int) else 500)


def kie_body(body: object) -> dict[str, Any]:
    """A ModelArk create body as the KIE createTask body the simulated account takes."""
    if not isinstance(body, dict):
        raise KieRefusal(422, "the request body must be a JSON object")
    model = _ARK_TO_KIE.get(body.get("model"))  # type: ignore[arg-type]
    if model is None:
        raise KieRefusal(404, f"model not found: {body.get('model')!r}")
    content = body.get("content")
    if not isinstance(content, list):
        raise KieRefusal(400, "content is required")
    fields: dict[str, Any] = {}
    roles = {
        "first_frame": "first_frame_url",
        "last_frame": "last_frame_url",
        "reference_image": "reference_image_urls",
        "reference_video": "reference_video_urls",
        "reference_audio": "reference_audio_urls",
    }
    for item in content:
        if not isinstance(item, dict):
            raise KieRefusal(422, "content items must be objects")
        kind = item.get("type")
        if kind == "text":
            if "prompt" in fields:
                raise KieRefusal(422, "content takes exactly one text item")
            fields["prompt"] = item.get("text")
            continue
        if kind not in ("image_url", "video_url", "audio_url"):
            raise KieRefusal(422, f"unknown content type {kind!r}")
        media = item.get(kind)
        url = media.get("url") if isinstance(media, dict) else None
        field = roles.get(item.get("role", ""))
        expected = {"video_url": "reference_video", "audio_url": "reference_audio"}.get(kind)
        if field is None or (expected is not None and item.get("role") != expected):
            raise KieRefusal(422, f"content role {item.get('role')!r} does not fit {kind}")
        if field.endswith("_urls"):
            fields.setdefault(field, []).append(url)
        else:
            fields[field] = url
    if "prompt" not in fields:
        raise KieRefusal(400, "content needs a text item")
    for name, target in (
        ("resolution", "resolution"),
        ("ratio", "aspect_ratio"),
        ("duration", "duration"),
        ("generate_audio", "generate_audio"),
        ("return_last_frame", "return_last_frame"),
    ):
        if name in body:
            fields[target] = body[name]
    for unknown in ("web_search", "nsfw_checker", "callBackUrl", "input"):
        if unknown in body:
            raise KieRefusal(422, f"unknown parameter {unknown}")
    kie: dict[str, Any] = {"model": model, "input": fields}
    if body.get("callback_url"):
        kie["callBackUrl"] = body["callback_url"]
    return kie


def ark_routes(
    sandbox: Sandbox,
    authorized: Check,
    base_url: Callable[[Request], str],
    disconnected: Callable[[Request], Awaitable[None]],
) -> list[Route]:
    fps = sandbox.settings.fps

    def unauthorized() -> Response:
        return _from_kie(401)

    async def create(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        if (faulted := await sandbox.faults.before("create")) is not None:
            return _faulted(faulted)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return ark_error(400, "InvalidParameter", "the request body is not valid JSON")
        try:
            ark_model = body.get("model") if isinstance(body, dict) else None
            task = sandbox.create(kie_body(body), base_url(request))
        except KieRefusal as exc:
            if exc.body_code == 404:  # at create: a model this account cannot use
                return ark_error(404, "InvalidEndpoint.NotFound", exc.message, "model")
            return _from_kie(exc.body_code, exc.message)
        task.model = str(ark_model)
        if sandbox.draws.chance(sandbox.settings.faults_for("create").timeout_after_create):
            return await sandbox.faults.hang("create", "timeout_after_create")
        return Response(orjson.dumps({"id": task.id}), media_type="application/json")

    async def get(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        task_id = request.path_params["task_id"]
        with sandbox.polling(task_id):
            gone = functools.partial(disconnected, request)
            if (faulted := await sandbox.faults.before("record", gone)) is not None:
                return _faulted(faulted)
            task = sandbox.tasks.get(task_id)
            if task is None:
                return _from_kie(404)
            return Response(
                orjson.dumps(ark_task(sandbox.observe(task), now_ms(), fps)),
                media_type="application/json",
            )

    async def listing(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        sandbox.stats.credit_calls += 1  # the lookup, counted where the free calls are
        if (faulted := await sandbox.faults.before("credit")) is not None:
            return _faulted(faulted)
        params = request.query_params
        try:
            page_num = int(params.get("page_num", "1"))
            page_size = int(params.get("page_size", "10"))
        except ValueError:
            return ark_error(400, "InvalidParameter", "page values must be integers")
        if not (1 <= page_num <= 500 and 1 <= page_size <= 500):
            return ark_error(400, "InvalidParameter", "page values must be from 1 to 500")
        wanted_ids = set(params.getlist("filter.task_ids"))
        wanted_status = params.get("filter.status")
        at_ms = now_ms()
        items = []
        for task in reversed(list(sandbox.tasks.values())):
            if wanted_ids and task.id not in wanted_ids:
                continue
            if wanted_status and ARK_STATUS[task.state_at(at_ms)[0]] != wanted_status:
                continue
            items.append(task)
        page = items[(page_num - 1) * page_size : page_num * page_size]
        return Response(
            orjson.dumps({"items": [ark_task(t, at_ms, fps) for t in page], "total": len(items)}),
            media_type="application/json",
        )

    return [
        Route(TASKS, create, methods=["POST"]),
        Route(TASKS, listing, methods=["GET"]),
        Route(TASKS + "/{task_id}", get, methods=["GET"]),
    ]
