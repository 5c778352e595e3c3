"""How a background loop is doing, as the loop's supervisor keeps it and readers show it."""

from __future__ import annotations

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
