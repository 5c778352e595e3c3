"""Channel rules: routing order, the circuit breaker, and which failures may fail over."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from reelgate.domain.channels import (
    Admission,
    Candidate,
    Circuit,
    after_failure,
    after_success,
    counts_against,
    fails_over,
    may_fail_over_to,
    retry_after_s,
    route,
)


def draws(*values: float) -> Callable[[], float]:
    cycle = itertools.cycle(values or (0.0,))
    return lambda: next(cycle)


C = Admission.CLOSED


def test_route_tries_lower_priority_values_first() -> None:
    order = route([Candidate("b", 2, 1, C), Candidate("a", 1, 1, C)], draws())
    assert order == ["a", "b"]


def test_route_leaves_out_open_circuits_and_full_channels() -> None:
    candidates = [
        Candidate("open", 0, 1, Admission.OPEN),
        Candidate("full", 0, 1, C, full=True),
        Candidate("ok", 1, 1, C),
    ]
    assert route(candidates, draws()) == ["ok"]


def test_route_puts_a_half_open_channel_after_the_closed_ones_of_its_priority() -> None:
    candidates = [Candidate("probe", 0, 100, Admission.PROBE), Candidate("ok", 0, 1, C)]
    assert route(candidates, draws()) == ["ok", "probe"]


@pytest.mark.parametrize(
    ("draw", "first"), [(0.0, "light"), (0.09, "light"), (0.1, "heavy"), (0.99, "heavy")]
)
def test_route_shares_equal_priorities_by_weight(draw: float, first: str) -> None:
    candidates = [Candidate("light", 0, 1, C), Candidate("heavy", 0, 9, C)]
    order = route(candidates, draws(draw))
    assert order[0] == first
    assert sorted(order) == ["heavy", "light"]


def test_route_with_zero_weights_keeps_every_channel() -> None:
    order = route([Candidate("a", 0, 0, C), Candidate("b", 0, 0, C)], draws())
    assert sorted(order) == ["a", "b"]


def test_a_circuit_opens_at_the_threshold_and_admits_one_probe_after_its_cool_down() -> None:
    circuit = Circuit()
    for _ in range(4):
        circuit = after_failure(circuit, 1000, threshold=5, cool_down_s=30)
    assert circuit.admission(1000) is Admission.CLOSED
    circuit = after_failure(circuit, 1000, threshold=5, cool_down_s=30)
    assert circuit.admission(30_999) is Admission.OPEN
    assert circuit.admission(31_000) is Admission.PROBE
    probing = Circuit(circuit.failures, circuit.open_until_ms, 40_000)
    assert probing.admission(35_000) is Admission.OPEN  # another process probes
    reopened = after_failure(probing, 35_000, threshold=5, cool_down_s=30)
    assert reopened.admission(35_000) is Admission.OPEN
    assert reopened.open_until_ms == 65_000
    assert after_success().admission(35_000) is Admission.CLOSED


@pytest.mark.parametrize(
    ("code", "moves"),
    [
        ("upstream_unreachable", True),
        ("upstream_rate_limited", True),
        ("upstream_quota", True),
        ("upstream_maintenance", True),
        ("upstream_server_error", True),
        ("upstream_overloaded", True),
        ("upstream_generation_failed", True),
        ("upstream_feature_disabled", True),
        ("upstream_outcome_unknown", False),
        ("upstream_rejected", False),
        ("content_policy", False),
        ("upstream_auth", False),
        ("upstream_credits", False),
        ("upstream_bad_answer", False),
    ],
)
def test_only_answers_that_prove_nothing_was_created_fail_over(code: str, moves: bool) -> None:
    assert fails_over(code) is moves


def test_a_timeout_after_sending_counts_against_the_circuit_but_a_bad_request_does_not() -> None:
    assert counts_against("upstream_outcome_unknown")
    assert not counts_against("upstream_rejected")


def test_failover_goes_only_to_channels_no_dearer_than_the_reservation() -> None:
    assert may_fail_over_to(100, 100)
    assert may_fail_over_to(99, 100)
    assert not may_fail_over_to(101, 100)


def test_retry_after_is_when_the_soonest_open_circuit_may_probe() -> None:
    assert retry_after_s([Circuit(5, 12_500), Circuit(5, 40_000)], 10_000) == 3
    assert retry_after_s([Circuit()], 10_000) == 30
    assert retry_after_s([Circuit(5, 9_000)], 10_000) == 1
