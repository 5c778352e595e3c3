"""Per-second pricing: cost = tier price x duration x channel margin, rounded half up once.

Expected prices are derived here from KIE's table in kie-market-api.md (credits per second,
1 credit = $0.005 = 5000 micro-USDC), not from the code's own constant.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from reelgate.domain.catalogue import MODELS
from reelgate.domain.money import MAX_PRICE_PER_SECOND_MICRO_USDC, margin_to_ppm
from reelgate.domain.pricing import PriceBook, with_margin
from reelgate.domain.request import parse_request
from tests.spec_examples import FIRST_AND_LAST_FRAME as SPEC_FIRST_AND_LAST_FRAME
from tests.spec_examples import MULTIMODAL as SPEC_MULTIMODAL
from tests.spec_examples import TEXT_TO_VIDEO as SPEC_TEXT_TO_VIDEO

MICRO_PER_CREDIT = 5000
"""1 KIE credit = $0.005 = 5000 micro-USDC."""

# kie-market-api.md, "KIE's own prices": credits per generated second.
KIE_CREDITS: dict[tuple[str, str, bool], Decimal] = {
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

MARGIN_1 = 1_000_000

# The specification's three example bodies, verbatim.


def tier_name(resolution: str, video_input: bool) -> str:
    return f"{resolution}_{'with_video' if video_input else 'no_video'}"


def exact_cost(price: int, duration: int, margin: str) -> int:
    """The contract's formula in exact decimals, rounded half up once."""
    amount = Decimal(price) * duration * Decimal(margin)
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --------------------------------------------------------------------------------------------
# Default tiers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "resolution", "video_input", "credits"),
    [(m, r, v, c) for (m, r, v), c in KIE_CREDITS.items()],
    ids=[f"{m}-{tier_name(r, v)}" for (m, r, v) in KIE_CREDITS],
)
def test_default_tier_price_is_kie_credits_times_5000_micro_usdc(
    model: str, resolution: Any, video_input: bool, credits: Decimal
) -> None:
    tier = PriceBook().tier(MODELS[model], resolution, video_input)
    assert tier.id == tier_name(resolution, video_input)
    assert (tier.resolution, tier.video_input) == (resolution, video_input)
    assert tier.price_micro_usdc == int(credits * MICRO_PER_CREDIT)


@pytest.mark.parametrize(
    ("model", "price"),
    [("seedance-2", 205_000), ("seedance-2", 57_500), ("seedance-2-fast", 77_500)],
    ids=["seedance-2-720p-is-0.205-usd", "seedance-2-480p-video-57500", "fast-480p-77500"],
)
def test_documented_default_prices_appear_in_the_model_tiers(model: str, price: int) -> None:
    assert price in {tier.price_micro_usdc for tier in PriceBook().tiers(MODELS[model])}


@pytest.mark.parametrize(
    ("model", "tier_ids"),
    [
        pytest.param(
            "seedance-2",
            {
                "480p_no_video",
                "480p_with_video",
                "720p_no_video",
                "720p_with_video",
                "1080p_no_video",
                "1080p_with_video",
            },
            id="seedance-2-has-6-tiers",
        ),
        pytest.param(
            "seedance-2-fast",
            {"480p_no_video", "480p_with_video", "720p_no_video", "720p_with_video"},
            id="seedance-2-fast-has-4-tiers",
        ),
    ],
)
def test_model_has_one_tier_per_resolution_and_video_input(model: str, tier_ids: set[str]) -> None:
    tiers = PriceBook().tiers(MODELS[model])
    assert len(tiers) == len(tier_ids)
    assert {tier.id for tier in tiers} == tier_ids


@pytest.mark.parametrize(
    ("resolution", "video_input", "label"),
    [
        ("480p", False, "480p"),
        ("480p", True, "480p with video input"),
        ("720p", True, "720p with video input"),
    ],
    ids=["no-video", "with-video-480p", "with-video-720p"],
)
def test_tier_label_matches_the_contract(resolution: Any, video_input: bool, label: str) -> None:
    assert PriceBook().tier(MODELS["seedance-2"], resolution, video_input).label == label


def test_seedance_2_fast_has_no_1080p_tier() -> None:
    with pytest.raises(KeyError):
        PriceBook().tier(MODELS["seedance-2-fast"], "1080p", False)


# --------------------------------------------------------------------------------------------
# Quotes of the specification's examples
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "tier", "price", "duration", "cost"),
    [
        pytest.param(SPEC_TEXT_TO_VIDEO, "720p_no_video", 165_000, 5, 825_000, id="text-to-video"),
        pytest.param(
            SPEC_FIRST_AND_LAST_FRAME,
            "1080p_no_video",
            510_000,
            8,
            4_080_000,
            id="first-and-last-frame",
        ),
        pytest.param(SPEC_MULTIMODAL, "720p_with_video", 100_000, 10, 1_000_000, id="multimodal"),
    ],
)
def test_spec_example_costs_price_times_duration_at_margin_1(
    payload: dict[str, Any], tier: str, price: int, duration: int, cost: int
) -> None:
    request = parse_request(payload)
    quote = PriceBook().quote(
        MODELS[request.model], request.resolution, request.video_input, request.duration, MARGIN_1
    )
    assert (quote.tier, quote.price_per_second_micro_usdc, quote.duration) == (
        tier,
        price,
        duration,
    )
    assert quote.cost_micro_usdc == cost == price * duration
    assert quote.margin_ppm == MARGIN_1
    assert quote.margin == Decimal(1)


# --------------------------------------------------------------------------------------------
# Margins: rounded half up, once, at the end
# --------------------------------------------------------------------------------------------

# (price per second, duration, margin, expected cost)
MARGIN_CASES: list[Any] = [
    pytest.param(165_000, 5, "1.25", 1_031_250, id="fast-720p-5s-x1.25"),
    pytest.param(165_000, 5, "1.333333", 1_100_000, id="fast-720p-5s-x1.333333"),
    pytest.param(510_000, 8, "1.333333", 5_439_999, id="2-1080p-8s-x1.333333"),
    pytest.param(57_500, 15, "1.1", 948_750, id="2-480p-video-15s-x1.1"),
    pytest.param(1, 10, "1.25", 13, id="12.5-rounds-half-up-to-13"),
    pytest.param(1, 4, "1.333333", 5, id="5.333332-rounds-to-5"),
    pytest.param(3, 7, "1.166667", 25, id="24.500007-rounds-to-25"),
    pytest.param(1, 5, "1.25", 6, id="6.25-rounds-to-6"),
]


def _book_with_price(price: int) -> PriceBook:
    return PriceBook({"seedance-2": {"720p_no_video": price}})


@pytest.mark.parametrize(("price", "duration", "margin", "cost"), MARGIN_CASES)
def test_cost_with_margin_is_exact_product_rounded_half_up(
    price: int, duration: int, margin: str, cost: int
) -> None:
    assert exact_cost(price, duration, margin) == cost  # the table itself is right
    quote = _book_with_price(price).quote(
        MODELS["seedance-2"], "720p", False, duration, margin_to_ppm(Decimal(margin))
    )
    assert quote.price_per_second_micro_usdc == price
    assert quote.margin == Decimal(margin)
    assert quote.cost_micro_usdc == cost


@pytest.mark.parametrize(
    ("price", "duration", "margin", "cost"),
    [
        pytest.param(1, 10, "1.25", 13, id="per-second-would-give-10"),
        pytest.param(1, 4, "1.333333", 5, id="per-second-would-give-4"),
        pytest.param(3, 7, "1.166667", 25, id="per-second-would-give-28"),
        pytest.param(1, 5, "1.25", 6, id="per-second-would-give-5"),
    ],
)
def test_margin_is_rounded_once_at_the_end_not_per_second(
    price: int, duration: int, margin: str, cost: int
) -> None:
    per_second = int((Decimal(price) * Decimal(margin)).quantize(Decimal(1), ROUND_HALF_UP))
    assert per_second * duration != cost  # the case tells the two roundings apart
    quote = _book_with_price(price).quote(
        MODELS["seedance-2"], "720p", False, duration, margin_to_ppm(Decimal(margin))
    )
    assert quote.cost_micro_usdc == cost


def test_half_micro_usdc_rounds_up_not_to_even() -> None:
    # 2 x 1 x 1.25 = 2.5: half up gives 3, banker's rounding would give 2.
    quote = _book_with_price(2).quote(MODELS["seedance-2"], "720p", False, 1, 1_250_000)
    assert quote.cost_micro_usdc == 3


@pytest.mark.parametrize(
    ("price", "margin", "shown"),
    [
        pytest.param(165_000, "1", 165_000, id="margin-1-unchanged"),
        pytest.param(165_000, "1.25", 206_250, id="x1.25"),
        pytest.param(57_500, "1.333333", 76_667, id="x1.333333-rounds-up"),
        pytest.param(3, "1.5", 5, id="4.5-rounds-half-up"),
    ],
)
def test_price_shown_to_clients_has_margin_rounded_half_up(
    price: int, margin: str, shown: int
) -> None:
    assert with_margin(price, margin_to_ppm(Decimal(margin))) == shown


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------


def test_price_override_replaces_only_that_tier() -> None:
    book = PriceBook({"seedance-2": {"720p_no_video": 300_000}})
    for (model, resolution, video_input), credits in KIE_CREDITS.items():
        price = book.tier(MODELS[model], resolution, video_input).price_micro_usdc
        if (model, resolution, video_input) == ("seedance-2", "720p", False):
            assert price == 300_000
        else:
            assert price == int(credits * MICRO_PER_CREDIT)


def test_price_override_is_used_by_quotes() -> None:
    book = PriceBook({"seedance-2-fast": {"720p_with_video": 123_457}})
    quote = book.quote(MODELS["seedance-2-fast"], "720p", True, 10, MARGIN_1)
    assert (quote.price_per_second_micro_usdc, quote.cost_micro_usdc) == (123_457, 1_234_570)


def test_price_overrides_for_every_tier_replace_every_default() -> None:
    overrides = {
        model.id: {tier.id: 1000 + i for i, tier in enumerate(PriceBook().tiers(model))}
        for model in MODELS.values()
    }
    book = PriceBook(overrides)
    for model in MODELS.values():
        assert {t.id: t.price_micro_usdc for t in book.tiers(model)} == overrides[model.id]


@pytest.mark.parametrize("overrides", [None, {}, {"seedance-2": {}}], ids=repr)
def test_empty_overrides_keep_the_defaults(overrides: Any) -> None:
    for model in MODELS.values():
        assert PriceBook(overrides).tiers(model) == PriceBook().tiers(model)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        pytest.param({"seedance-2-fast": {"1080p_no_video": 1}}, "1080p_no_video", id="fast-1080p"),
        pytest.param({"seedance-2": {"4k_no_video": 1}}, "4k_no_video", id="unknown-resolution"),
        pytest.param({"seedance-2": {"720p": 1}}, "720p", id="tier-without-video-suffix"),
        pytest.param(
            {"seedance-2": {"720p_no_video": 1, "720p_video": 2}}, "720p_video", id="one-bad-of-two"
        ),
        pytest.param({"seedance-3": {"720p_no_video": 1}}, "seedance-3", id="unknown-model"),
        pytest.param(
            {"bytedance/seedance-2": {"720p_no_video": 1}},
            "bytedance/seedance-2",
            id="upstream-model-id",
        ),
    ],
)
def test_override_for_unknown_tier_or_model_is_refused(
    overrides: dict[str, dict[str, int]], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        PriceBook(overrides)


@pytest.mark.parametrize(
    "price",
    [
        pytest.param(-1, id="negative"),
        pytest.param(MAX_PRICE_PER_SECOND_MICRO_USDC + 1, id="just-over-the-limit"),
        pytest.param(5 * 10**18, id="5e18"),
    ],
)
def test_override_outside_the_price_limit_is_refused_naming_tier_and_limit(price: int) -> None:
    with pytest.raises(ValueError, match=r"seedance-2 720p_no_video .* from 0 to 1000000000$"):
        PriceBook({"seedance-2": {"720p_no_video": price}})
