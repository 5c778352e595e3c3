"""Verifying the webhooks a gateway sends to a task's ``callBackUrl`` (Standard Webhooks).

The gateway signs ``{webhook-id}.{webhook-timestamp}.{body}`` with HMAC-SHA256 under the
account's ``whsec_`` secret and sends ``v1,<base64>``; during a secret rotation it sends one
signature per secret, space-separated, and any one that matches is enough."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from typing import Final

from reelgate_client.errors import ReelgateError
from reelgate_client.types import Task

TOLERANCE_S: Final = 300
"""How far the timestamp may be from now: older deliveries could be replays."""


class WebhookVerificationError(ReelgateError):
    """The delivery is forged, altered, stale or malformed."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "webhook_verification_failed", "invalid_signature", message)


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from None


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"the {name} header is missing")


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str | Iterable[str],
    *,
    tolerance_s: int = TOLERANCE_S,
    now: float | None = None,
) -> Task:
    """The task a webhook carries, once its signature is checked; raises
    :class:`WebhookVerificationError` if it is forged, altered or stale. ``secret`` may be
    several secrets (the old and the new during a rotation)."""
    payload = body.encode() if isinstance(body, str) else bytes(body)
    webhook_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a whole number") from None
    moment = time.time() if now is None else now
    if abs(moment - timestamp) > tolerance_s:
        raise WebhookVerificationError(
            f"webhook-timestamp is {int(moment - timestamp)} s from now (at most {tolerance_s})"
        )
    secrets = [secret] if isinstance(secret, str) else list(secret)
    signed = f"{webhook_id}.{timestamp}.".encode() + payload
    expected = [
        base64.b64encode(hmac.new(_key(s), signed, hashlib.sha256).digest()) for s in secrets
    ]
    for given in signatures.split():
        version, _, value = given.partition(",")
        if version != "v1":
            continue
        if any(hmac.compare_digest(value.encode(), e) for e in expected):
            try:
                task = json.loads(payload)
            except ValueError:
                raise WebhookVerificationError("the body is not JSON") from None
            if not isinstance(task, dict):
                raise WebhookVerificationError("the body is not a task")
            return Task.from_json(task)
    raise WebhookVerificationError("no signature matches the secret")
