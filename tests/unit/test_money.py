"""Money is integer micro-USDC: conversions are exact or refused, rounding is half up."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from reelgate.domain.money import divide_half_up, margin_to_ppm, micro_to_usd, usd_to_micro


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
