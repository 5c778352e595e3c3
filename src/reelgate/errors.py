"""reelgate's one exception hierarchy. HTTP statuses are assigned only in ``api/``."""

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


class Unauthorized(ReelgateError):
    code = "invalid_api_key"


class Forbidden(ReelgateError):
    """The credentials are valid but do not grant this (an expired or forged video link)."""

    code = "forbidden"


class InsufficientBalance(ReelgateError):
    code = "insufficient_balance"


class NotFound(ReelgateError):
    code = "not_found"


class Conflict(ReelgateError):
    """A name or resource that must be unique already exists."""

    code = "conflict"


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


class Unavailable(ReelgateError):
    """The gateway cannot serve now, for instance because the database is unreachable."""

    code = "service_unavailable"
