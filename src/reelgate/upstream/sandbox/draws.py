"""The sandbox's one source of chance: every fault and outcome is drawn here, so that a seed
repeats a run."""

from __future__ import annotations

import random


class Draws:
    def __init__(self, seed: int | None) -> None:
        self._random = random.Random(seed)

    def chance(self, share: float) -> bool:
        """True with probability ``share``. A zero share draws nothing, so turning one knob on
        leaves the sequence every other knob sees unchanged until it fires."""
        return share > 0 and self._random.random() < share
