"""The gateway's secret key, and the keys derived from it for each of its uses.

The secret key comes from the environment or a file, never from the database: it is what a copy
of the database alone lacks. Nothing uses it directly; each use gets its own key, derived with
HKDF-SHA256 under its own label, so that a key that leaks from one use (a timing bug in one
check, say) gives nothing for another.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_KEY_BYTES: Final = 32
_HEX_KEY: Final = re.compile(rf"[0-9a-fA-F]{{{2 * SECRET_KEY_BYTES}}}")
KEY_FORMAT: Final = (
    f"{2 * SECRET_KEY_BYTES} hexadecimal digits ({SECRET_KEY_BYTES} random bytes), "
    "as `openssl rand -hex 32` prints"
)


class KeyUse(StrEnum):
    """Every use of the secret key, each its own HKDF label: one list, so none is used twice."""

    SEALING = "reelgate/v1/secrets at rest"
    """Encrypts the secrets the database keeps (:mod:`reelgate.store.sealing`)."""
    CALLBACK_TOKENS = "reelgate/v1/upstream callback tokens"
    """Makes the token in each task's upstream callback link."""
    CONSOLE_SESSIONS = "reelgate/v1/console sessions"
    """Seals the console's session cookies and makes their CSRF tokens."""
    CHECK = "reelgate/v1/key check"
    """A public fingerprint the database keeps, to tell a wrong key at start."""


@dataclass(frozen=True, slots=True)
class SecretKey:
    material: bytes = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> SecretKey:
        """The key written as text (surrounding whitespace ignored, as a file's newline).
        Raises ValueError naming the expected format, never quoting what was given."""
        text = text.strip()
        if not _HEX_KEY.fullmatch(text):
            raise ValueError(f"a secret key is {KEY_FORMAT}")
        return cls(bytes.fromhex(text))

    def derive(self, use: KeyUse) -> bytes:
        """The 32-byte key for one use."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=use.value.encode())
        return hkdf.derive(self.material)

    def fingerprint(self) -> str:
        """Names the key without revealing anything of it or of the keys derived for other
        uses: safe to keep beside the secrets it protects."""
        return self.derive(KeyUse.CHECK).hex()


def new_secret_key() -> str:
    """A new secret key, as text."""
    return secrets.token_hex(SECRET_KEY_BYTES)
