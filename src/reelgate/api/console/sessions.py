"""The console's sessions: who is signed in, kept in a sealed cookie, and the CSRF token that
every form and every script's request carries.

A session is a cookie the gateway sealed (AES-GCM under a key derived from the secret key for
this use alone): any process of the gateway opens it, and the browser's scripts never see it
(HttpOnly). The cookie holds the SHA-256 hash of the API key or of the admin token, never the
secret itself; each request looks the key up again, so revoking the key (or replacing the admin
token) ends its sessions at once. The server keeps only the ids of sessions signed out before
their expiry, so that a copy of a signed-out cookie opens nothing (see
``services.console_sessions``). Someone not signed in has a session
too ("anonymous"): the sign-in form's CSRF token is bound to it, and signing in replaces it with
a new one, so a session id planted before sign-in is worth nothing after it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

COOKIE: Final = "reelgate_console"
PATH: Final = "/console"
LIFETIME_S: Final = 12 * 3600
"""A session lasts a working day; signing in again starts another."""
_AAD: Final = b"reelgate console session v1"
_NONCE_BYTES: Final = 12


class Who(StrEnum):
    ANONYMOUS = "anonymous"
    DEVELOPER = "developer"
    """Signed in with an API key: one account's view."""
    OPERATOR = "operator"
    """Signed in with the admin token: every account."""


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    who: Who
    secret_hash: str
    """The hash of the API key or admin token it was opened with ("" when anonymous)."""
    expires_at: int

    @classmethod
    def new(cls, who: Who = Who.ANONYMOUS, secret_hash: str = "") -> Session:
        return cls(
            base64.urlsafe_b64encode(os.urandom(18)).decode(),
            who,
            secret_hash,
            int(time.time()) + LIFETIME_S,
        )


class Sessions:
    """Seals and opens session cookies, and makes and checks CSRF tokens, with one key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        # A key of its own for CSRF tokens: a token reveals nothing about the sealing.
        self._csrf_key = hmac.new(key, b"csrf", hashlib.sha256).digest()

    def seal(self, session: Session) -> str:
        plain = orjson.dumps(
            {
                "s": session.sid,
                "w": session.who.value,
                "h": session.secret_hash,
                "e": session.expires_at,
            }
        )
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, plain, _AAD)
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, cookie: str | None) -> Session | None:
        """The session the cookie holds; None when there is none, or it was not sealed by
        this gateway, or it has expired."""
        if not cookie or len(cookie) > 1024:
            return None
        try:
            raw = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _AAD)
            fields = orjson.loads(plain)
            session = Session(
                str(fields["s"]), Who(fields["w"]), str(fields["h"]), int(fields["e"])
            )
        except (ValueError, KeyError, TypeError, InvalidTag):
            return None
        return session if session.expires_at > time.time() else None

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._csrf_key, session.sid.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(
            self.csrf_token(session).encode(), token.encode()
        )
