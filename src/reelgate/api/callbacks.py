"""Where upstreams call about their tasks. A call only makes the gateway look: the task's
state is read back from the upstream (see :mod:`reelgate.services.callbacks`)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from reelgate.api import schemas
from reelgate.api.errors import ERROR_RESPONSES
from reelgate.api.public import read_bytes
from reelgate.api.responses import json_response
from reelgate.api.state import api_state

router = APIRouter(tags=["upstream"])
UPSTREAM_CALLBACK_PATH = "/v1/upstream/callbacks/{channel}"


@router.post(
    UPSTREAM_CALLBACK_PATH,
    response_model=schemas.CallbackAck,
    responses={status: ERROR_RESPONSES[status] for status in (400, 401, 404, 413)},
    summary="Receive an upstream's task callback",
)
async def upstream_callback(
    request: Request,
    channel: str,
    task_id: str = Query(description="The task the callback link was made for."),
    token: str = Query(description="The callback link's token, made for that task only."),
) -> Response:
    api = api_state(request)
    body = await read_bytes(request, api.services.settings.max_body_bytes)
    changed = await api.services.callbacks.receive(
        channel, task_id, token, dict(request.headers), body
    )
    return json_response(schemas.CallbackAck(received=True, changed=changed))
