"""Channels: which upstream account takes a task, and when a failed create may go elsewhere.

A channel is one upstream account. At create the gateway orders the channels that serve the
request (lowest priority value first, weighted among equals), leaves out those whose circuit is
open or that are full, and tries them in turn. A create moves on to the next channel only when
the failed attempt provably created nothing (:func:`fails_over`), and only to a channel whose
price is at most what was reserved (:func:`may_fail_over_to`).

Each channel has a circuit breaker (:class:`Circuit`): after :data:`FAILURES_TO_OPEN`
consecutive not-accepted answers or transport errors it opens for :data:`COOL_DOWN_S`, then one
probe request decides whether it closes again.

Pure: no clock and no randomness are read here; callers pass the time and the draws.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final, Literal

ProviderName = Literal["kie", "modelark"]
PROVIDERS: Final[tuple[ProviderName, ...]] = ("kie", "modelark")
SLUG: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
"""A channel id: what tasks record, callback paths carry, and clients pin with channel_id."""

FAILURES_TO_OPEN: Final = 5
COOL_DOWN_S: Final = 30.0
PROBE_WINDOW_S: Final = 60.0
"""How long one process holds the right to probe a half-open channel before another may."""

NOT_ACCEPTED: Final = frozenset(
    {
        "upstream_unreachable",  # nothing was sent: connection refused or reset before sending
        "upstream_rate_limited",  # KIE 429, ModelArk 429: not queued
        "upstream_quota",  # KIE 433
        "upstream_maintenance",  # KIE 455
        "upstream_server_error",  # KIE 500, HTTP 5xx, ModelArk 500
        "upstream_overloaded",  # ModelArk 503
        "upstream_generation_failed",  # KIE 501 at create
        "upstream_feature_disabled",  # KIE 505
        "upstream_at_capacity",  # the channel is at its max_in_flight
    }
)
"""Create failures that prove nothing was created upstream: the only ones retried elsewhere."""


def fails_over(code: str) -> bool:
    """Whether a create that failed with this error code may be retried on another channel."""
    return code in NOT_ACCEPTED


def counts_against(code: str) -> bool:
    """Whether a failed create counts towards opening the channel's circuit: not-accepted
    answers and transport errors (a create sent and never answered among them), never a
    refusal that is the request's fault."""
    return code in NOT_ACCEPTED or code == "upstream_outcome_unknown"


def may_fail_over_to(price_micro_usdc: int, reserved_price_micro_usdc: int) -> bool:
    """A failover goes only to a channel whose per-second price for the task's tier (its
    margin applied) is at most what the reservation was made at: the client never owes more."""
    return price_micro_usdc <= reserved_price_micro_usdc


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """One upstream account, as the operator configured it."""

    id: str
    provider: ProviderName
    base_url: str
    api_key: str
    models: Mapping[str, str]
    """Public model id -> the upstream's model id, for every model the channel serves."""
    margin_ppm: int
    priority: int = 0
    weight: int = 1
    max_in_flight: int | None = None
    requests_per_s: float | None = None
    enabled: bool = True
    webhook_hmac_key: str | None = None
    resolutions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per model, the resolutions this channel offers, when fewer than the model's."""
    name: str | None = None
    description: str | None = None

    def serves(self, model: str, resolution: str | None = None) -> bool:
        if model not in self.models:
            return False
        offered = self.resolutions.get(model)
        return resolution is None or offered is None or resolution in offered


class Admission(StrEnum):
    CLOSED = "closed"
    """Takes tasks."""
    OPEN = "open"
    """Skipped until its cool-down ends."""
    PROBE = "probe"
    """The cool-down is over: one request may probe it."""


@dataclass(frozen=True, slots=True)
class Circuit:
    """A channel's circuit, as every process of the deployment shares it."""

    failures: int = 0
    """Consecutive not-accepted answers or transport errors."""
    open_until_ms: int | None = None
    """While set, the circuit is open; from then on a probe may be tried."""
    probe_until_ms: int | None = None
    """A probe under way holds the half-open channel until then."""

    def admission(self, now_ms: int) -> Admission:
        if self.open_until_ms is None:
            return Admission.CLOSED
        if now_ms < self.open_until_ms:
            return Admission.OPEN
        if self.probe_until_ms is not None and now_ms < self.probe_until_ms:
            return Admission.OPEN  # someone else is probing
        return Admission.PROBE

    @property
    def is_open(self) -> bool:
        return self.open_until_ms is not None


def after_failure(
    circuit: Circuit,
    now_ms: int,
    *,
    threshold: int = FAILURES_TO_OPEN,
    cool_down_s: float = COOL_DOWN_S,
) -> Circuit:
    """One more consecutive failure: the circuit opens at the threshold, and a failed probe
    opens it again for a whole cool-down."""
    failures = circuit.failures + 1
    if circuit.open_until_ms is not None or failures >= threshold:
        return Circuit(failures, now_ms + int(cool_down_s * 1000), None)
    return replace(circuit, failures=failures)


def after_success() -> Circuit:
    """A create accepted (or any call that went well): the circuit closes."""
    return Circuit()


@dataclass(frozen=True, slots=True)
class Candidate:
    """A channel as routing sees it at one moment."""

    id: str
    priority: int
    weight: int
    admission: Admission
    full: bool = False
    """At its max_in_flight."""


def route(candidates: Sequence[Candidate], draw: Callable[[], float]) -> list[str]:
    """The order to try channels in: lowest priority value first; within one priority a
    weighted random order (``draw`` returns numbers in [0, 1)); channels whose circuit is open
    or that are full left out. A half-open channel comes after the closed ones of its priority:
    its probe is tried only when they fail."""
    usable = [c for c in candidates if c.admission is not Admission.OPEN and not c.full]
    ordered: list[str] = []
    for priority in sorted({c.priority for c in usable}):
        group = [c for c in usable if c.priority == priority]
        for admission in (Admission.CLOSED, Admission.PROBE):
            ordered += _weighted_order([c for c in group if c.admission is admission], draw)
    return ordered


def _weighted_order(group: list[Candidate], draw: Callable[[], float]) -> list[str]:
    left = list(group)
    order: list[str] = []
    while left:
        total = sum(max(c.weight, 0) for c in left)
        if total <= 0:
            order += [c.id for c in left]
            break
        point = draw() * total
        for index, candidate in enumerate(left):
            point -= max(candidate.weight, 0)
            if point < 0:
                order.append(left.pop(index).id)
                break
        else:
            order.append(left.pop().id)
    return order


def retry_after_s(circuits: Sequence[Circuit], now_ms: int, default_s: int = 30) -> int:
    """When, at the soonest, an open channel may be tried again (seconds, at least 1)."""
    ends = [c.open_until_ms for c in circuits if c.open_until_ms is not None]
    if not ends:
        return default_s
    return max(1, -(-(min(ends) - now_ms) // 1000))
