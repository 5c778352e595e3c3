"""The ETA hint: from the task's state, how long it has run, and how long recent tasks of its
model took, per second of video (tables)."""

from __future__ import annotations

import pytest

from reelgate.domain.eta import MIN_SAMPLES, Finished, eta_hint_s
from reelgate.domain.task import TaskState

T720 = "720p_no_video"
T480 = "480p_no_video"


def took(seconds: float, tier: str = T720, duration: int = 5, count: int = 1) -> list[Finished]:
    return [Finished(tier, duration, seconds)] * count


@pytest.mark.parametrize(
    ("state", "elapsed", "duration", "finished", "hint"),
    [
        # Nothing known: no hint.
        (TaskState.WAITING, 0, 5, [], None),
        (TaskState.WAITING, 0, 5, took(100, count=MIN_SAMPLES - 1), None),
        # Five tasks of 5 s that took 100 s: a new one has 100 s to go, one 40 s in has 60.
        (TaskState.WAITING, 0, 5, took(100, count=5), 100),
        (TaskState.GENERATING, 40, 5, took(100, count=5), 60),
        # Longer videos take longer: 20 s of wall time per second of video.
        (TaskState.QUEUING, 0, 10, took(100, count=5), 200),
        # The median of what those still running at this age had left.
        (TaskState.GENERATING, 0, 5, took(60, count=3) + took(100, count=2) + took(300), 100),
        (TaskState.GENERATING, 70, 5, took(60, count=3) + took(100, count=2) + took(300), 30),
        (TaskState.GENERATING, 110, 5, took(60, count=3) + took(100, count=2) + took(300), 190),
        # Outlasted every one of them: no hint.
        (TaskState.GENERATING, 400, 5, took(100, count=5), None),
        # Never below a second while it runs; 0 once it has ended.
        (TaskState.GENERATING, 99.5, 5, took(100, count=5), 1),
        (TaskState.SUCCESS, 10, 5, took(100, count=5), 0),
        (TaskState.FAIL, 10, 5, [], 0),
    ],
)
def test_eta_hint(
    state: TaskState, elapsed: float, duration: int, finished: list[Finished], hint: int | None
) -> None:
    assert eta_hint_s(state, elapsed, T720, duration, finished) == hint


def test_tasks_of_the_same_tier_are_preferred_when_there_are_enough() -> None:
    finished = took(100, T720, count=5) + took(20, T480, count=5)
    assert eta_hint_s(TaskState.WAITING, 0, T480, 5, finished) == 20
    assert eta_hint_s(TaskState.WAITING, 0, T720, 5, finished) == 100


def test_the_model_s_tasks_stand_in_when_its_tier_has_too_few() -> None:
    finished = took(100, T720, count=5) + took(20, T480, count=1)
    assert eta_hint_s(TaskState.WAITING, 0, T480, 5, finished) == 100
