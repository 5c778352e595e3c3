"""When a request is tried again, and after how long.

A small bounded loop of our own rather than a retry library: the client depends on httpx
alone, and what it needs is narrow (three statuses, connection errors, ``Retry-After``).
Retrying a create is safe because every create carries an Idempotency-Key that its retries
reuse."""

from __future__ import annotations

import random
from typing import Final

import httpx

RETRY_STATUSES: Final = frozenset({429, 502, 503})
"""Answers worth trying again. Never 400, 401, 402, 403, 404, 409 or 422: the same request
would get the same answer."""
DEFAULT_MAX_RETRIES: Final = 3
BASE_DELAY_S: Final = 0.5
MAX_DELAY_S: Final = 8.0
MAX_RETRY_AFTER_S: Final = 60.0
"""A Retry-After longer than this is cut to it: a client call should not hang for hours."""


def delay_s(attempt: int, retry_after: float | None = None) -> float:
    """The wait before retry number ``attempt`` (0 for the first): the server's Retry-After
    when it gave one, else exponential backoff with full jitter, so that clients turned away
    together do not all come back together."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER_S)
    return random.uniform(0, min(MAX_DELAY_S, BASE_DELAY_S * 2**attempt))


def worth_retrying(response: httpx.Response) -> bool:
    """A 429, 502 or 503, unless it is the replay of a create's stored answer (the gateway
    keeps what it answered an Idempotency-Key, a 503 'no channel available' included, and
    would answer the same again)."""
    if response.headers.get("idempotent-replayed") == "true":
        return False
    return response.status_code in RETRY_STATUSES
