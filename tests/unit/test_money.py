"""Money is integer micro-USDC: conversions are exact or refused, rounding is half up."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from reelgate.domain.catalogue import MAX_DURATION, MODELS
from reelgate.domain.money import (
    CREDIT,
    INT64_MAX,
    MAX_BALANCE_MICRO_USDC,
    MAX_COST_MICRO_USDC,
    MAX_CREDIT_MICRO_USDC,
    MAX_LEDGER_ENTRY_MICRO_USDC,
    MAX_MARGIN_PPM,
    MAX_PRICE_PER_SECOND_MICRO_USDC,
    OPENING_CREDIT,
    UsdAmount,
    divide_half_up,
    margin_to_ppm,
    micro_to_usd,
    usd_to_micro,
)
from reelgate.domain.pricing import PriceBook


@pytest.mark.parametrize(
    ("amount", "micro"),
    [
        pytest.param("0", 0, id="zero"),
        pytest.param("1", 1_000_000, id="one-dollar"),
        pytest.param("0.000001", 1, id="one-micro"),
        pytest.param("0.205", 205_000, id="0.205"),
        pytest.param("0.1", 100_000, id="0.1-exact-not-binary-float"),
        pytest.param("123.456789", 123_456_789, id="six-decimals"),
        pytest.param("1.500000000", 1_500_000, id="trailing-zeros-beyond-6-are-exact"),
        pytest.param("-2.5", -2_500_000, id="negative"),
        pytest.param("1e-6", 1, id="exponent-notation"),
        pytest.param(100, 100_000_000, id="int"),
        pytest.param(Decimal("0.0775"), 77_500, id="decimal"),
        pytest.param(Decimal("15.5") * Decimal("0.005"), 77_500, id="decimal-product"),
        pytest.param("1000000000", 10**15, id="a-billion"),
    ],
)
def test_usd_to_micro_converts_exactly(amount: Any, micro: int) -> None:
    result = usd_to_micro(amount)
    assert result == micro
    assert type(result) is int


@pytest.mark.parametrize(
    "amount",
    [
        pytest.param("0.0000001", id="seven-decimals"),
        pytest.param("1.2345678", id="seven-decimals-with-units"),
        pytest.param("0.0000005", id="half-a-micro"),
        pytest.param(Decimal("1e-7"), id="decimal-1e-7"),
    ],
)
def test_usd_to_micro_refuses_more_than_6_decimals(amount: Any) -> None:
    with pytest.raises(ValueError, match="more than 6 decimal places"):
        usd_to_micro(amount)


@pytest.mark.parametrize(
    "amount",
    [
        pytest.param("abc", id="word"),
        pytest.param("", id="empty"),
        pytest.param("1,5", id="comma-decimal"),
        pytest.param("$1", id="currency-sign"),
        pytest.param("1.2.3", id="two-points"),
        pytest.param(None, id="none"),
        pytest.param(True, id="bool"),
        pytest.param([1], id="list"),
    ],
)
def test_usd_to_micro_refuses_non_numbers(amount: Any) -> None:
    with pytest.raises(ValueError, match="not a decimal amount"):
        usd_to_micro(amount)


@pytest.mark.parametrize(
    "amount",
    [
        pytest.param("Infinity", id="infinity"),
        pytest.param("-Infinity", id="minus-infinity"),
        pytest.param("inf", id="inf"),
        pytest.param("NaN", id="nan"),
        pytest.param(Decimal("Infinity"), id="decimal-infinity"),
        pytest.param(Decimal("NaN"), id="decimal-nan"),
    ],
)
def test_usd_to_micro_refuses_infinity_and_nan(amount: Any) -> None:
    with pytest.raises(ValueError, match="not a finite amount"):
        usd_to_micro(amount)


@pytest.mark.parametrize(
    ("micro", "usd"),
    [
        pytest.param(0, "0.000000", id="zero"),
        pytest.param(1, "0.000001", id="one-micro"),
        pytest.param(999_999, "0.999999", id="just-under-a-dollar"),
        pytest.param(1_000_000, "1.000000", id="one-dollar"),
        pytest.param(205_000, "0.205000", id="0.205"),
        pytest.param(123_456_789, "123.456789", id="six-decimals"),
        pytest.param(10**15, "1000000000.000000", id="a-billion"),
        pytest.param(-1, "-0.000001", id="minus-one-micro"),
        pytest.param(-2_500_000, "-2.500000", id="minus-2.5"),
        pytest.param(-1_000_000, "-1.000000", id="minus-one-dollar"),
    ],
)
def test_micro_to_usd_renders_six_decimals_with_sign(micro: int, usd: str) -> None:
    assert micro_to_usd(micro) == usd


@pytest.mark.parametrize(
    "micro", [0, 1, -1, 77_500, -2_500_000, 123_456_789, 10**15], ids=lambda m: f"{m}"
)
def test_micro_to_usd_round_trips_through_usd_to_micro(micro: int) -> None:
    assert usd_to_micro(micro_to_usd(micro)) == micro


@pytest.mark.parametrize(
    ("margin", "ppm"),
    [
        pytest.param("1", 1_000_000, id="1"),
        pytest.param("1.0", 1_000_000, id="1.0"),
        pytest.param("1.25", 1_250_000, id="1.25"),
        pytest.param("1.333333", 1_333_333, id="1.333333"),
        pytest.param("0.9", 900_000, id="discount-0.9"),
    ],
)
def test_margin_to_ppm_is_exact(margin: str, ppm: int) -> None:
    assert margin_to_ppm(Decimal(margin)) == ppm


def test_margin_to_ppm_refuses_more_than_6_decimals() -> None:
    with pytest.raises(ValueError, match="more than 6 decimal places"):
        margin_to_ppm(Decimal("1.3333333"))


@pytest.mark.parametrize(
    "margin",
    [
        pytest.param("0", id="zero"),
        pytest.param("-1", id="negative"),
        pytest.param("100.000001", id="just-over-100"),
        pytest.param("5000000000000", id="5e12"),
    ],
)
def test_margin_to_ppm_accepts_up_to_100_and_refuses_margins_outside(margin: str) -> None:
    assert margin_to_ppm(Decimal(100)) == MAX_MARGIN_PPM
    with pytest.raises(ValueError, match="more than 0 and at most 100"):
        margin_to_ppm(Decimal(margin))


@pytest.mark.parametrize(
    "amount",
    [
        pytest.param("9223372036855", id="micro-past-2**63"),
        pytest.param("-9223372036855", id="negative-micro-past-2**63"),
        pytest.param("1e999999", id="the-largest-exponent"),
        pytest.param(Decimal("1e400000"), id="decimal-with-a-huge-exponent"),
    ],
)
def test_usd_to_micro_accepts_up_to_64_bits_and_refuses_amounts_past_them(amount: Any) -> None:
    assert usd_to_micro("9223372036854.775807") == INT64_MAX
    with pytest.raises(ValueError, match="too large"):
        usd_to_micro(amount)


@pytest.mark.parametrize(
    ("numerator", "denominator", "quotient"),
    [
        pytest.param(0, 5, 0, id="zero"),
        pytest.param(4, 2, 2, id="exact"),
        pytest.param(1, 3, 0, id="0.33-down"),
        pytest.param(2, 3, 1, id="0.67-up"),
        pytest.param(1, 2, 1, id="0.5-up"),
        pytest.param(5, 2, 3, id="2.5-up-not-to-even"),
        pytest.param(7, 2, 4, id="3.5-up"),
        pytest.param(13, 4, 3, id="3.25-down"),
        pytest.param(14, 4, 4, id="3.5-up-quarter-denominator"),
        pytest.param(499_999, 1_000_000, 0, id="just-under-half"),
        pytest.param(500_000, 1_000_000, 1, id="exactly-half"),
        pytest.param(1_499_999_999, 1_000_000, 1500, id="1499.999999-up"),
        pytest.param(10**30 + 5 * 10**5, 10**6, 10**24 + 1, id="huge-no-float-loss"),
    ],
)
def test_divide_half_up_rounds_halves_up(numerator: int, denominator: int, quotient: int) -> None:
    assert divide_half_up(numerator, denominator) == quotient


# The limits: no sum the ledger can reach leaves a signed 64-bit integer.


def test_a_full_balance_plus_the_largest_credit_stays_far_below_64_bits() -> None:
    # The UPDATE adding a credit computes this sum before checking the limit.
    assert MAX_BALANCE_MICRO_USDC + MAX_CREDIT_MICRO_USDC < INT64_MAX // 1000


def test_the_dearest_quote_fits_64_bits_even_before_its_rounding_division() -> None:
    largest_product = MAX_PRICE_PER_SECOND_MICRO_USDC * MAX_DURATION * MAX_MARGIN_PPM
    assert largest_product < INT64_MAX
    assert MAX_COST_MICRO_USDC < INT64_MAX // 1_000_000


def test_the_dearest_quote_costs_exactly_the_largest_cost() -> None:
    book = PriceBook({"seedance-2": {"1080p_no_video": MAX_PRICE_PER_SECOND_MICRO_USDC}})
    quote = book.quote(MODELS["seedance-2"], "1080p", False, MAX_DURATION, MAX_MARGIN_PPM)
    assert quote.cost_micro_usdc == MAX_COST_MICRO_USDC


def test_every_ledger_entry_fits_the_largest_entry() -> None:
    assert MAX_CREDIT_MICRO_USDC <= MAX_LEDGER_ENTRY_MICRO_USDC
    assert MAX_COST_MICRO_USDC <= MAX_LEDGER_ENTRY_MICRO_USDC
    assert MAX_CREDIT_MICRO_USDC <= MAX_BALANCE_MICRO_USDC  # one credit fits an empty account


# USD amounts as operators write them (the admin API, the command line)


@pytest.mark.parametrize(
    ("rule", "text", "micro"),
    [
        pytest.param(OPENING_CREDIT, "0", 0, id="opening-zero"),
        pytest.param(OPENING_CREDIT, "0.000000", 0, id="opening-zero-with-decimals"),
        pytest.param(CREDIT, "0.000001", 1, id="one-micro"),
        pytest.param(CREDIT, "25.5", 25_500_000, id="25.5"),
        pytest.param(CREDIT, "999999999.999999", MAX_CREDIT_MICRO_USDC - 1, id="just-under"),
        pytest.param(CREDIT, "1000000000", MAX_CREDIT_MICRO_USDC, id="the-limit"),
        pytest.param(CREDIT, "1000000000.000000", MAX_CREDIT_MICRO_USDC, id="the-limit-x.000000"),
        pytest.param(OPENING_CREDIT, "1000000000", MAX_CREDIT_MICRO_USDC, id="opening-limit"),
    ],
)
def test_usd_amount_within_its_rule_converts_exactly(
    rule: UsdAmount, text: str, micro: int
) -> None:
    assert rule.to_micro(text) == micro


@pytest.mark.parametrize(
    ("rule", "text", "reason"),
    [
        pytest.param(CREDIT, "5000000000000", "is more than 1000000000", id="probe-5e12"),
        pytest.param(CREDIT, "9300000000000", "is too large", id="probe-9.3e12-past-64-bits"),
        pytest.param(CREDIT, "1000000000.000001", "is more than 1000000000", id="one-micro-over"),
        pytest.param(OPENING_CREDIT, "10000000000", "is more than 1000000000", id="opening-1e10"),
        pytest.param(CREDIT, "0", "is zero", id="zero-credit"),
        pytest.param(CREDIT, "0.000000", "is zero", id="zero-credit-with-decimals"),
        pytest.param(OPENING_CREDIT, "-5", "is negative", id="negative"),
        pytest.param(CREDIT, "1.0000001", "more than 6 decimal places", id="seven-decimals"),
        pytest.param(CREDIT, "abc", "not a decimal amount", id="word"),
        pytest.param(CREDIT, "", "not a decimal amount", id="empty"),
        pytest.param(CREDIT, "NaN", "not a finite amount", id="nan"),
        pytest.param(CREDIT, "1e999999", "too large", id="huge-exponent"),
        pytest.param(CREDIT, "1" * 5000, "too long", id="5000-digits"),
        pytest.param(CREDIT, "1e3", "not written as plain digits", id="exponent"),
        pytest.param(CREDIT, "+5", "not written as plain digits", id="plus-sign"),
        pytest.param(CREDIT, " 5", "not written as plain digits", id="leading-space"),
        pytest.param(CREDIT, "5\n", "not written as plain digits", id="trailing-newline"),
        pytest.param(CREDIT, "05", "not written as plain digits", id="leading-zero"),
        pytest.param(CREDIT, "5.", "not written as plain digits", id="bare-point"),
        pytest.param(CREDIT, "1_000", "not written as plain digits", id="underscore"),
        pytest.param(CREDIT, "1.5000000", "not written as plain digits", id="seven-places-exact"),
    ],
)
def test_usd_amount_outside_its_rule_is_refused_saying_why_and_the_rule(
    rule: UsdAmount, text: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=f"; it must be {rule.rule}$") as refused:
        rule.to_micro(text)
    assert reason in str(refused.value)
    assert "to 1000000000" in rule.rule


def test_usd_amount_limit_must_be_a_power_of_ten() -> None:
    with pytest.raises(ValueError, match="power of ten"):
        _ = UsdAmount(positive=True, most_usd=500).pattern
