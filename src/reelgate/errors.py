"""reelgate's one exception hierarchy. HTTP statuses are assigned only in ``api/errors.py``.

Third-party exceptions are translated into these where they enter (the store, an upstream
adaptor, a download); the rest of the code sees only these::

    ReelgateError
    ├── InvalidRequest            the client's request is wrong (``param`` names the field)
    ├── PayloadTooLarge           the body is over the limit
    ├── RequestTimeout            the body did not arrive in time
    ├── HeadersTooLarge           the request's headers are over the limit
    ├── Unauthorized              no valid credentials
    ├── Forbidden                 valid credentials that do not grant this
    ├── InsufficientBalance       the account cannot pay for the task
    ├── KeyBudgetExceeded         the key's own budget for the period would be crossed
    ├── RateLimited               too many requests, or tasks in flight, for the key
    ├── IdempotencyKeyReused      an Idempotency-Key sent again with another body
    ├── NotFound                  no such thing, or not the caller's
    ├── Conflict                  a name that must be unique is taken
    ├── RangeNotSatisfiable       a byte range outside the file
    ├── UpstreamError             the upstream refused or failed a call
    │   └── UpstreamOutcomeUnknown    a create was sent and never answered
    ├── UpstreamUnavailable       no channel can take the task now (all open or full)
    ├── Unavailable               the gateway cannot serve now (the database is down)
    ├── DestinationRefused        an address the gateway must not reach (webhooks, downloads)
    │   └── DestinationUnresolved     a host name that does not resolve
    ├── MediaUnavailable          a result could not be copied (tried again later)
    └── SecretKeyError            the secret key is missing or malformed, or does not open the
                                  secrets the database keeps
"""

from __future__ import annotations


class ReelgateError(Exception):
    """Base of every error reelgate raises on purpose; ``code`` is the machine-readable reason."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(ReelgateError):
    """The client's request is wrong; ``param`` names the field."""

    code = "invalid_parameter"

    def __init__(self, param: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        if code is not None:
            self.code = code


class PayloadTooLarge(ReelgateError):
    code = "payload_too_large"


class RequestTimeout(ReelgateError):
    """The request's body did not arrive within the time allowed."""

    code = "request_timeout"


class HeadersTooLarge(ReelgateError):
    """The request's header fields are larger than the gateway reads."""

    code = "headers_too_large"


class Unauthorized(ReelgateError):
    code = "invalid_api_key"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class Forbidden(ReelgateError):
    """The credentials are valid but do not grant this (an expired or forged video link, a
    model the key may not use); ``param`` names the field, when one is to blame."""

    code = "forbidden"

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        if code is not None:
            self.code = code


class InsufficientBalance(ReelgateError):
    code = "insufficient_balance"


class KeyBudgetExceeded(ReelgateError):
    """The task would take the key's spending in its budget's period past the budget (the
    account's balance may well cover it: that is InsufficientBalance)."""

    code = "key_budget_exceeded"


class RateLimited(ReelgateError):
    """The key sent more requests than its rate allows, or has as many tasks in flight as it
    may (``code`` says which). ``retry_after_s`` is when to try again; ``headers`` are the
    IETF RateLimit fields that describe the limit."""

    code = "rate_limited"

    def __init__(
        self,
        message: str,
        retry_after_s: int,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.headers = headers or {}
        if code is not None:
            self.code = code


class IdempotencyKeyReused(ReelgateError):
    """An Idempotency-Key already used with a different request body."""

    code = "idempotency_key_reused"
    param = "Idempotency-Key"


class NotFound(ReelgateError):
    code = "not_found"


class Conflict(ReelgateError):
    """The request is well formed but the current state refuses it: a name that must be unique
    is taken, or a credit would take a balance past the most an account may hold. ``param``
    names the field, when one is to blame."""

    code = "conflict"

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        if code is not None:
            self.code = code


class RangeNotSatisfiable(ReelgateError):
    """A byte range that starts past the end of the file."""

    code = "range_not_satisfiable"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class UpstreamError(ReelgateError):
    """The upstream refused or failed a call.

    ``fault`` says whose it is: ``"operator"`` (the upstream account: credentials, credits,
    limits), ``"upstream"`` (its outage, rate limit or bug) or ``"request"`` (the request itself).
    ``retryable`` says whether the same call may succeed later. The message is safe to show to
    clients: it never names the provider nor carries its ids or texts.
    """

    code = "upstream_error"

    def __init__(
        self,
        message: str,
        fault: str = "upstream",
        code: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.fault = fault
        self.retryable = retryable
        if code is not None:
            self.code = code


class UpstreamOutcomeUnknown(UpstreamError):
    """A create was sent but no answer came back: the task may exist upstream. Sending it again
    could make (and bill) the video twice, so it is never resent blindly."""

    code = "upstream_outcome_unknown"


class UpstreamUnavailable(ReelgateError):
    """No channel that serves the request can take it now: every one's circuit is open, or it
    is at its cap of tasks in flight. Nothing was created and nothing is charged;
    ``retry_after_s`` says when one may take tasks again."""

    code = "upstream_unavailable"

    def __init__(self, message: str, retry_after_s: int = 30) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(ReelgateError):
    """The gateway cannot serve now, for instance because the database is unreachable."""

    code = "service_unavailable"


class DestinationRefused(ReelgateError):
    """A URL the gateway was asked to reach (a webhook, a result to copy) leads to an address it
    must not reach: loopback, private, link-local, metadata, unless the operator allowed it."""

    code = "forbidden_destination"


class DestinationUnresolved(DestinationRefused):
    """The URL's host name does not resolve (now): nothing can be reached, nothing is judged."""

    code = "unresolved_destination"


class MediaUnavailable(ReelgateError):
    """A result could not be copied into the media store; the copy is tried again later."""

    code = "media_unavailable"


class SecretKeyError(ReelgateError):
    """The gateway's secret key is missing or malformed, is not the key the database's secrets
    were sealed under, or a sealed secret does not open: nothing is signed with a wrong secret."""

    code = "secret_key"
