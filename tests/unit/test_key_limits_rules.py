"""The pure rules of per-key limits and idempotency keys, as tables."""

from __future__ import annotations

import datetime

import pytest

from reelgate.domain.idempotency import (
    Phase,
    Stored,
    StoredAnswer,
    answer_window_ms,
    check_key,
    fingerprint,
    replay,
)
from reelgate.domain.limits import (
    Bucket,
    BudgetPeriod,
    Rate,
    parse_budget,
    parse_expires_in,
    parse_rate,
    period_end,
    period_start,
    retry_after_s,
    take,
)
from reelgate.errors import Conflict, IdempotencyKeyReused, InvalidRequest


def _s(text: str) -> int:
    moment = datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)
    return int(moment.timestamp())


@pytest.mark.parametrize(
    ("text", "burst", "expected"),
    [
        ("5/s", None, Rate(5, 1, 5)),
        ("5", 10, Rate(5, 1, 10)),
        ("300/min", None, Rate(300, 60, 300)),
        ("1000/h", 1, Rate(1000, 3600, 1)),
        (" 2/S ", None, Rate(2, 1, 2)),
    ],
)
def test_rates_parse(text: str, burst: int | None, expected: Rate) -> None:
    assert parse_rate(text, burst) == expected


@pytest.mark.parametrize("text", ["0/s", "5/day", "-1", "1e3", "5/", "", "1000000/s"])
def test_bad_rates_are_400_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_rate(text, None)
    assert refused.value.param == "rate"


@pytest.mark.parametrize(
    ("text", "micro", "period"),
    [
        ("50/day", 50_000_000, BudgetPeriod.DAY),
        ("0.5/month", 500_000, BudgetPeriod.MONTH),
        ("20", 20_000_000, BudgetPeriod.TOTAL),
        ("0/total", 0, BudgetPeriod.TOTAL),
    ],
)
def test_budgets_parse(text: str, micro: int, period: BudgetPeriod) -> None:
    budget = parse_budget(text)
    assert (budget.micro_usdc, budget.period) == (micro, period)


@pytest.mark.parametrize("text", ["50/week", "-1/day", "1.0000001/day", "abc", "1e3/day"])
def test_bad_budgets_are_400_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_budget(text)
    assert refused.value.param == "budget_usd"


def test_expiries_count_from_now() -> None:
    assert parse_expires_in("30d", 1000) == 1000 + 30 * 86_400
    assert parse_expires_in("90m", 0) == 5400
    with pytest.raises(InvalidRequest):
        parse_expires_in("1w", 0)


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        ("day", "2026-03-31T23:59:59", "2026-03-31T00:00:00", "2026-04-01T00:00:00"),
        ("month", "2026-03-31T23:59:59", "2026-03-01T00:00:00", "2026-04-01T00:00:00"),
        ("month", "2026-12-15T12:00:00", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
        ("day", "2028-02-29T05:00:00", "2028-02-29T00:00:00", "2028-03-01T00:00:00"),
    ],
)
def test_budget_windows_are_utc_days_and_months(
    period: str, now: str, start: str, end: str
) -> None:
    which = BudgetPeriod(period)
    assert period_start(which, _s(now)) == _s(start)
    assert period_end(which, _s(now)) == _s(end)


def test_the_total_window_never_ends() -> None:
    assert period_start(BudgetPeriod.TOTAL, 1_800_000_000) == 0
    assert period_end(BudgetPeriod.TOTAL, 1_800_000_000) is None


def test_a_token_bucket_allows_its_burst_then_one_per_interval() -> None:
    rate = Rate(2, 1, 3)
    bucket: Bucket | None = None
    waits = []
    for _ in range(4):
        bucket, wait = take(bucket, rate, 100.0)
        waits.append(wait)
    assert waits == [0.0, 0.0, 0.0, 0.5]
    bucket, wait = take(bucket, rate, 100.5)
    assert wait == 0.0
    assert retry_after_s(0.01) == 1
    assert retry_after_s(1.2) == 2


@pytest.mark.parametrize("key", ["", "k" * 256, "clé", "tab\there", "\x7f"])
def test_idempotency_keys_are_1_to_255_printable_ascii(key: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_key(key)
    assert refused.value.param == "Idempotency-Key"


def test_the_fingerprint_ignores_field_order_and_spacing() -> None:
    assert fingerprint({"a": 1, "b": {"c": 2, "d": [1]}}) == fingerprint(
        {"b": {"d": [1], "c": 2}, "a": 1}
    )
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


@pytest.mark.parametrize(
    ("phase", "pending_until_ms", "given", "outcome"),
    [
        (Phase.DONE, 0, "f", "replay"),
        (Phase.PENDING, 2000, "f", "409"),
        (Phase.PENDING, 1000, "f", "replay"),
        (Phase.DONE, 0, "other", "422"),
        (Phase.PENDING, 2000, "other", "422"),
    ],
)
def test_what_a_repeat_is_answered(
    phase: Phase, pending_until_ms: int, given: str, outcome: str
) -> None:
    answer = StoredAnswer(202, b"{}", "/v1/tasks/t")
    stored = Stored("f", phase, answer, pending_until_ms, "t")
    if outcome == "replay":
        assert replay(stored, given, 1000) == answer
    else:
        with pytest.raises(Conflict if outcome == "409" else IdempotencyKeyReused):
            replay(stored, given, 1000)


def test_a_redis_url_that_is_not_one_stops_the_start_naming_the_setting() -> None:
    from pydantic import ValidationError

    from reelgate.config import Settings

    with pytest.raises(ValidationError, match="redis_url"):
        Settings(redis_url="http://127.0.0.1:6379")
    assert Settings(redis_url="redis://127.0.0.1:6379/0").redis_url == "redis://127.0.0.1:6379/0"


def test_a_first_create_is_waited_for_as_long_as_failing_over_through_every_channel_takes() -> None:
    # The default timeouts, 5 s to connect and 20 s to answer, plus 5 s for the create's writes.
    assert answer_window_ms(5, 20, 1) == 30_000
    # Refused slowly by the first of three channels, then the second: still its own answer.
    assert answer_window_ms(5, 20, 3) == 80_000
