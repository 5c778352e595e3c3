"""Client webhooks by the Standard Webhooks scheme: secrets, signed headers, and when to retry.

A delivery is signed with the account's ``whsec_`` secret over ``{webhook-id}.{timestamp}.{body}``
(HMAC-SHA256, ``v1,<base64>``); the ``webhook-id`` stays the same on every retry so receivers
can drop repeats. Failed attempts are retried with growing delays until a day has passed.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from standardwebhooks import Webhook

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a prefix, not a secret
RETRY_DELAYS_S: Final = (5, 30, 120, 600, 1800, 3600, 7200, 14400)
"""The wait after the 1st, 2nd, ... failed attempt; the last one repeats until the day is over."""
GIVE_UP_AFTER_S: Final = 86_400
UNREACHABLE_ATTEMPTS: Final = 3
"""Attempts at a URL whose host cannot be reached at all before the delivery fails."""
ATTEMPT_ERROR_LENGTH: Final = 300
"""The most kept of why an attempt failed (the gateway's own words, never the receiver's)."""
WEBHOOK_SECRET_OVERLAP_S: Final = 86_400
"""How long the secret before a rotation still signs, beside the new one."""


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt to deliver a task's webhook, as kept."""

    attempt: int
    """1 for the first."""
    at_ms: int
    duration_ms: int
    response_code: int | None
    error: str | None


class DeliveryStatus(StrEnum):
    WAITING = "waiting"
    """The task has not ended: there is nothing to send yet."""
    PENDING = "pending"
    """Due now, or failed so far and due again at ``next_attempt_at``."""
    DELIVERED = "delivered"
    FAILED = "failed"
    """Every attempt failed for a day: given up."""


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_headers(
    secrets_: tuple[str, ...], webhook_id: str, timestamp_s: int, body: bytes
) -> dict[str, str]:
    """The three headers a Standard Webhooks receiver verifies; one signature per secret,
    space-separated, of which a receiver needs any one to match."""
    moment = datetime.fromtimestamp(timestamp_s, tz=UTC)
    text = body.decode()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": " ".join(
            Webhook(secret).sign(webhook_id, moment, text) for secret in secrets_
        ),
    }


def retry_delay_s(failed_attempts: int, scale: float = 1.0) -> float:
    """How long to wait after ``failed_attempts`` failures (1 or more), times ``scale``."""
    index = min(max(failed_attempts, 1), len(RETRY_DELAYS_S)) - 1
    return RETRY_DELAYS_S[index] * scale


def next_attempt_ms(
    failed_attempts: int,
    first_attempt_ms: int,
    now_ms: int,
    scale: float = 1.0,
    *,
    unreachable: bool = False,
) -> int | None:
    """When to try again after a failure, or None once it is given up.

    The last attempt is placed exactly at the give-up time rather than skipped, so a receiver
    that comes back within the day always gets the delivery. A URL that cannot be reached at
    all (its name does not resolve, or only to forbidden addresses) is given up after
    :data:`UNREACHABLE_ATTEMPTS`, so its failure shows within minutes, not a day."""
    if unreachable and failed_attempts >= UNREACHABLE_ATTEMPTS:
        return None
    give_up_ms = first_attempt_ms + int(GIVE_UP_AFTER_S * scale * 1000)
    if now_ms >= give_up_ms:
        return None
    return min(now_ms + int(retry_delay_s(failed_attempts, scale) * 1000), give_up_ms)
