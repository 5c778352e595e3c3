"""Money is integer micro-USDC everywhere; conversions from decimal amounts are exact or refused."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MICRO_PER_UNIT = 1_000_000
"""1 USDC = 1,000,000 micro-USDC; margins are kept in the same parts-per-million."""


def usd_to_micro(amount: str | Decimal | int) -> int:
    """Convert a decimal USD amount to micro-USDC, refusing anything finer than one micro-USDC."""
    try:
        value = Decimal(str(amount)) if not isinstance(amount, Decimal) else amount
    except InvalidOperation:
        raise ValueError(f"{amount!r} is not a decimal amount") from None
    if not value.is_finite():
        raise ValueError(f"{amount!r} is not a finite amount")
    micro = value * MICRO_PER_UNIT
    if micro != micro.to_integral_value():
        raise ValueError(f"{amount!r} has more than 6 decimal places")
    return int(micro)


def micro_to_usd(micro: int) -> str:
    """Render micro-USDC as a USD string with six decimals, for people."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO_PER_UNIT)
    return f"{sign}{whole}.{frac:06d}"


def margin_to_ppm(margin: Decimal) -> int:
    """A channel margin as an exact integer in parts per million (1.0 -> 1_000_000)."""
    return usd_to_micro(margin)


def divide_half_up(numerator: int, denominator: int) -> int:
    """Integer division of non-negative numbers rounding halves up: the one rounding step."""
    return (2 * numerator + denominator) // (2 * denominator)
