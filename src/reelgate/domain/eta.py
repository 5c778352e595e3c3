"""How long a task still has to go, as a hint: from its state, the time it has run, and how long
recent tasks of its model took.

Generation time grows with the length of the video, so each finished task is kept as the wall
time it took per second of video, and scaled to the task asked about. Tasks of the same tier
(resolution and video input) are compared when there are enough of them, else the model's.
Of the finished tasks that ran longer than this one has so far, the median of what they still
had to go is the hint: a task that has outlasted most of them gets a hint from the slow ones,
and one that has outlasted all of them gets none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from reelgate.domain.task import TaskState

MIN_SAMPLES: Final = 5
"""Fewer finished tasks than this tell too little: no hint."""


@dataclass(frozen=True, slots=True)
class Finished:
    """How long one successful task took, from its create to its video stored."""

    tier: str
    duration: int
    """Seconds of video."""
    seconds: float
    """Wall time."""


def eta_hint_s(
    state: TaskState,
    elapsed_s: float,
    tier: str,
    duration: int,
    finished: Sequence[Finished],
) -> int | None:
    """Whole seconds the task still has to go (at least 1 while it runs, 0 once it has
    ended), or None when recent tasks do not tell."""
    if state.is_final:
        return 0
    same_tier = [f for f in finished if f.tier == tier]
    sample = same_tier if len(same_tier) >= MIN_SAMPLES else finished
    if len(sample) < MIN_SAMPLES or duration <= 0:
        return None
    ahead = sorted(
        left
        for f in sample
        if f.duration > 0 and (left := f.seconds / f.duration * duration - elapsed_s) > 0
    )
    if not ahead:
        return None
    return max(1, math.ceil(ahead[len(ahead) // 2]))
