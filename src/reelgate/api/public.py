"""The public API of the specification: create, poll, and the model catalogue."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from reelgate.api import json_body, resources, schemas
from reelgate.api.create_outcomes import CreateOutcome
from reelgate.api.errors import ERROR_RESPONSES
from reelgate.api.observing import request_id
from reelgate.api.responses import NO_STORE, json_response
from reelgate.api.state import api_state
from reelgate.domain.numbers import plain_int
from reelgate.domain.request import SCHEMA as REQUEST_SCHEMA
from reelgate.errors import NotFound, PayloadTooLarge

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
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/VideoGenerationRequest"}}
        },
    }
}


async def create_task(request: Request, credentials: ApiKeyHeader) -> Response:
    """``POST /v1/videos/generations``: validate, reserve, store, submit; 202 and the
    envelope. ``credentials`` is there for the document: the header is read here."""
    api = api_state(request)
    settings = api.services.settings
    with CreateOutcome(api.services.metrics) as outcome:
        key = await api.auth.key(request.headers.get("authorization"))
        body = await read_json(request, settings.max_body_bytes)
        outcome.body(body)
        record = await api.services.tasks.create(key, body, request_id(request.scope))
        outcome.created(record)
    envelope = resources.task_envelope(record, settings.recommended_poll_interval_ms)
    return json_response(envelope, 202, {"location": envelope.poll_url, **NO_STORE})


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
        responses=_errors(400, 401, 402, 413, 502, 503),
        openapi_extra=_CREATE_BODY,
        summary=_summary,
    )


@router.get(
    "/v1/tasks/{task_id}",
    response_model=schemas.TaskResource,
    responses=_errors(401, 404, 503),
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


def name_channels(components: dict[str, Any], channels: list[str]) -> None:
    """State the channels ``channel_id`` may name (the schema alone says only their shape)."""
    request = components["VideoGenerationRequest"]
    properties = dict(request["properties"])
    field = dict(properties["channel_id"])
    field.pop("anyOf", None)
    field["anyOf"] = [{"type": "string", "enum": channels}, {"type": "null"}]
    properties["channel_id"] = field
    components["VideoGenerationRequest"] = {**request, "properties": properties}


def request_schema_components() -> dict[str, object]:
    """The create body's JSON schema and the models it refers to, for the OpenAPI document."""
    schema = dict(REQUEST_SCHEMA)
    defs = schema.pop("$defs", {})
    return {"VideoGenerationRequest": schema, **defs}
