"""JSON answers, serialised once by the response models themselves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from pydantic import BaseModel
from starlette.responses import Response

JSON: Final = "application/json"
NO_STORE: Final = {"cache-control": "no-store"}
"""Task state changes under the client's feet: no intermediary may keep a copy."""


def json_response(
    body: BaseModel | bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    content = body if isinstance(body, bytes) else body.model_dump_json().encode()
    return Response(content=content, status_code=status, media_type=JSON, headers=headers)
