"""Stored videos: ``GET /v1/tasks/{task_id}/content/{index}``, with Range support, for the task's
owner (its API key) or for anyone holding a signed link that has not expired."""

from __future__ import annotations

import mimetypes
import time
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import FileResponse, Response

from reelgate.api.errors import ERROR_RESPONSES
from reelgate.api.public import ApiKeyHeader, gateway
from reelgate.domain import links
from reelgate.domain.ids import is_id
from reelgate.errors import Forbidden, NotFound
from reelgate.store.tasks import TaskRecord

router = APIRouter()


async def _signed(request: Request, task_id: str, index: int) -> TaskRecord:
    gw = gateway(request)
    expires = request.query_params.get("expires", "")
    given = request.query_params.get("signature", "")
    if not (
        expires.isdigit()
        and len(expires) < 12
        and links.verify(gw.view.link_key, task_id, index, int(expires), given, int(time.time()))
    ):
        raise Forbidden(
            "this video link is not valid or has expired: read the task again for a fresh link, "
            "or send the API key that owns the task"
        )
    record = await gw.tasks.store.get(task_id) if is_id("task", task_id) else None
    if record is None:
        raise NotFound(f"no task {task_id[:100]!r}")
    return record


async def task_content(
    request: Request,
    task_id: str,
    index: Annotated[int, Path(ge=0, le=99)],
    credentials: ApiKeyHeader,
) -> Response:
    gw = gateway(request)
    if "signature" in request.query_params or "expires" in request.query_params:
        record = await _signed(request, task_id, index)
    else:
        key = await gw.authenticate(request.headers.get("authorization"))
        record = await gw.tasks.get(key.account_id, task_id)
    if index >= len(record.media):
        raise NotFound(
            f"task {task_id} has no video {index}"
            + ("" if record.media else f": it is {record.state.value}, not success")
        )
    path = gw.media.path(task_id, index)
    if not path.is_file():
        raise NotFound(f"the video of task {task_id} is no longer stored")
    content_type = record.media[index].content_type
    extension = mimetypes.guess_extension(content_type) or ""
    return FileResponse(
        path,
        media_type=content_type,
        filename=f"{task_id}-{index}{extension}",
        content_disposition_type="inline",
        headers={"cache-control": "private, max-age=3600"},
    )


_PATH = "/v1/tasks/{task_id}/content/{index}"
router.add_api_route(
    _PATH,
    task_content,
    methods=["GET"],
    responses={
        200: {"content": {"video/mp4": {}}, "description": "The video."},
        206: {"content": {"video/mp4": {}}, "description": "The requested byte range."},
        **{status: ERROR_RESPONSES[status] for status in (400, 401, 403, 404)},
    },
    response_class=Response,
    summary="Download a task's video (HEAD too)",
)
# HEAD answers the same headers without the body; one operation in the document is enough.
router.add_api_route(_PATH, task_content, methods=["HEAD"], include_in_schema=False)
