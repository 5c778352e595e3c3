"""The garbage collector's settings for a long-running process of the gateway.

Importing the gateway and building its app leaves several hundred thousand objects that live
as long as the process. Left to the collector, every full collection walks them all again, and
under load a create triggered one every few hundred requests: about 5 % of the create path's
CPU in a profile (see bench/README.md). Frozen after startup they are never walked again; the
youngest generation is also collected less often, since a request makes thousands of short-
lived objects, nearly all freed by reference counting before any collection could see them.

For the processes the command line starts (``serve``, ``engine``) only: tests build many apps
in one process, and a frozen object is never collected.
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG_THRESHOLD: Final = 10_000
"""Allocations, net of frees, between collections of the youngest generation (Python's default
is 700)."""


def settle() -> None:
    """Collect once, then keep what survived out of every later collection."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
