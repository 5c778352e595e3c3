"""Signed links: expiring links to a task's stored video, so that a browser or a download tool
can fetch it without the API key; and the link an upstream calls back to about one task.

A link names the task, the file's index and an expiry; its signature is an HMAC over the three
with the gateway's media signing key. Expiries are rounded up to the next step, so that a link
rendered into a cached task body stays the same for a while, yet every link handed out is good
for at least the configured lifetime.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def expiry_s(now_s: int, ttl_s: int) -> tuple[int, int]:
    """``(expires, renew_at)``: the expiry for a link made now, and when to make a new one."""
    step = max(1, min(3600, ttl_s // 4))
    renew_at = (now_s // step + 1) * step
    return renew_at + ttl_s, renew_at


def signature(key: bytes, task_id: str, index: int, expires: int) -> str:
    digest = hmac.new(key, f"{task_id}/{index}/{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verify(key: bytes, task_id: str, index: int, expires: int, given: str, now_s: int) -> bool:
    """Whether ``given`` signs this file until ``expires``, and that time has not passed."""
    expected = signature(key, task_id, index, expires)
    return now_s < expires and hmac.compare_digest(expected.encode(), given.encode())


def callback_token(key: bytes, task_id: str) -> str:
    """The token in a task's upstream callback link: only the upstream, which was given the
    link, can call about the task; anyone else's call is refused before anything is read."""
    digest = hmac.new(key, f"callback/{task_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verify_callback_token(key: bytes, task_id: str, given: str) -> bool:
    return hmac.compare_digest(callback_token(key, task_id).encode(), given.encode())
