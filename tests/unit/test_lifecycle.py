"""Every way a task moves or ends, decided by reelgate.domain.lifecycle: tables, no clock."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from reelgate.domain import lifecycle
from reelgate.domain.lifecycle import Advance, Fail, Made, Reschedule, Schedule
from reelgate.domain.pricing import Quote
from reelgate.domain.progress import estimate
from reelgate.domain.task import (
    BillingStatus,
    MediaFile,
    Submission,
    TaskRecord,
    TaskState,
)
from reelgate.domain.upstream import UpstreamStatus

NOW_MS = 1_800_000_000_000
CREATED_S = NOW_MS // 1000 - 60
SCHEDULE = Schedule(poll_min_s=2, poll_max_s=30, pending_submission_s=120, unknown_submission_s=900)


def task(**changes: Any) -> TaskRecord:
    base = TaskRecord(
        id="task_01JD7Z0000000000000000000A",
        account_id="acct_1",
        key_id="key_1",
        model="seedance-2-fast",
        state=TaskState.QUEUING,
        progress=5,
        request={"prompt": "a kite", "resolution": "480p"},
        result=None,
        error=None,
        channel="kie",
        upstream_task_id="up-1",
        submission=Submission.ACCEPTED,
        billing_status=BillingStatus.RESERVED,
        quote=Quote("480p_no_video", 77_500, 4, 1_000_000, 310_000),
        created_at=CREATED_S,
        updated_at=CREATED_S,
        completed_at=None,
        polls=3,
        deadline_at_ms=NOW_MS + 3_600_000,
        state_since_ms=NOW_MS - 10_000,
    )
    return dataclasses.replace(base, **changes)


def status(state: TaskState | None, **changes: Any) -> UpstreamStatus:
    return UpstreamStatus(upstream_task_id="up-1", state=state, **changes)


# (the task, what the upstream says, the decision)
STATUS_TABLE: list[tuple[str, TaskRecord, UpstreamStatus, lifecycle.Decision]] = [
    ("unknown state changes nothing", task(), status(None), None),
    ("a repeat of the state, progress held", task(), status(TaskState.QUEUING), None),
    (
        "queuing moves on to generating",
        task(),
        status(TaskState.GENERATING),
        Advance(TaskState.GENERATING, 15),
    ),
    ("waiting after queuing is no move back", task(), status(TaskState.WAITING), None),
    (
        "generating for a minute estimates progress",
        task(state=TaskState.GENERATING, progress=15, state_since_ms=NOW_MS - 60_000),
        status(TaskState.GENERATING),
        Advance(TaskState.GENERATING, 65),
    ),
    (
        "progress never falls",
        task(state=TaskState.GENERATING, progress=90, state_since_ms=NOW_MS - 1_000),
        status(TaskState.GENERATING),
        None,
    ),
    (
        "success with a video is made, to be copied",
        task(),
        status(TaskState.SUCCESS, result_urls=("https://cdn/v.mp4",)),
        Made(("https://cdn/v.mp4",)),
    ),
    (
        "a success already recorded is not recorded twice",
        task(origin_urls=("https://cdn/v.mp4",)),
        status(TaskState.SUCCESS, result_urls=("https://cdn/v.mp4",)),
        None,
    ),
    (
        "fail names a short alphanumeric code only",
        task(),
        status(TaskState.FAIL, fail_code="E42", fail_message="upstream words"),
        Fail(
            {"code": "generation_failed", "message": "the video could not be generated (code E42)"}
        ),
    ),
    (
        "fail never repeats the upstream's odd codes",
        task(),
        status(TaskState.FAIL, fail_code="kie: <script>"),
        Fail({"code": "generation_failed", "message": "the video could not be generated"}),
    ),
    (
        "a finished task ignores everything",
        task(state=TaskState.FAIL),
        status(TaskState.SUCCESS),
        None,
    ),
]


@pytest.mark.parametrize(
    ("record", "said", "decision"),
    [row[1:] for row in STATUS_TABLE],
    ids=[row[0] for row in STATUS_TABLE],
)
def test_what_an_upstream_status_means_for_a_task(
    record: TaskRecord, said: UpstreamStatus, decision: lifecycle.Decision
) -> None:
    assert lifecycle.on_status(record, said, NOW_MS) == decision


def test_a_refused_create_fails_without_a_webhook() -> None:
    decision = lifecycle.on_create_refused("upstream_credits", "the account is out of credit")
    assert decision == Fail(
        {"code": "upstream_credits", "message": "the account is out of credit"}, notify=False
    )


CONCLUDE_TABLE: list[tuple[str, TaskRecord, int, bool, Fail | Reschedule]] = [
    ("due again after the poll delay", task(polls=0), NOW_MS, False, Reschedule(NOW_MS + 2000)),
    ("the delay grows with each check", task(polls=2), NOW_MS, False, Reschedule(NOW_MS + 4500)),
    ("and is capped", task(polls=50), NOW_MS, False, Reschedule(NOW_MS + 30_000)),
    ("an outage slows checks down", task(polls=0), NOW_MS, True, Reschedule(NOW_MS + 8000)),
    (
        "never later than the deadline",
        task(polls=50, deadline_at_ms=NOW_MS + 1000),
        NOW_MS,
        False,
        Reschedule(NOW_MS + 1000),
    ),
    (
        "at the deadline it fails",
        task(deadline_at_ms=NOW_MS),
        NOW_MS,
        False,
        Fail(
            {
                "code": "deadline_exceeded",
                "message": "the video was not ready before the task's deadline; "
                "nothing was charged",
            }
        ),
    ),
    (
        "a video made but never copied fails as unavailable",
        task(deadline_at_ms=NOW_MS, origin_urls=("https://cdn/v.mp4",)),
        NOW_MS,
        False,
        Fail(
            {
                "code": "result_unavailable",
                "message": "the video was made but could not be stored before the task's "
                "deadline; nothing was charged",
            }
        ),
    ),
    (
        "an unanswered create is waited for",
        task(submission=Submission.UNKNOWN, upstream_task_id=None, polls=50),
        NOW_MS,
        False,
        Reschedule(NOW_MS + 30_000),
    ),
    (
        "an unanswered create is checked at its give-up time",
        task(
            submission=Submission.UNKNOWN,
            upstream_task_id=None,
            polls=50,
            created_at=(NOW_MS - 890_000) // 1000,
        ),
        NOW_MS,
        False,
        Reschedule(NOW_MS + 10_000),
    ),
    (
        "an unanswered create never found again fails",
        task(
            submission=Submission.UNKNOWN,
            upstream_task_id=None,
            created_at=(NOW_MS - 900_000) // 1000,
        ),
        NOW_MS,
        False,
        Fail(
            {
                "code": "submission_lost",
                "message": "the video provider never confirmed the task; nothing was charged",
            }
        ),
    ),
]


@pytest.mark.parametrize(
    ("record", "now_ms", "upstream_failed", "end"),
    [row[1:] for row in CONCLUDE_TABLE],
    ids=[row[0] for row in CONCLUDE_TABLE],
)
def test_after_a_check_a_task_is_rescheduled_or_ended(
    record: TaskRecord, now_ms: int, upstream_failed: bool, end: Fail | Reschedule
) -> None:
    decided = lifecycle.conclude(
        record, SCHEDULE, now_ms=now_ms, jitter=1.0, upstream_failed=upstream_failed
    )
    assert decided == end


@pytest.mark.parametrize(
    ("polls", "jitter", "delay"),
    [(0, 1.0, 2.0), (1, 1.0, 3.0), (2, 1.0, 4.5), (0, 0.8, 1.6), (0, 1.2, 2.4), (9, 1.0, 30.0)],
)
def test_the_poll_delay_grows_by_half_per_check_up_to_its_cap(
    polls: int, jitter: float, delay: float
) -> None:
    assert lifecycle.poll_delay_s(SCHEDULE, polls, jitter) == pytest.approx(delay)


@pytest.mark.parametrize(
    ("submission", "age_s", "unknown"),
    [
        (Submission.PENDING, 119, False),
        (Submission.PENDING, 120, True),
        (Submission.UNKNOWN, 500, False),
        (Submission.ACCEPTED, 500, False),
    ],
)
def test_a_pending_create_becomes_unknown_once_no_request_can_be_waiting(
    submission: Submission, age_s: int, unknown: bool
) -> None:
    record = task(submission=submission, created_at=(NOW_MS // 1000) - age_s)
    assert lifecycle.submission_is_unknown(record, SCHEDULE, NOW_MS) is unknown


OURS = (
    "https://gw.example/v1/upstream/callbacks/kie?task_id=task_01JD7Z0000000000000000000A&token=t"
)


@pytest.mark.parametrize(
    ("record", "callback_url", "binds"),
    [
        (task(upstream_task_id=None, submission=Submission.UNKNOWN), OURS, True),
        (task(upstream_task_id=None, submission=Submission.PENDING), OURS, True),
        (task(upstream_task_id="up-1"), OURS, False),
        (task(upstream_task_id=None, submission=Submission.UNKNOWN), None, False),
        (
            task(upstream_task_id=None, submission=Submission.UNKNOWN),
            OURS.replace("0A&", "0B&"),
            False,
        ),
        (
            task(upstream_task_id=None, submission=Submission.UNKNOWN),
            "https://evil.example/?x=task_id=task_01JD7Z0000000000000000000A",
            False,
        ),
        (
            task(upstream_task_id=None, submission=Submission.UNKNOWN, state=TaskState.FAIL),
            OURS,
            False,
        ),
    ],
    ids=[
        "unknown",
        "pending",
        "already-bound",
        "no-callback",
        "another-task",
        "smuggled-in-a-value",
        "finished",
    ],
)
def test_an_upstream_task_is_bound_only_when_its_own_record_names_the_task(
    record: TaskRecord, callback_url: str | None, binds: bool
) -> None:
    said = status(TaskState.GENERATING, callback_url=callback_url)
    assert lifecycle.may_bind(record, said) is binds


def test_a_stored_video_succeeds_the_task_with_where_the_upstream_made_it() -> None:
    record = task(origin_urls=("https://cdn/v.mp4",))
    media = (MediaFile("video/mp4", 1234),)
    assert lifecycle.succeeded(record, media, 1_800_000_000) == lifecycle.Succeed(
        result={
            "created": 1_800_000_000,
            "resolution": "480p",
            "origin_data": [{"url": "https://cdn/v.mp4"}],
        },
        media=media,
    )


PROGRESS_TABLE = [
    (TaskState.WAITING, 0, 0, 0),
    (TaskState.QUEUING, 0, 0, 5),
    (TaskState.GENERATING, 0, 0, 15),
    (TaskState.GENERATING, 60, 0, 65),
    (TaskState.GENERATING, 6000, 0, 95),
    (TaskState.GENERATING, 0, 50, 50),
    (TaskState.QUEUING, 0, 40, 40),
    (TaskState.SUCCESS, 0, 40, 100),
    (TaskState.FAIL, 0, 40, 40),
    (TaskState.FAIL, 0, 100, 99),
    (TaskState.GENERATING, -5, 0, 15),
]


@pytest.mark.parametrize(("state", "seconds", "previous", "expected"), PROGRESS_TABLE)
def test_progress_is_banded_by_state_never_falls_and_is_100_only_on_success(
    state: TaskState, seconds: float, previous: int, expected: int
) -> None:
    assert estimate(state, seconds, previous) == expected
