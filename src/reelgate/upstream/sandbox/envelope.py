"""KIE's answer envelope: ``{"code", "msg", "data"}``, the outcome in the body's code."""

from __future__ import annotations

from typing import Any, Final

import orjson
from starlette.responses import Response

MESSAGES: Final = {
    400: "taskId is required",
    401: "You do not have access permissions",
    402: "Credits insufficient",
    404: "task not found",
    408: "upstream timed out",
    422: "validation error",
    429: "rate limited",
    433: "sub-key usage exceeds limit",
    455: "service unavailable: maintenance",
    500: "server error",
    501: "generation failed",
    503: "service unavailable",
    505: "feature disabled",
}


def envelope(code: int, msg: str, data: Any = None) -> Response:
    """KIE answers body-code errors with HTTP 200 too: only the body's code tells."""
    return Response(
        orjson.dumps({"code": code, "msg": msg, "data": data}), media_type="application/json"
    )


def success(data: Any) -> Response:
    return envelope(200, "success", data)
