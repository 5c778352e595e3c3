"""What one API key may do: its rate, tasks in flight, models, budget and lifetime, as values,
and the pure rules that read and apply them.

Every limit is optional: a key without any behaves as keys always have, and pays nothing for
the limits other keys carry. Each is written the way an operator types it on the command line
(``5/s``, ``50/day``, ``30d``) and parsed here, once, for the CLI and the admin API alike.
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from reelgate.domain.catalogue import MODELS
from reelgate.domain.money import MICRO_PER_UNIT, UsdAmount
from reelgate.errors import InvalidRequest

MAX_RATE: Final = 999_999
"""The most requests a rate may allow per period, and the largest burst."""
MAX_IN_FLIGHT: Final = 1_000_000
MAX_KEY_BUDGET_USD: Final = 10**9
KEY_BUDGET: Final = UsdAmount(positive=False, most_usd=MAX_KEY_BUDGET_USD)
"""A budget of 0 is allowed: it stops a key's creates and leaves its reads."""
KEY_NAME_MAX: Final = 200
MAX_EXPIRES_AT: Final = 2**42 - 1
"""Unix seconds some 139,000 years ahead: any expiry written as a number fits in a BIGINT."""

_PERIOD_S: Final = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60,
                    "h": 3600, "hour": 3600}  # fmt: skip
_DURATION_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
# The rules as the OpenAPI document states them; the parsers below accept no less.
RATE_PATTERN: Final = r"^[1-9][0-9]{0,5}(?:/(?:s|sec|second|m|min|minute|h|hour))?$"
BUDGET_PATTERN: Final = f"^{KEY_BUDGET.pattern[1:-1]}(?:/(?:day|month|total))?$"
EXPIRES_IN_PATTERN: Final = r"^[1-9][0-9]{0,5}[smhd]$"
_RATE: Final = re.compile(r"^([1-9][0-9]{0,5})(?:/([a-z]+))?$")
_DURATION: Final = re.compile(r"^([1-9][0-9]{0,5})([smhd])$")


class BudgetPeriod(StrEnum):
    """The UTC window a key's budget counts spending over."""

    DAY = "day"
    MONTH = "month"
    TOTAL = "total"


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` requests per ``period_s`` seconds, with bursts of up to ``burst``."""

    count: int
    period_s: int
    burst: int

    @property
    def per_s(self) -> float:
        return self.count / self.period_s

    def __str__(self) -> str:
        unit = {1: "s", 60: "min", 3600: "h"}[self.period_s]
        return f"{self.count}/{unit}"


@dataclass(frozen=True, slots=True)
class Budget:
    micro_usdc: int
    period: BudgetPeriod


@dataclass(frozen=True, slots=True)
class KeyLimits:
    rate: Rate | None = None
    max_in_flight: int | None = None
    models: tuple[str, ...] | None = None
    budget: Budget | None = None
    expires_at: int | None = None
    """Unix seconds; from then on the key is refused."""

    @property
    def guarded(self) -> bool:
        """Whether a create must count the key's tasks in the database before it is stored."""
        return self.max_in_flight is not None or self.budget is not None


NO_LIMITS: Final = KeyLimits()


def parse_rate(text: str, burst: int | None, field: str = "rate") -> Rate:
    """``5/s``, ``300/min``, ``1000/h`` or a bare ``5`` (per second); the burst defaults to
    the count, the most a client may send at once after a quiet spell."""
    match = _RATE.fullmatch(text.strip().lower())
    unit = match.group(2) if match else None
    if match is None or (unit is not None and unit not in _PERIOD_S):
        raise InvalidRequest(
            field, f"{field} must be a count per s, min or h, e.g. '5/s' or '300/min'; got {text!r}"
        )
    count = int(match.group(1))
    if count > MAX_RATE:
        raise InvalidRequest(field, f"{field} must allow at most {MAX_RATE} requests per period")
    if burst is not None and not 1 <= burst <= MAX_RATE:
        raise InvalidRequest("burst", f"burst must be an integer from 1 to {MAX_RATE}")
    return Rate(count, _PERIOD_S[unit or "s"], burst if burst is not None else count)


def parse_budget(text: str, field: str = "budget_usd") -> Budget:
    """``50/day``, ``1000/month`` or ``20/total`` (a bare amount is a total)."""
    amount, _, period = text.strip().partition("/")
    try:
        which = BudgetPeriod(period or "total")
    except ValueError:
        raise InvalidRequest(
            field, f"{field} must be an amount per day, month or total, e.g. '50/day'"
        ) from None
    try:
        micro = KEY_BUDGET.to_micro(amount)
    except ValueError as exc:
        raise InvalidRequest(field, f"{field}: {exc}") from None
    return Budget(micro, which)


def parse_expires_in(text: str, now_s: int, field: str = "expires_in") -> int:
    """``30d``, ``12h``, ``90m`` or ``3600s`` from now: the Unix second the key expires."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise InvalidRequest(
            field, f"{field} must be a duration such as '30d', '12h', '90m' or '3600s' "
            "(at most 6 digits)"
        )  # fmt: skip
    return now_s + int(match.group(1)) * _DURATION_S[match.group(2)]


def check_models(models: list[str] | tuple[str, ...], field: str = "models") -> tuple[str, ...]:
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise InvalidRequest(
            field, f"{field} must name models of GET /v1/models ({', '.join(MODELS)}); "
            f"unknown: {', '.join(repr(m[:50]) for m in unknown) or 'none given'}"
        )  # fmt: skip
    return tuple(dict.fromkeys(models))


def check_max_in_flight(value: int, field: str = "max_in_flight") -> int:
    if not 1 <= value <= MAX_IN_FLIGHT:
        raise InvalidRequest(field, f"{field} must be an integer from 1 to {MAX_IN_FLIGHT}")
    return value


def check_name(name: str) -> str:
    if not 1 <= len(name) <= KEY_NAME_MAX or "\x00" in name:
        raise InvalidRequest("name", f"name must be 1 to {KEY_NAME_MAX} characters, without NUL")
    return name


def period_start(period: BudgetPeriod, now_s: int) -> int:
    """The Unix second the budget's current window began: 00:00 UTC today, the first of this
    month, or the beginning of time."""
    if period is BudgetPeriod.TOTAL:
        return 0
    day = datetime.datetime.fromtimestamp(now_s, datetime.UTC).date()
    if period is BudgetPeriod.MONTH:
        day = day.replace(day=1)
    return int(datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp())


def period_end(period: BudgetPeriod, now_s: int) -> int | None:
    """When the current window ends (a budget spent until then is free again); None: never."""
    start = period_start(period, now_s)
    if period is BudgetPeriod.DAY:
        return start + 86_400
    if period is BudgetPeriod.MONTH:
        first = datetime.datetime.fromtimestamp(start, datetime.UTC).date()
        following = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
        return int(datetime.datetime.combine(following, datetime.time(), datetime.UTC).timestamp())
    return None


def usd(micro: int) -> str:
    return f"{micro / MICRO_PER_UNIT:.6f}".rstrip("0").rstrip(".")


@dataclass(frozen=True, slots=True)
class Bucket:
    """A token bucket: ``tokens`` left at ``at_s``."""

    tokens: float
    at_s: float


def take(bucket: Bucket | None, rate: Rate, now_s: float) -> tuple[Bucket, float]:
    """Take one token from the bucket: the bucket after, and 0 when the request may go, else how
    many seconds until a token is there (the bucket is then left as it was, refilled)."""
    if bucket is None:
        tokens = float(rate.burst)
    else:
        elapsed = max(0.0, now_s - bucket.at_s)
        tokens = min(float(rate.burst), bucket.tokens + elapsed * rate.per_s)
    if tokens >= 1:
        return Bucket(tokens - 1, now_s), 0.0
    return Bucket(tokens, now_s), (1 - tokens) / rate.per_s


def retry_after_s(wait_s: float) -> int:
    """A wait as whole seconds for ``Retry-After``: rounded up, at least 1."""
    return max(1, math.ceil(wait_s))
