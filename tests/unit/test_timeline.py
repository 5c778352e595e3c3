"""A task's timeline from its row and its recorded changes of state
(reelgate.domain.timeline): tables, no clock."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from reelgate.domain.ids import first_id_at, made_at_ms
from reelgate.domain.pricing import Quote
from reelgate.domain.task import BillingStatus, Submission, TaskRecord, TaskState
from reelgate.domain.timeline import Step, TaskEvent, created_at_ms, timeline

CREATED_MS = 1_800_000_000_250
NOW_MS = CREATED_MS + 60_000
W, Q, G, S, F = (
    TaskState.WAITING,
    TaskState.QUEUING,
    TaskState.GENERATING,
    TaskState.SUCCESS,
    TaskState.FAIL,
)


def task(**changes: Any) -> TaskRecord:
    base = TaskRecord(
        # An id made in the task's millisecond of creation, as the create path makes it.
        id=first_id_at("task", CREATED_MS),
        account_id="acct_1",
        key_id="key_1",
        model="seedance-2-fast",
        state=W,
        progress=0,
        request={"prompt": "a kite"},
        result=None,
        error=None,
        channel="kie",
        upstream_task_id="up-1",
        submission=Submission.ACCEPTED,
        billing_status=BillingStatus.RESERVED,
        quote=Quote("480p_no_video", 77_500, 4, 1_000_000, 310_000),
        created_at=CREATED_MS // 1000,
        updated_at=CREATED_MS // 1000,
        completed_at=None,
        state_since_ms=CREATED_MS,
    )
    return dataclasses.replace(base, **changes)


def at(offset_ms: int) -> int:
    return CREATED_MS + offset_ms


def step(
    state: TaskState,
    offset_ms: int,
    duration_ms: int | None,
    progress: int = 0,
    *,
    current: bool = False,
    detail: str | None = None,
    recorded: bool = True,
) -> Step:
    return Step(state, at(offset_ms), progress, detail, duration_ms, current, recorded)


# (what it shows, the task, its events, the timeline)
TABLE: list[tuple[str, TaskRecord, list[TaskEvent], tuple[Step, ...]]] = [
    (
        "a task just created is waiting since its creation, up to now",
        task(),
        [],
        (step(W, 0, 60_000, current=True),),
    ),
    (
        "each state lasts until the next, and a success has no duration",
        task(state=S, progress=100),
        [
            TaskEvent(Q, at(1_000), 5),
            TaskEvent(G, at(3_000), 20),
            TaskEvent(S, at(9_500), 100),
        ],
        (
            step(W, 0, 1_000),
            step(Q, 1_000, 2_000, 5),
            step(G, 3_000, 6_500, 20),
            step(S, 9_500, None, 100, current=True),
        ),
    ),
    (
        "a failure keeps its error code as its detail",
        task(state=F, progress=30),
        [TaskEvent(G, at(2_000), 10), TaskEvent(F, at(7_000), 30, "generation_failed")],
        (
            step(W, 0, 2_000),
            step(G, 2_000, 5_000, 10),
            step(F, 7_000, None, 30, current=True, detail="generation_failed"),
        ),
    ),
    (
        "a state skipped upstream is simply absent; the current one runs up to now",
        task(state=G, progress=40),
        [TaskEvent(G, at(4_000), 12)],
        (step(W, 0, 4_000), step(G, 4_000, 56_000, 12, current=True)),
    ),
    (
        "events are ordered by state, not by the clocks of the processes that wrote them",
        task(state=S, progress=100),
        [
            TaskEvent(S, at(5_000), 100),
            TaskEvent(G, at(5_200), 60),  # a clock 300 ms ahead of the one that wrote success
            TaskEvent(Q, at(1_000), 5),
        ],
        (
            step(W, 0, 1_000),
            step(Q, 1_000, 4_200, 5),
            step(G, 5_200, 0, 60),
            step(S, 5_000, None, 100, current=True),
        ),
    ),
    (
        "a state recorded twice counts once, at its first record",
        task(state=G, progress=50),
        [TaskEvent(G, at(3_000), 10), TaskEvent(G, at(3_400), 30)],
        (step(W, 0, 3_000), step(G, 3_000, 57_000, 10, current=True)),
    ),
    (
        "a task that ended before events were kept ends with its row's state, unrecorded",
        task(
            state=S, progress=100, state_since_ms=at(20_000), completed_at=CREATED_MS // 1000 + 20
        ),
        [],
        (step(W, 0, 20_000), step(S, 20_000, None, 100, current=True, recorded=False)),
    ),
    (
        "without even its row's start of state, the end of the task is used",
        task(state=F, state_since_ms=None, completed_at=CREATED_MS // 1000 + 30),
        [],
        (
            step(W, 0, 29_750),
            Step(F, (CREATED_MS // 1000 + 30) * 1000, 0, None, None, True, False),
        ),
    ),
    (
        "a clock behind the creation's shows no negative time",
        task(state=Q, progress=5),
        [TaskEvent(Q, at(-400), 5)],
        (step(W, 0, 0), step(Q, -400, 60_400, 5, current=True)),
    ),
]


@pytest.mark.parametrize(
    ("task_", "events", "expected"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE]
)
def test_timeline(task_: TaskRecord, events: list[TaskEvent], expected: tuple[Step, ...]) -> None:
    assert timeline(task_, events, NOW_MS) == expected


# (what it shows, the task's id, its row's creation second, the creation it is shown at)
CREATED: list[tuple[str, str, int, int]] = [
    ("the id's millisecond", first_id_at("task", CREATED_MS), CREATED_MS // 1000, CREATED_MS),
    (
        "the row's second, for an id made in another second",
        first_id_at("task", CREATED_MS - 2_000),
        CREATED_MS // 1000,
        CREATED_MS // 1000 * 1000,
    ),
    ("the row's second, for an id of another kind", "task_1", 1_800_000_000, 1_800_000_000_000),
]


@pytest.mark.parametrize(
    ("task_id", "created_s", "expected"), [row[1:] for row in CREATED], ids=[r[0] for r in CREATED]
)
def test_created_at_ms(task_id: str, created_s: int, expected: int) -> None:
    assert created_at_ms(task(id=task_id, created_at=created_s)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (first_id_at("task", 1_234_567), 1_234_567),
        ("task_not-a-ulid", None),
        ("no-prefix", None),
    ],
)
def test_made_at_ms(value: str, expected: int | None) -> None:
    assert made_at_ms(value) == expected
