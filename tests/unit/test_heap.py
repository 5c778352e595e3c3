"""The collector's settings for the gateway's long-running processes (reelgate.heap)."""

from __future__ import annotations

import subprocess
import sys

from reelgate import heap


def test_settle_freezes_what_startup_made_and_collects_the_young_less_often() -> None:
    # In a process of its own: a frozen object is never collected, and this one runs tests.
    probe = (
        "import gc; from reelgate import app, heap; before = gc.get_freeze_count(); "
        "heap.settle(); print(before, gc.get_freeze_count(), *gc.get_threshold())"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    before, frozen, young, middle, oldest = map(int, out.split())
    assert before == 0
    assert frozen > 100_000, "the imported gateway's objects are frozen"
    assert (young, middle, oldest) == (heap.YOUNG_THRESHOLD, 10, 10)
