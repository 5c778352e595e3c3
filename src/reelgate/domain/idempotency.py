"""Idempotency keys on creates, after the IETF httpapi ``Idempotency-Key`` draft and Stripe's
practice: what a key may be, how a body is fingerprinted, and what a repeat is answered.

A key is the client's and scoped to its account. The first create with it stores its answer in
the same transaction as its task and reservation; a repeat with the same body gets that answer
again, with nothing created or charged again. A first request refused before anything happened
(400, 401, 402, 429) stores nothing, so that it can be corrected and sent again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import orjson

from reelgate.errors import Conflict, IdempotencyKeyReused, InvalidRequest

HEADER: Final = "Idempotency-Key"
MAX_LENGTH: Final = 255
DEFAULT_TTL_S: Final = 86_400


def check_key(value: str) -> str:
    """The header's value, if it is 1 to 255 printable ASCII characters; else a 400."""
    if not 1 <= len(value) <= MAX_LENGTH or not all(" " <= c <= "~" for c in value):
        raise InvalidRequest(
            HEADER, f"{HEADER} must be 1 to {MAX_LENGTH} printable ASCII characters"
        )
    return value


def fingerprint(body: object) -> str:
    """A digest of the body's JSON in a canonical form (keys sorted, no spaces): the same request
    written with its fields in another order or other spacing has the same fingerprint."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class Phase(StrEnum):
    PENDING = "pending"
    """The task is stored; its create has not answered yet (or its process died)."""
    DONE = "done"


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status: int
    body: bytes
    location: str | None


@dataclass(frozen=True, slots=True)
class Claim:
    """An idempotency key as a first create stores it, beside its task."""

    key: str
    fingerprint: str
    answer: StoredAnswer
    created_at_ms: int
    pending_until_ms: int
    """Until then the create is taken to be still running; after it, its process died."""
    expires_at_ms: int


@dataclass(frozen=True, slots=True)
class Stored:
    """An idempotency key as a repeat finds it."""

    fingerprint: str
    phase: Phase
    answer: StoredAnswer
    pending_until_ms: int
    task_id: str | None


ANSWER_GRACE_S: Final = 5
"""Beyond the upstream's own timeouts, for the create's writes around them."""


def answer_window_ms(connect_timeout_s: float, timeout_s: float, channels: int) -> int:
    """How long a create may take to answer: each of the ``channels`` it may be sent to, one
    after another, up to its timeouts. A first create still pending past this is taken to have
    died with its process (see :func:`replay`)."""
    return int(((connect_timeout_s + timeout_s) * channels + ANSWER_GRACE_S) * 1000)


def replay(stored: Stored, fingerprint_: str, now_ms: int) -> StoredAnswer:
    """What a repeat is answered: the first answer, once the first create is done (or its
    process died after storing its task); a 409 while it runs; a 422 for another body."""
    if stored.fingerprint != fingerprint_:
        raise IdempotencyKeyReused(
            f"this {HEADER} was used with a different request body; use a new key for a new request"
        )
    if stored.phase is Phase.PENDING and now_ms < stored.pending_until_ms:
        raise Conflict(
            f"a request with this {HEADER} is still being processed; retry shortly",
            param=HEADER,
            code="idempotency_key_in_use",
        )
    return stored.answer
