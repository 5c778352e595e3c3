"""A task's timeline: each state it was in, when it entered it and how long it stayed.

A task is created waiting (its row's creation time says when); every later change of state
is kept as a :class:`TaskEvent`, written in the transaction that made the change. States only
move forward, so the timeline is ordered by state, not by the clocks of the processes that
wrote the events; a duration those clocks would make negative is shown as zero.

No clock is read here: the caller says what time it is now.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from reelgate.domain.ids import made_at_ms
from reelgate.domain.task import ORDER, TaskRecord, TaskState

DETAIL_LENGTH: Final = 64
"""The most a step's detail (an error code) keeps."""


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """A task entered ``state`` at ``at_ms``, with ``progress`` then; ``detail`` says more in
    a word (a failure's error code)."""

    state: TaskState
    at_ms: int
    progress: int
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One state of a task's timeline."""

    state: TaskState
    entered_at_ms: int
    progress: int
    """The progress when the task entered the state."""
    detail: str | None
    duration_ms: int | None
    """How long the task stayed: until the next state, or until now for the state it is in;
    None for the state it ended in."""
    current: bool
    """Whether the task is in this state now."""
    recorded: bool = True
    """False for a state read from the task itself, its change not recorded as an event (a
    task that changed before events were kept): the states between went unrecorded."""


def created_at_ms(task: TaskRecord) -> int:
    """When the task was created, to the millisecond its id was made at when that falls in the
    second its row was created (the row keeps whole seconds)."""
    made = made_at_ms(task.id)
    if made is not None and made // 1000 == task.created_at:
        return made
    return task.created_at * 1000


def timeline(task: TaskRecord, events: Iterable[TaskEvent], now_ms: int) -> tuple[Step, ...]:
    """The task's states in the order it went through them: waiting from its creation, then
    each recorded change. A repeated state counts once, at its first record; a task whose
    present state has no event (it changed before events were kept) ends with that state, as
    its row says, marked unrecorded."""
    entered: list[TaskEvent] = [TaskEvent(TaskState.WAITING, created_at_ms(task), 0)]
    seen = {TaskState.WAITING}
    for event in sorted(events, key=lambda e: (ORDER[e.state], e.at_ms)):
        if event.state not in seen:
            seen.add(event.state)
            entered.append(event)
    recorded = [True] * len(entered)
    if task.state not in seen:
        since_ms = task.state_since_ms
        if since_ms is None:
            since_ms = (task.completed_at or task.updated_at) * 1000
        entered.append(TaskEvent(task.state, since_ms, task.progress))
        recorded.append(False)
    steps: list[Step] = []
    for index, (event, was_recorded) in enumerate(zip(entered, recorded, strict=True)):
        last = index == len(entered) - 1
        if not last:
            duration: int | None = max(0, entered[index + 1].at_ms - event.at_ms)
        elif event.state.is_final:
            duration = None
        else:
            duration = max(0, now_ms - event.at_ms)
        steps.append(
            Step(
                state=event.state,
                entered_at_ms=event.at_ms,
                progress=event.progress,
                detail=event.detail,
                duration_ms=duration,
                current=last and event.state == task.state,
                recorded=was_recorded,
            )
        )
    return tuple(steps)
