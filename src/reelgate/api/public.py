"""The public API of the specification: create, poll, and the model catalogue."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from reelgate.api import json_body, resources, schemas
from reelgate.api.create_outcomes import CreateOutcome
from reelgate.api.errors import ERROR_RESPONSES, error_answer
from reelgate.api.observing import request_id
from reelgate.api.responses import JSON, NO_STORE, json_response
from reelgate.api.state import api_state
from reelgate.domain import idempotency
from reelgate.domain.idempotency import StoredAnswer
from reelgate.domain.numbers import plain_int
from reelgate.domain.request import SCHEMA as REQUEST_SCHEMA
from reelgate.domain.task import TaskRecord
from reelgate.errors import NotFound, PayloadTooLarge, ReelgateError
from reelgate.services.rates import CREATES
from reelgate.services.tasks import Once

router = APIRouter()
create_router = APIRouter()
"""The create routes, described in the OpenAPI document but served by the hot paths (see
:mod:`reelgate.api.hot_paths`): the framework's routing would cost a third of each create."""
# Declared for the OpenAPI document; the header itself is read and judged by api.auth.
_api_key = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")
ApiKeyHeader = Annotated[HTTPAuthorizationCredentials | None, Security(_api_key)]


def _errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    return {status: ERROR_RESPONSES[status] for status in statuses}


async def read_bytes(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes before reading them all."""
    declared = plain_int(request.headers.get("content-length", ""))
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    return bytes(body)


async def read_json(request: Request, limit: int) -> object:
    """The body as JSON, refusing more than ``limit`` bytes before reading them all, and
    saying what is wrong with any it refuses (see :mod:`reelgate.api.json_body`)."""
    return json_body.decode(await read_bytes(request, limit))


_CREATE_BODY = {
    "parameters": [
        {
            "name": idempotency.HEADER,
            "in": "header",
            "required": False,
            "description": (
                "Makes the create safe to retry: a repeat with the same key and body gets the "
                "first answer again (with `Idempotent-Replayed: true`), nothing created or "
                "charged twice. Scoped to the account, kept 24 hours."
            ),
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": idempotency.MAX_LENGTH,
                # Printable ASCII; HTTP itself drops spaces at either end of a header value.
                "pattern": "^[!-~]([ -~]*[!-~])?$",
            },
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/VideoGenerationRequest"}}
        },
    },
}


async def create_task(request: Request, credentials: ApiKeyHeader) -> Response:
    """``POST /v1/videos/generations``: validate, reserve, store, submit; 202 and the
    envelope. ``credentials`` is there for the document: the header is read here."""
    api = api_state(request)
    settings = api.services.settings
    with CreateOutcome(api.services.metrics) as outcome:
        key = await api.auth.key(request.headers.get("authorization"), CREATES)
        once_key = request.headers.get("idempotency-key")
        if once_key is not None:
            once_key = idempotency.check_key(once_key)
        body = await read_json(request, settings.max_body_bytes)
        outcome.body(body)
        once = None
        if once_key is not None:
            interval = settings.recommended_poll_interval_ms
            once = Once(
                once_key,
                idempotency.fingerprint(body),
                lambda record: _accepted(record, interval),
                _refused,
            )
        made = await api.services.tasks.create(key, body, request_id(request.scope), once)
        if isinstance(made, StoredAnswer):
            outcome.replayed()
            return _replay(made)
        outcome.created(made)
    if once is not None:
        return _answer(once.accepted(made))
    envelope = resources.task_envelope(made, settings.recommended_poll_interval_ms)
    return json_response(envelope, 202, {"location": envelope.poll_url, **NO_STORE})


def _accepted(record: TaskRecord, poll_interval_ms: int) -> StoredAnswer:
    envelope = resources.task_envelope(record, poll_interval_ms)
    return StoredAnswer(202, envelope.model_dump_json().encode(), envelope.poll_url)


def _refused(exc: ReelgateError) -> StoredAnswer:
    response = error_answer(exc)
    return StoredAnswer(response.status_code, bytes(response.body), None)


def _answer(answer: StoredAnswer, replayed: bool = False) -> Response:
    headers = dict(NO_STORE)
    if answer.location is not None:
        headers["location"] = answer.location
    if replayed:
        headers["idempotent-replayed"] = "true"
    return Response(answer.body, answer.status, headers, media_type=JSON)


def _replay(answer: StoredAnswer) -> Response:
    return _answer(answer, replayed=True)


CREATE_PATHS = {
    # The specification's path, and the singular alias it keeps for compatibility: one handler.
    "/v1/videos/generations": "Create a video task",
    "/v1/video/generations": "Create a video task (compatibility alias)",
}
for _path, _summary in CREATE_PATHS.items():
    create_router.add_api_route(
        _path,
        create_task,
        methods=["POST"],
        status_code=202,
        response_model=schemas.TaskEnvelope,
        responses=_errors(400, 401, 402, 403, 409, 413, 422, 429, 502, 503),
        openapi_extra=_CREATE_BODY,
        summary=_summary,
    )


@router.get(
    "/v1/tasks/{task_id}",
    response_model=schemas.TaskResource,
    responses=_errors(401, 404, 429, 503),
    summary="Retrieve a task",
)
async def get_task(request: Request, task_id: str, credentials: ApiKeyHeader) -> Response:
    api = api_state(request)
    key = await api.auth.key(request.headers.get("authorization"))
    return json_response(await api.bodies.body(key, task_id), headers=NO_STORE)


@router.get("/v1/models", response_model=schemas.ModelList, summary="List models and prices")
async def list_models(request: Request) -> Response:
    return json_response(api_state(request).catalogue.body)


@router.get(
    "/v1/models/{model_id}",
    response_model=schemas.ModelCard,
    responses=_errors(404),
    summary="One model and its prices",
)
async def get_model(request: Request, model_id: str) -> Response:
    body = api_state(request).catalogue.models.get(model_id)
    if body is None:
        raise NotFound(f"no model {model_id[:100]!r}; see GET /v1/models")
    return json_response(body)


def request_schema_components(channel_ids: Sequence[str] = ()) -> dict[str, object]:
    """The create body's JSON schema and the models it refers to, for the OpenAPI document;
    ``channel_id`` names this deployment's enabled channels, the only ones it accepts."""
    schema = copy.deepcopy(REQUEST_SCHEMA)
    if channel_ids:
        schema["properties"]["channel_id"]["anyOf"] = [
            {"type": "string", "enum": list(channel_ids)},
            {"type": "null"},
        ]
    defs = schema.pop("$defs", {})
    return {"VideoGenerationRequest": schema, **defs}
