"""What the sync and async clients share: settings, request bodies and parameters, and the
checks on answers. Neither does I/O here."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import httpx

from reelgate_client import errors
from reelgate_client.types import Task

__version__: Final = "0.1.0"
DEFAULT_BASE_URL: Final = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S: Final = 60.0
STREAM_IDLE_S: Final = 40.0
"""How long an event stream may stay silent: the gateway sends a keep-alive every 15 s."""
DOWNLOAD_HEADERS: Final = {"accept": "*/*", "accept-encoding": "identity"}
"""Raw bytes, read as they arrive: a resumed download counts exactly the bytes on disk, which
neither a compressed body nor a chunk buffered by the reader would allow."""

OnUpdate = Callable[[Task], object]
OnProgress = Callable[[int, int | None], object]
"""Bytes written so far and the file's size (None when the gateway did not say)."""


@dataclass(frozen=True, slots=True)
class Config:
    base_url: str
    api_key: str | None
    timeout: float
    max_retries: int

    @classmethod
    def of(
        cls, base_url: str | None, api_key: str | None, timeout: float, max_retries: int
    ) -> Config:
        url = base_url or os.environ.get("REELGATE_BASE_URL") or DEFAULT_BASE_URL
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, not {url!r}")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        key = api_key if api_key is not None else os.environ.get("REELGATE_API_KEY")
        return cls(url.rstrip("/"), key or None, timeout, max_retries)

    def headers(self) -> dict[str, str]:
        headers = {"user-agent": f"reelgate-client/{__version__}", "accept": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers


def create_body(
    model: str, prompt: str, channel_id: str | None, fields: Mapping[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "prompt": prompt, **fields}
    if channel_id is not None:
        body["channel_id"] = channel_id
    return body


def idempotency_headers(idempotency_key: str | None) -> dict[str, str]:
    """One key per create, made here when the caller gave none: the create's own retries
    send it again, so the gateway makes one task however many tries it takes."""
    return {"idempotency-key": idempotency_key or str(uuid.uuid4())}


def unix_s(value: int | float | datetime | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(value)


def params(**values: Any) -> dict[str, Any]:
    """Query parameters, the unset ones left out (the gateway refuses empty ones)."""
    return {name: value for name, value in values.items() if value is not None}


def task_path(task_id: str) -> str:
    if not task_id or "/" in task_id:
        raise ValueError(f"not a task id: {task_id!r}")
    return f"/v1/tasks/{task_id}"


def json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise errors.ReelgateError(
            response.status_code,
            "invalid_response",
            "invalid_response",
            f"the gateway answered {response.request.url.path} with something not JSON",
        ) from None
    if not isinstance(body, dict):
        raise errors.ReelgateError(
            response.status_code, "invalid_response", "invalid_response", "not a JSON object"
        )
    return body


def is_event_stream(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("text/event-stream")


def part_path(path: Path) -> Path:
    """Where a download is written until it is complete: beside the target, so the final
    rename stays on one file system and is atomic."""
    return path.with_name(f".{path.name}.part")


@dataclass(slots=True)
class DownloadState:
    """A download under way: what is on disk, and what the gateway said the file is."""

    written: int = 0
    total: int | None = None
    validator: str | None = None
    """The first answer's ETag (or Last-Modified), sent back as If-Range when resuming, so a
    file that changed meanwhile is sent whole instead of spliced."""

    def range_headers(self) -> dict[str, str]:
        if self.written == 0:
            return {}
        headers = {"range": f"bytes={self.written}-"}
        if self.validator:
            headers["if-range"] = self.validator
        return headers

    def start(self, response: httpx.Response) -> bool:
        """Read an answer's headers; True when it continues what is on disk, False when it
        is the whole file (start again from byte 0)."""
        if response.status_code == 206:
            content_range = response.headers.get("content-range", "")
            unit, _, spec = content_range.partition(" ")
            first, _, rest = spec.partition("-")
            _, _, total = rest.partition("/")
            if unit != "bytes" or not first.isdigit() or int(first) != self.written:
                raise errors.ReelgateError(
                    206, "invalid_response", "invalid_range", f"unexpected range {content_range}"
                )
            self.total = int(total) if total.isdigit() else self.total
            return True
        length = response.headers.get("content-length")
        self.total = int(length) if length and length.isdigit() else None
        self.validator = response.headers.get("etag") or response.headers.get("last-modified")
        self.written = 0
        return False

    def complete(self) -> bool:
        return self.total is None or self.written >= self.total
