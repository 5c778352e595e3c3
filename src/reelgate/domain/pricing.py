"""Per-second pricing: cost = tier price x duration x channel margin, rounded half up once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from reelgate.domain.catalogue import MODELS, Model, Resolution
from reelgate.domain.money import (
    MAX_PRICE_PER_SECOND_MICRO_USDC,
    MICRO_PER_UNIT,
    divide_half_up,
    usd_to_micro,
)

KIE_CREDIT_USD: Final = Decimal("0.005")

# KIE's credits per generated second, by (model, resolution, video input): its cost to the operator.
KIE_CREDITS_PER_SECOND: Final[dict[tuple[str, Resolution, bool], Decimal]] = {
    ("seedance-2", "480p", False): Decimal("19"),
    ("seedance-2", "480p", True): Decimal("11.5"),
    ("seedance-2", "720p", False): Decimal("41"),
    ("seedance-2", "720p", True): Decimal("25"),
    ("seedance-2", "1080p", False): Decimal("102"),
    ("seedance-2", "1080p", True): Decimal("62"),
    ("seedance-2-fast", "480p", False): Decimal("15.5"),
    ("seedance-2-fast", "480p", True): Decimal("9"),
    ("seedance-2-fast", "720p", False): Decimal("33"),
    ("seedance-2-fast", "720p", True): Decimal("20"),
}


def tier_id(resolution: Resolution, video_input: bool) -> str:
    return f"{resolution}_{'with_video' if video_input else 'no_video'}"


@dataclass(frozen=True, slots=True)
class Tier:
    id: str
    resolution: Resolution
    video_input: bool
    price_micro_usdc: int
    """Per generated second, before the channel margin."""

    @property
    def label(self) -> str:
        return f"{self.resolution} with video input" if self.video_input else self.resolution


@dataclass(frozen=True, slots=True)
class Quote:
    """The price snapshot a task keeps: what it was priced at when it was accepted."""

    tier: str
    price_per_second_micro_usdc: int
    duration: int
    margin_ppm: int
    cost_micro_usdc: int

    @property
    def margin(self) -> Decimal:
        return Decimal(self.margin_ppm) / MICRO_PER_UNIT


def _bounded(model_id: str, tid: str, price: int) -> int:
    # Costs are proven to fit in the ledger only for prices within the limit (domain/money.py).
    if not 0 <= price <= MAX_PRICE_PER_SECOND_MICRO_USDC:
        raise ValueError(
            f"price for {model_id} {tid} is {price} micro-USDC per second; it must be from 0 "
            f"to {MAX_PRICE_PER_SECOND_MICRO_USDC}"
        )
    return price


class PriceBook:
    """Tier prices for every model, the defaults from KIE's table with the operator's overrides."""

    def __init__(self, overrides: Mapping[str, Mapping[str, int]] | None = None) -> None:
        overrides = overrides or {}
        self._tiers: dict[str, tuple[Tier, ...]] = {}
        for model in MODELS.values():
            model_overrides = dict(overrides.get(model.id, {}))
            tiers = []
            for resolution in model.resolutions:
                for video_input in (False, True):
                    tid = tier_id(resolution, video_input)
                    default = usd_to_micro(
                        KIE_CREDITS_PER_SECOND[(model.id, resolution, video_input)] * KIE_CREDIT_USD
                    )
                    price = _bounded(model.id, tid, model_overrides.pop(tid, default))
                    tiers.append(Tier(tid, resolution, video_input, price))
            if model_overrides:
                raise ValueError(
                    f"unknown price tiers for {model.id}: {', '.join(sorted(model_overrides))}"
                )
            self._tiers[model.id] = tuple(tiers)
        unknown_models = set(overrides) - set(MODELS)
        if unknown_models:
            raise ValueError(
                f"prices given for unknown models: {', '.join(sorted(unknown_models))}"
            )

    def tiers(self, model: Model) -> tuple[Tier, ...]:
        return self._tiers[model.id]

    def tier(self, model: Model, resolution: Resolution, video_input: bool) -> Tier:
        wanted = tier_id(resolution, video_input)
        for tier in self._tiers[model.id]:
            if tier.id == wanted:
                return tier
        raise KeyError(f"{model.id} has no tier {wanted}")

    def quote(
        self,
        model: Model,
        resolution: Resolution,
        video_input: bool,
        duration: int,
        margin_ppm: int,
    ) -> Quote:
        tier = self.tier(model, resolution, video_input)
        cost = divide_half_up(tier.price_micro_usdc * duration * margin_ppm, MICRO_PER_UNIT)
        return Quote(tier.id, tier.price_micro_usdc, duration, margin_ppm, cost)


def with_margin(price_micro_usdc: int, margin_ppm: int) -> int:
    """A per-second price as shown to clients: the channel margin applied, rounded half up."""
    return divide_half_up(price_micro_usdc * margin_ppm, MICRO_PER_UNIT)
