"""How a background loop is doing, as the loop's supervisor keeps it and readers show it; and
which gateway a process belongs to."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass
class LoopHealth:
    name: str
    running: bool = False
    restarts: int = 0
    failing_since: float | None = None
    """Unix time of the first failure in the current run of failures; None when healthy."""
    last_error: str | None = None

    @property
    def healthy(self) -> bool:
        return self.running and self.failing_since is None


def gateway_id(key_fingerprint: str) -> str:
    """What ``/healthz`` names the gateway by: the same on every process of one gateway (they
    share the secret key) and different elsewhere, and it tells nothing of the key (a hash of
    the fingerprint the database keeps). ``reelgate doctor`` reads it to tell that the public
    address reaches this gateway and not another."""
    return hashlib.sha256(b"reelgate gateway id\x00" + key_fingerprint.encode()).hexdigest()[:16]
