"""Where upstreams report on their tasks: moves the task at once, through the same transition
code as polling, so duplicated, late and out-of-order callbacks change nothing."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from starlette.responses import Response

from reelgate.api import schemas
from reelgate.api.errors import ERROR_RESPONSES
from reelgate.api.gateway import Gateway
from reelgate.api.public import read_bytes
from reelgate.api.responses import json_response
from reelgate.domain.ids import is_id
from reelgate.engine.transitions import apply_status
from reelgate.errors import NotFound
from reelgate.services.tasks import UPSTREAM_CALLBACK_PATH

log = logging.getLogger(__name__)
router = APIRouter(tags=["upstream"])


@router.post(
    f"{UPSTREAM_CALLBACK_PATH}/{{channel}}",
    response_model=schemas.CallbackAck,
    responses={status: ERROR_RESPONSES[status] for status in (400, 404, 413)},
    summary="Receive an upstream's task callback",
)
async def upstream_callback(request: Request, channel: str) -> Response:
    gw: Gateway = request.app.state.gateway
    provider = gw.tasks.provider
    if channel != provider.channel:
        raise NotFound(f"no upstream channel {channel[:40]!r}")
    body = await read_bytes(request, gw.settings.max_body_bytes)
    status = provider.read_callback(dict(request.headers), body)
    store = gw.tasks.store
    record = await store.by_upstream_id(channel, status.upstream_task_id)
    claimed = request.query_params.get("task_id", "")
    if record is None and is_id("task", claimed):
        # A create that timed out after it was sent: the upstream made the task after all.
        await store.record_upstream_id(claimed, status.upstream_task_id)
        record = await store.by_upstream_id(channel, status.upstream_task_id)
    if record is None:
        # Answered 200 all the same: the upstream would only retry, and polling is the safety net.
        log.warning("callback for an unknown upstream task on channel %s", channel)
        return json_response(schemas.CallbackAck(received=True, changed=False))
    changed = await apply_status(store, record, status)
    if changed:
        gw.wake_engine()  # a success waits for an engine to copy its video: start it now
    return json_response(schemas.CallbackAck(received=True, changed=changed))
