"""The errors a reelgate client raises. HTTP errors mirror the gateway's error body,
``{"error", "message", "type", "code", "param"}``, one class per status family."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from reelgate_client.types import Task


class ReelgateError(Exception):
    """An error answer of the gateway (``status`` > 0), or a failure to reach it (``status``
    0, ``error`` ``connection_error``)."""

    def __init__(
        self,
        status: int,
        error: str,
        code: str,
        message: str,
        param: str | None = None,
        *,
        type: str = "",
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.code = code
        self.message = message
        self.param = param
        self.type = type
        self.request_id = request_id

    def __str__(self) -> str:
        where = f" (param: {self.param})" if self.param else ""
        status = f"{self.status} " if self.status else ""
        return f"{status}{self.error}: {self.message}{where}"


class BadRequest(ReelgateError):
    """400, 413, 416, 422: the request is wrong; sending it again will not help."""


class AuthenticationError(ReelgateError):
    """401: the API key is missing, unknown or revoked."""


class PermissionDenied(ReelgateError):
    """403: a forged or expired video link, or something the key may not do."""


class NotFound(ReelgateError):
    """404: no such task or model (or another account's task)."""


class Conflict(ReelgateError):
    """409: e.g. the same Idempotency-Key while its first request is still being processed."""


class InsufficientBalance(ReelgateError):
    """402: the account's available balance is below the task's cost; nothing was created."""


class RateLimited(ReelgateError):
    """429: too many requests or tasks for the key; ``retry_after`` is in seconds, if given."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class UpstreamError(ReelgateError):
    """502: the upstream refused or failed to create the task; nothing was charged."""


class ServiceUnavailable(ReelgateError):
    """503 (or another 5xx): the gateway cannot serve now; try again shortly."""


class APIConnectionError(ReelgateError):
    """The gateway could not be reached, or the connection broke before it answered."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "connection_error", "connection_error", message)


class TaskFailed(ReelgateError):
    """The task ended in ``fail``; ``task`` is its final state (its money was released)."""

    def __init__(self, task: Task) -> None:
        error = task.error or {}
        super().__init__(
            0,
            "task_failed",
            str(error.get("code", "failed")),
            str(error.get("message", "the task failed")),
        )
        self.task = task
        self.task_id = task.task_id


class WaitTimeout(ReelgateError):
    """The task did not end within the time allowed; it goes on at the gateway."""

    def __init__(self, task_id: str, timeout: float, task: Task | None = None) -> None:
        super().__init__(
            0, "wait_timeout", "wait_timeout", f"{task_id} did not end within {timeout:g} s"
        )
        self.task_id = task_id
        self.task = task


_BY_STATUS: dict[int, type[ReelgateError]] = {
    400: BadRequest,
    401: AuthenticationError,
    402: InsufficientBalance,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    416: BadRequest,
    422: BadRequest,
    429: RateLimited,
    502: UpstreamError,
    503: ServiceUnavailable,
}


def connection_reason(exc: httpx.TransportError) -> str:
    """What went wrong on the wire, in words: the exception's message, else its kind."""
    return str(exc) or type(exc).__name__


def retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (the delay form; an HTTP date is rare from reelgate and read
    as absent)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(seconds, 0.0)


def from_response(response: httpx.Response) -> ReelgateError:
    """The error an answer of status 400 or more stands for. A body that is not the
    contract's (a proxy's page, the HTTP server's plain-text 503) still gives a clear error."""
    status = response.status_code
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip()[:200] if response.text else ""
        body = {"message": text or response.reason_phrase or f"HTTP {status}"}
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServiceUnavailable if status >= 500 else BadRequest
    param = body.get("param")
    args = (
        status,
        str(body.get("error") or f"http_{status}"),
        str(body.get("code") or body.get("error") or f"http_{status}"),
        str(body.get("message") or f"HTTP {status}"),
        None if param is None else str(param),
    )
    kwargs: dict[str, Any] = {
        "type": str(body.get("type") or ""),
        "request_id": response.headers.get("x-request-id"),
    }
    if cls is RateLimited:
        return RateLimited(*args, retry_after=retry_after_s(response), **kwargs)
    return cls(*args, **kwargs)
