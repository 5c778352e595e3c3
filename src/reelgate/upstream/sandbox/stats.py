"""What the sandbox counts, for tests and benchmarks to assert on."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class SandboxStats:
    created: int = 0
    record_calls: int = 0
    credit_calls: int = 0
    overlapping_polls: int = 0
    """recordInfo calls that began while another for the same task was still being answered:
    proof, when it stays 0, that no two pollers ever query one task at once."""
    callbacks_sent: int = 0
    """Deliveries answered with HTTP 200 (a duplicate counts twice)."""
    callbacks_lost: int = 0
    callbacks_late: int = 0
    callbacks_duplicated: int = 0
    callback_failed_attempts: int = 0
    callbacks_undelivered: int = 0
    """Gave up after three failed attempts, as KIE does."""
    faults: Counter[str] = field(default_factory=Counter)
    """Injected faults by endpoint and kind, e.g. ``record_http_503``."""

    def as_json(self, renders: int, polls: dict[str, int]) -> dict[str, Any]:
        return {**asdict(self), "faults": dict(self.faults), "renders": renders, "polls": polls}
