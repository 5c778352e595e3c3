"""Progress a person can trust: from the upstream state and the time spent in it.

The upstream reports no percentage, so it is estimated: each state owns a band, and within the
generating band progress approaches its top ever more slowly, so it keeps moving without ever
reaching 100 before the video exists. It never goes down, and is 100 only on success.
"""

from __future__ import annotations

import math
from typing import Final

from reelgate.domain.task import TaskState

_BANDS: Final = {
    TaskState.WAITING: (0, 5),
    TaskState.QUEUING: (5, 15),
    TaskState.GENERATING: (15, 95),
}
GENERATING_TIME_CONSTANT_S: Final = 60.0
"""About two thirds of the generating band is covered after this long."""


def estimate(state: TaskState, seconds_in_state: float, previous: int) -> int:
    if state is TaskState.SUCCESS:
        return 100
    if state is TaskState.FAIL:
        return min(previous, 99)
    low, high = _BANDS[state]
    if state is TaskState.GENERATING:
        share = 1 - math.exp(-max(seconds_in_state, 0) / GENERATING_TIME_CONSTANT_S)
        value = low + int((high - low) * share)
    else:
        value = low
    return min(max(previous, value), 99)
