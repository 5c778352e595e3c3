"""reelgate errors as HTTP answers: the one place statuses are assigned."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from reelgate import errors
from reelgate.api.responses import json_response
from reelgate.api.schemas import ErrorBody

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    """How one kind of error is answered: status, the body's ``error`` and ``type``, and
    whether its message is for the client (else it is logged and a generic one is sent)."""

    status: int
    error: str
    type: str
    shown: bool = True


# Every error class in reelgate.errors, each with its own row (a test checks that none is
# missing): a subclass never falls back on its parent's answer unnoticed.
ANSWERS: Final[dict[type[errors.ReelgateError], Answer]] = {
    errors.InvalidRequest: Answer(400, "bad_request", "invalid_request_error"),
    errors.Unauthorized: Answer(401, "unauthorized", "authentication_error"),
    errors.InsufficientBalance: Answer(402, "insufficient_balance", "billing_error"),
    errors.KeyBudgetExceeded: Answer(402, "key_budget_exceeded", "billing_error"),
    errors.Forbidden: Answer(403, "forbidden", "authentication_error"),
    errors.NotFound: Answer(404, "not_found", "not_found_error"),
    errors.RequestTimeout: Answer(408, "request_timeout", "invalid_request_error"),
    errors.Conflict: Answer(409, "conflict", "invalid_request_error"),
    errors.PayloadTooLarge: Answer(413, "payload_too_large", "invalid_request_error"),
    errors.RangeNotSatisfiable: Answer(416, "range_not_satisfiable", "invalid_request_error"),
    errors.IdempotencyKeyReused: Answer(422, "idempotency_key_reused", "invalid_request_error"),
    errors.RateLimited: Answer(429, "rate_limited", "rate_limit_error"),
    errors.HeadersTooLarge: Answer(431, "request_header_fields_too_large", "invalid_request_error"),
    errors.UpstreamError: Answer(502, "upstream_error", "upstream_error"),
    errors.UpstreamOutcomeUnknown: Answer(502, "upstream_error", "upstream_error"),
    errors.Unavailable: Answer(503, "unavailable", "api_error"),
    errors.UpstreamUnavailable: Answer(503, "upstream_unavailable", "upstream_error"),
    # Errors of the gateway's own outbound work: they never answer a client's request unless
    # something is wrong, and then only as an internal error.
    errors.DestinationRefused: Answer(503, "internal_error", "api_error", shown=False),
    errors.DestinationUnresolved: Answer(503, "internal_error", "api_error", shown=False),
    errors.MediaUnavailable: Answer(503, "internal_error", "api_error", shown=False),
    # A secret the database keeps does not open with this process's key: the operator's to fix.
    errors.SecretKeyError: Answer(503, "internal_error", "api_error", shown=False),
}
INTERNAL: Final = Answer(503, "internal_error", "api_error", shown=False)
"""For anything without a row: the contract's error body, never a bare 500."""

_ERRORS_BY_STATUS: Final[dict[int, list[str]]] = {}
for _answer in ANSWERS.values():
    if _answer.shown and _answer.error not in _ERRORS_BY_STATUS.setdefault(_answer.status, []):
        _ERRORS_BY_STATUS[_answer.status].append(_answer.error)
ERROR_RESPONSES: Final = {
    status: {"model": ErrorBody, "description": " or ".join(names)}
    for status, names in _ERRORS_BY_STATUS.items()
}
_SECONDS = {"schema": {"type": "integer", "minimum": 1}}
ERROR_RESPONSES[429] = {
    "model": ErrorBody,
    "description": "rate_limited (the key's rate) or concurrency_limit (its tasks in flight)",
    "headers": {
        "Retry-After": {"description": "Seconds to wait before trying again.", **_SECONDS},
        "RateLimit-Policy": {
            "description": 'The rate that was passed (IETF draft): `"creates";q=5;w=1`.',
            "schema": {"type": "string"},
        },
        "RateLimit": {
            "description": 'What is left of it (IETF draft): `"creates";r=0;t=1`.',
            "schema": {"type": "string"},
        },
    },
}
# Two kinds of 402, one row in the document: the code tells them apart.
ERROR_RESPONSES[402] = {
    "model": ErrorBody,
    "description": "insufficient_balance or key_budget_exceeded",
}


def error_response(
    status: int, error: str, type_: str, code: str, message: str, param: str | None = None
) -> Response:
    body = ErrorBody(error=error, message=message, type=type_, code=code, param=param)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return json_response(body, status, headers)


def answer_for(exc: errors.ReelgateError) -> Answer:
    return ANSWERS.get(type(exc), INTERNAL)


def error_answer(exc: Exception) -> Response:
    """The answer to anything raised while serving a request, wherever it was caught."""
    if not isinstance(exc, errors.ReelgateError):
        log.error("unexpected error", exc_info=exc)
        return _internal()
    answer = answer_for(exc)
    if not answer.shown:
        log.error("internal error answered to a client", exc_info=exc)
        return _internal()
    param = getattr(exc, "param", None)
    response = error_response(
        answer.status, answer.error, answer.type, exc.code, exc.message, param
    )
    if isinstance(exc, errors.RateLimited):
        response.headers["retry-after"] = str(exc.retry_after_s)
        response.headers.update(exc.headers)
    if isinstance(exc, errors.UpstreamUnavailable):
        response.headers["retry-after"] = str(max(1, exc.retry_after_s))
    if isinstance(exc, errors.RangeNotSatisfiable):
        response.headers["content-range"] = f"bytes */{exc.size}"
    if isinstance(exc, errors.RequestTimeout | errors.HeadersTooLarge):
        # What is left of the request (a late body, the body after oversized headers) would
        # otherwise be read as the next request on this connection: close it.
        response.headers["connection"] = "close"
    return response


def _internal() -> Response:
    return error_response(
        INTERNAL.status,
        INTERNAL.error,
        INTERNAL.type,
        "internal_error",
        "the gateway could not answer this request; try again shortly",
    )


async def _reelgate_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.ReelgateError)
    return error_answer(exc)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    # Only the admin API and path parameters reach FastAPI's own validation.
    assert isinstance(exc, RequestValidationError)
    return error_answer(_invalid_request(exc.errors()))


def _invalid_request(details: Sequence[Any]) -> errors.InvalidRequest:
    first = details[0]
    if first.get("type") == "json_invalid":
        # Its location is a character offset, not a field.
        reason = first.get("ctx", {}).get("error", "invalid")
        return errors.InvalidRequest("body", f"the request body is not valid JSON: {reason}")
    # The location is (body|path|query, field, union members, indexes...): name the field.
    loc = tuple(first.get("loc", ()))
    param = str(loc[1]) if len(loc) > 1 else "body"
    messages = [first.get("msg", "invalid")]
    if len(loc) > 2:
        # A value that fits no member of a union gets one error per member: all are said, or a
        # float given for a string-or-integer amount would hear only "should be a string".
        messages = [d.get("msg", "invalid") for d in details if tuple(d["loc"])[:2] == loc[:2]]
    return errors.InvalidRequest(param, f"{param}: {'; or '.join(dict.fromkeys(messages))}")


def method_not_allowed(allowed: str) -> Response:
    response = error_response(
        405,
        "method_not_allowed",
        "invalid_request_error",
        "method_not_allowed",
        "this method is not allowed on this route",
    )
    response.headers["allow"] = allowed
    return response


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if isinstance(exc.__cause__, errors.ReelgateError):
        # FastAPI answers any failure while reading a body it parses (the admin API's) with a
        # 400 "error parsing the body"; a body that did not arrive in time is still a 408.
        return error_answer(exc.__cause__)
    if exc.status_code == 400:
        # FastAPI could not read the body at all (a JSON number too long to convert, say).
        return error_answer(errors.InvalidRequest("body", str(exc.detail)))
    if exc.status_code == 404:
        return error_response(404, "not_found", "not_found_error", "not_found", "no such route")
    if exc.status_code == 405:
        return method_not_allowed((exc.headers or {}).get("Allow", ""))
    return error_response(exc.status_code, "error", "api_error", "http_error", str(exc.detail))


async def _unexpected(_request: Request, exc: Exception) -> Response:
    log.error("unexpected error", exc_info=exc)
    return _internal()


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.ReelgateError, _reelgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
