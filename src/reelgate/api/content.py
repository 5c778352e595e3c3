"""Stored videos: ``GET /v1/tasks/{task_id}/content/{index}``, with Range support, for the task's
owner (its API key) or for anyone holding a signed link that has not expired."""

from __future__ import annotations

import mimetypes
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import FileResponse, MalformedRangeHeader, Response
from starlette.responses import RangeNotSatisfiable as StarletteRangeNotSatisfiable

from reelgate.api.errors import ERROR_RESPONSES
from reelgate.api.public import ApiKeyHeader
from reelgate.api.state import api_state
from reelgate.errors import RangeNotSatisfiable

router = APIRouter()


class VideoFile(FileResponse):
    """Starlette's file response, with Range answered as RFC 9110 asks and in the contract's
    words. Starlette answers a Range header it cannot parse with a plain-text 400; a server
    should ignore it instead (section 14.2), so the whole file is served. A range that starts
    past the end is still a 416, with the contract's error body and ``Content-Range``. Range
    serving itself (206, multiple ranges, If-Range) stays Starlette's."""

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader:
            return []  # no range: the whole file
        except StarletteRangeNotSatisfiable:
            raise RangeNotSatisfiable(
                f"the requested range is outside the video, which has {file_size} bytes",
                file_size,
            ) from None


async def task_content(
    request: Request,
    task_id: str,
    index: Annotated[int, Path(ge=0, le=99)],
    credentials: ApiKeyHeader,
) -> Response:
    api = api_state(request)
    videos = api.services.videos
    query = request.query_params
    if "signature" in query or "expires" in query:
        video = await videos.by_link(
            task_id, index, query.get("expires", ""), query.get("signature", "")
        )
    else:
        key = await api.auth.key(request.headers.get("authorization"))
        video = await videos.for_owner(key.account_id, task_id, index)
    content_type = video.file.content_type
    extension = mimetypes.guess_extension(content_type) or ""
    return VideoFile(
        video.path,
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
        **{status: ERROR_RESPONSES[status] for status in (400, 401, 403, 404, 416, 429)},
    },
    response_class=Response,
    summary="Download a task's video (HEAD too)",
)
# HEAD answers the same headers without the body; one operation in the document is enough.
router.add_api_route(_PATH, task_content, methods=["HEAD"], include_in_schema=False)
