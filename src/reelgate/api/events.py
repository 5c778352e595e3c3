"""Task status as Server-Sent Events: ``GET /v1/tasks/{task_id}/events``.

The stream sends the task resource at once, then again on every change of its state or
progress, and closes after the final one. Changes arrive through the change feed that keeps the
poll cache fresh, so the stream sees what other processes (an engine, a callback) commit.
A reconnecting client that already saw the final event (``Last-Event-ID``) gets 204, which
tells an EventSource to stop reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Final

import orjson
from fastapi import APIRouter, Request
from fastapi.sse import format_sse_event
from starlette.responses import Response, StreamingResponse

from reelgate.api.errors import ERROR_RESPONSES
from reelgate.api.public import ApiKeyHeader
from reelgate.api.state import ApiState, api_state
from reelgate.domain.accounts import ApiKey
from reelgate.domain.task import FINAL_STATES
from reelgate.errors import ReelgateError

PING_S: Final = 15.0
"""A comment line this often keeps proxies from closing an idle stream; the task is read again
then too, should a change notice have been missed."""


def _event_id(task: dict[str, object]) -> str:
    return f"{task['state']}:{task['progress']}"


async def _stream(
    api: ApiState, key: ApiKey, task_id: str, seen: str | None
) -> AsyncIterator[bytes]:
    with api.events.subscribe(task_id) as changed:
        while True:
            changed.clear()
            try:
                body = await api.bodies.body(key, task_id)
            except ReelgateError:
                # The database went away mid-stream: end it cleanly; the client reconnects and
                # is answered afresh (a 503 while it lasts).
                return
            task = orjson.loads(body)
            event_id = _event_id(task)
            if event_id != seen:
                seen = event_id
                yield format_sse_event(data_str=body.decode(), event="task", id=event_id)
            if task["state"] in FINAL_STATES:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), PING_S)
                continue
            yield b": ping\n\n"


router = APIRouter()

_EVENT_SCHEMA: Final = {
    "type": "object",
    "required": ["event", "id", "data"],
    "properties": {
        "event": {"const": "task"},
        "id": {
            "type": "string",
            "pattern": "^[a-z]+:[0-9]{1,3}$",
            "description": "state:progress; send it back as Last-Event-ID on reconnecting.",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/TaskResource"},
        },
    },
}


@router.get(
    "/v1/tasks/{task_id}/events",
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    # Each event, as OpenAPI 3.2 describes event streams (and FastAPI writes
                    # its own): readers of 3.1 see the stream as text.
                    "itemSchema": _EVENT_SCHEMA,
                }
            },
            "description": "Events named `task`, each carrying the task resource as JSON, "
            "now and after every change of state or progress; the stream closes after the "
            "final state. Lines starting with ':' are keep-alive comments.",
        },
        204: {"description": "The client already saw the final event (Last-Event-ID)."},
        **{status: ERROR_RESPONSES[status] for status in (401, 404, 429, 503)},
    },
    response_class=Response,
    summary="Follow a task as Server-Sent Events",
)
async def task_events(request: Request, task_id: str, credentials: ApiKeyHeader) -> Response:
    api = api_state(request)
    key = await api.auth.key(request.headers.get("authorization"))
    return await stream_for(api, key, task_id, request.headers.get("last-event-id"))


async def stream_for(api: ApiState, key: ApiKey, task_id: str, seen: str | None) -> Response:
    """The task's event stream for ``key``'s account (the console follows it too); ``seen``:
    the Last-Event-ID the client sent."""
    task = orjson.loads(await api.bodies.body(key, task_id))  # 404 before the stream starts
    if task["state"] in FINAL_STATES and seen == _event_id(task):
        return Response(status_code=204)
    return StreamingResponse(
        _stream(api, key, task_id, seen),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
