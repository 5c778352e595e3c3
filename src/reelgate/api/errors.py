"""reelgate errors as HTTP answers: the one place statuses are assigned."""

from __future__ import annotations

import logging
from typing import Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from reelgate import errors
from reelgate.api.responses import json_response
from reelgate.api.schemas import ErrorBody

log = logging.getLogger(__name__)

# status, "error", "type" for each kind of reelgate error.
_STATUS: Final[dict[type[errors.ReelgateError], tuple[int, str, str]]] = {
    errors.InvalidRequest: (400, "bad_request", "invalid_request_error"),
    errors.Unauthorized: (401, "unauthorized", "authentication_error"),
    errors.InsufficientBalance: (402, "insufficient_balance", "billing_error"),
    errors.Forbidden: (403, "forbidden", "authentication_error"),
    errors.NotFound: (404, "not_found", "not_found_error"),
    errors.Conflict: (409, "conflict", "invalid_request_error"),
    errors.PayloadTooLarge: (413, "payload_too_large", "invalid_request_error"),
    errors.UpstreamError: (502, "upstream_error", "upstream_error"),
    errors.Unavailable: (503, "unavailable", "api_error"),
}

ERROR_RESPONSES: Final = {
    status: {"model": ErrorBody, "description": error} for status, error, _ in _STATUS.values()
}


def error_response(
    status: int, error: str, type_: str, code: str, message: str, param: str | None = None
) -> Response:
    body = ErrorBody(error=error, message=message, type=type_, code=code, param=param)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return json_response(body, status, headers)


def _from_reelgate(exc: errors.ReelgateError) -> Response:
    status, error, type_ = next(entry for cls, entry in _STATUS.items() if isinstance(exc, cls))
    param = exc.param if isinstance(exc, errors.InvalidRequest) else None
    return error_response(status, error, type_, exc.code, exc.message, param)


async def _reelgate_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.ReelgateError)
    return _from_reelgate(exc)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    # Only the admin API and path parameters reach FastAPI's own validation.
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    # The location is (body|path|query, field, union members, indexes...): name the field.
    loc = first.get("loc", ())
    param = str(loc[1]) if len(loc) > 1 else "body"
    return _from_reelgate(errors.InvalidRequest(param, f"{param}: {first.get('msg', 'invalid')}"))


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(404, "not_found", "not_found_error", "not_found", "no such route")
    if exc.status_code == 405:
        response = error_response(
            405,
            "method_not_allowed",
            "invalid_request_error",
            "method_not_allowed",
            "this method is not allowed on this route",
        )
        response.headers.update(exc.headers or {})
        return response
    return error_response(exc.status_code, "error", "api_error", "http_error", str(exc.detail))


async def _unexpected(_request: Request, exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    return error_response(500, "internal_error", "api_error", "internal_error", "internal error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.ReelgateError, _reelgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
