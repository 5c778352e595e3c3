"""Secrets the database keeps, sealed: encrypted and authenticated under a key derived from the
gateway's secret key, so that a copy of the database alone reads none of them.

A sealed value is ``enc1:`` and the URL-safe base64 of a 12-byte random nonce followed by the
AES-256-GCM ciphertext and its tag. The prefix tells a sealed value from the plaintext an older
reelgate wrote (sealed once at start) and leaves room for another scheme. Each value is bound to
its place (``accounts/<id>``, ``meta/<key>``) as associated data: moved to another row it does not
open, so whoever can write to the database cannot make one account sign with another's secret.
"""

from __future__ import annotations

import base64
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reelgate.domain.secret_key import KeyUse, SecretKey
from reelgate.errors import SecretKeyError

PREFIX: Final = "enc1:"
_NONCE_BYTES: Final = 12


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


class Sealer:
    def __init__(self, key: SecretKey) -> None:
        self._aead = AESGCM(key.derive(KeyUse.SEALING))

    def seal(self, plaintext: str, place: str) -> str:
        if is_sealed(plaintext):
            # Sealed twice, it would open to the first sealing: ciphertext handed out as a secret.
            raise ValueError(f"the secret of {place} is already sealed")
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, plaintext.encode(), place.encode())
        return PREFIX + base64.urlsafe_b64encode(sealed).decode()

    def open(self, stored: str, place: str) -> str:
        """The secret a sealed value holds; SecretKeyError when it is not sealed, or not under
        this key for this place: never a wrong secret to sign with."""
        if not is_sealed(stored):
            raise SecretKeyError(
                f"the secret of {place} is kept in plaintext: something wrote it around this "
                "gateway (an older reelgate still running?); restarting the gateway seals it"
            )
        try:
            raw = base64.urlsafe_b64decode(stored[len(PREFIX) :])
            plaintext = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], place.encode())
            return plaintext.decode()
        except (ValueError, InvalidTag):
            raise SecretKeyError(
                f"the sealed secret of {place} does not open with this gateway's secret key: "
                "it was sealed under another key, or changed"
            ) from None
