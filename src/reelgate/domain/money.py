"""Money is integer micro-USDC everywhere; conversions from decimal amounts are exact or refused.

Every amount that reaches the ledger is bounded, so that no sum it can reach leaves a signed
64-bit integer: past it PostgreSQL's BIGINT refuses the statement and SQLite silently stores a
float. The limits below are generous on purpose; each one says why it is safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

from reelgate.domain.catalogue import MAX_DURATION

MICRO_PER_UNIT: Final = 1_000_000
"""1 USDC = 1,000,000 micro-USDC; margins are kept in the same parts-per-million."""

INT64_MAX: Final = 2**63 - 1
"""About 9.2 x 10**18: the largest integer a BIGINT column or an SQLite INTEGER holds."""

MAX_BALANCE_USD: Final = 10**9
MAX_BALANCE_MICRO_USDC: Final = MAX_BALANCE_USD * MICRO_PER_UNIT
"""A billion USD per account (10**15 micro-USDC). Reservations never exceed the balance, so
every account figure stays below it, more than 9,000 times below INT64_MAX."""

MAX_CREDIT_USD: Final = MAX_BALANCE_USD
MAX_CREDIT_MICRO_USDC: Final = MAX_CREDIT_USD * MICRO_PER_UNIT
"""One credit, an opening credit included, may fill an empty account and no more. The UPDATE
that adds it computes balance + credit, at most 2 x 10**15: more than 4,000 times below
INT64_MAX, so the sum cannot overflow before the limit is checked."""

MAX_PRICE_PER_SECOND_MICRO_USDC: Final = 1_000 * MICRO_PER_UNIT
"""1,000 USD per generated second, about 2,000 times KIE's dearest tier (0.51 USD)."""

MAX_MARGIN: Final = 100
MAX_MARGIN_PPM: Final = MAX_MARGIN * MICRO_PER_UNIT
"""A hundredfold mark-up on the upstream's price."""

MAX_COST_MICRO_USDC: Final = (
    MAX_PRICE_PER_SECOND_MICRO_USDC * MAX_DURATION * MAX_MARGIN_PPM // MICRO_PER_UNIT
)
"""The dearest possible task. Its unrounded product price x duration x margin in ppm is
10**9 x 15 x 10**8 = 1.5 x 10**18, within INT64_MAX even before the division by 10**6; the cost
itself is 1.5 x 10**12 micro-USDC (1.5 million USD), six million times below INT64_MAX."""

MAX_LEDGER_ENTRY_MICRO_USDC: Final = max(MAX_CREDIT_MICRO_USDC, MAX_COST_MICRO_USDC)
"""A ledger entry is a credit or a task's cost (reserved, committed or released).

The ledger's running sums per account (credits, commits) grow only with money actually spent:
credits minus commits is the balance, so credits reach INT64_MAX only after some nine trillion
USD have been spent through one account."""

# The magnitude past which a decimal amount is not even converted: its micro-USDC would not fit.
_LARGEST_UNITS: Final = Decimal(INT64_MAX) / MICRO_PER_UNIT


def usd_to_micro(amount: str | Decimal | int) -> int:
    """Convert a decimal USD amount to micro-USDC, refusing anything finer than one micro-USDC
    and anything whose micro-USDC would not fit in a signed 64-bit integer."""
    try:
        value = Decimal(str(amount)) if not isinstance(amount, Decimal) else amount
    except InvalidOperation:
        raise ValueError(f"{amount!r} is not a decimal amount") from None
    if not value.is_finite():
        raise ValueError(f"{amount!r} is not a finite amount")
    # Compared before multiplying: a huge exponent would overflow the decimal context or
    # take seconds to turn into an integer.
    if abs(value) > _LARGEST_UNITS:
        raise ValueError(f"{amount!r} is too large")
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
    """A channel margin as an exact integer in parts per million (1.0 -> 1_000_000), refused
    unless it is more than zero and at most MAX_MARGIN."""
    ppm = usd_to_micro(margin)
    if not 0 < ppm <= MAX_MARGIN_PPM:
        raise ValueError(f"margin {margin} must be more than 0 and at most {MAX_MARGIN}")
    return ppm


def divide_half_up(numerator: int, denominator: int) -> int:
    """Integer division of non-negative numbers rounding halves up: the one rounding step."""
    return (2 * numerator + denominator) // (2 * denominator)


# Refused amounts are quoted in errors up to this length: the longest valid one has 17 characters.
_LONGEST_SHOWN: Final = 40


@dataclass(frozen=True, slots=True)
class UsdAmount:
    """What an operator may write as an amount of USD (the admin API, the command line): plain
    digits with at most 6 decimal places, from the least to ``most_usd``.

    One regular expression decides, the same one the OpenAPI document shows, so that a request
    valid by the document is never refused. Neither signs, exponents, spaces nor leading zeros
    are accepted: an amount of money is written one way."""

    positive: bool
    """Whether zero is refused (a credit must add something)."""
    most_usd: int
    """A power of ten, so that the expression can count its digits."""

    @property
    def least_micro(self) -> int:
        return 1 if self.positive else 0

    @property
    def pattern(self) -> str:
        digits = len(str(self.most_usd)) - 1
        if self.most_usd != 10**digits or digits < 1:
            raise ValueError(f"most_usd must be a power of ten, not {self.most_usd}")
        fraction = r"(?:\.[0-9]{1,6})?"
        below = rf"(?:0|[1-9][0-9]{{0,{digits - 1}}}){fraction}"
        at_most = rf"{self.most_usd}(?:\.0{{1,6}})?"
        not_zero = r"(?!0(?:\.0{1,6})?$)" if self.positive else ""
        return rf"^{not_zero}(?:{below}|{at_most})$"

    @property
    def rule(self) -> str:
        return (
            f"a USD amount from {micro_to_usd(self.least_micro).rstrip('0').rstrip('.')} to "
            f'{self.most_usd}, written as digits with at most 6 decimal places, e.g. "25.50"'
        )

    def to_micro(self, text: str) -> int:
        """The amount in micro-USDC; ValueError saying what is wrong with it, and the rule."""
        if re.fullmatch(self.pattern, text):
            return usd_to_micro(text)
        raise ValueError(f"{self._fault(text)}; it must be {self.rule}")

    def _fault(self, text: str) -> str:
        """Why the expression refused ``text``, in words; it alone decides."""
        if len(text) > _LONGEST_SHOWN:
            return f"{text[:_LONGEST_SHOWN]!r}... is too long"
        try:
            micro = usd_to_micro(text)
        except ValueError as exc:
            return str(exc)
        if micro < 0:
            return f"{text!r} is negative"
        if micro < self.least_micro:
            return f"{text!r} is zero"
        if micro > self.most_usd * MICRO_PER_UNIT:
            return f"{text!r} is more than {self.most_usd}"
        return f"{text!r} is not written as plain digits"


OPENING_CREDIT: Final = UsdAmount(positive=False, most_usd=MAX_CREDIT_USD)
CREDIT: Final = UsdAmount(positive=True, most_usd=MAX_CREDIT_USD)
