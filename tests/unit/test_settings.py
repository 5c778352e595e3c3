"""Settings refuse prices and margins outside the money limits when they are read, naming the
setting and the limit, so that a gateway never starts with them."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from reelgate.config import Settings
from reelgate.domain.money import MAX_MARGIN, MAX_PRICE_PER_SECOND_MICRO_USDC


@pytest.mark.parametrize(
    "past",
    [
        pytest.param(MAX_PRICE_PER_SECOND_MICRO_USDC + 1, id="just-over"),
        pytest.param(5_000_000_000_000_000_000, id="5e18"),
        pytest.param(10**30, id="past-64-bits"),
    ],
)
def test_tier_price_is_accepted_up_to_the_limit_and_refused_past_it(past: int) -> None:
    at_limit = {"seedance-2": {"720p_no_video": MAX_PRICE_PER_SECOND_MICRO_USDC}}
    assert Settings(prices=at_limit).prices == at_limit
    with pytest.raises(ValidationError) as refused:
        Settings(prices={"seedance-2": {"720p_no_video": past}})
    assert "prices.seedance-2.720p_no_video" in str(refused.value)
    assert f"less than or equal to {MAX_PRICE_PER_SECOND_MICRO_USDC}" in str(refused.value)


def test_price_for_an_unknown_tier_is_refused_when_the_settings_are_read() -> None:
    with pytest.raises(ValidationError, match=r"prices\n.*unknown price tiers.*4k_no_video"):
        Settings(prices={"seedance-2": {"4k_no_video": 1}})


def test_absurd_price_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    absurd = {"seedance-2-fast": {"480p_no_video": 10**13}}
    monkeypatch.setenv("REELGATE_PRICES", json.dumps(absurd))
    with pytest.raises(ValidationError, match=r"prices\.seedance-2-fast\.480p_no_video"):
        Settings()


def test_margins_up_to_the_limit_are_accepted_and_one_past_it_is_refused() -> None:
    accepted: list[tuple[Any, Decimal]] = [
        (MAX_MARGIN, Decimal(MAX_MARGIN)),
        ("0.000001", Decimal("0.000001")),
        ("1.500000000", Decimal("1.5")),
        (1.25, Decimal("1.25")),
    ]
    for margin, exact in accepted:
        assert Settings(channel_margins={"kie": margin}).margin("kie") == exact
    with pytest.raises(ValidationError, match=f"less than or equal to {MAX_MARGIN}"):
        Settings(channel_margins={"kie": "100.000001"})


def test_margins_outside_the_limits_are_refused_naming_the_channel() -> None:
    refused = ["0", "-1.25", "100.000001", "5000000000000", "1e999999", "NaN", "1.0000001"]
    for margin in refused:
        with pytest.raises(ValidationError, match=r"channel_margins\.kie\n") as error:
            Settings(channel_margins={"kie": margin})
        assert error.value.error_count() == 1, margin


def test_absurd_margin_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELGATE_CHANNEL_MARGINS", '{"kie": 1e13}')
    with pytest.raises(ValidationError, match=r"channel_margins\.kie"):
        Settings()


CHANNEL = {"id": "main", "base_url": "http://127.0.0.1:8100", "api_key": "k"}


def test_channels_come_from_a_json_list_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ark = {**CHANNEL, "id": "ark", "provider": "modelark", "margin": "1.25", "priority": 1}
    monkeypatch.setenv("REELGATE_CHANNELS", json.dumps([CHANNEL, ark]))
    settings = Settings()
    configs = [settings.channel_config(c) for c in settings.channel_settings() or []]
    assert [(c.id, c.provider, c.margin_ppm, c.priority) for c in configs] == [
        ("main", "kie", 1_000_000, 0),
        ("ark", "modelark", 1_250_000, 1),
    ]
    assert configs[1].models["seedance-2"] == "dreamina-seedance-2-0-260128"


@pytest.mark.parametrize(
    ("channels", "named"),
    [
        ([{**CHANNEL, "id": "Bad Slug"}], "id"),
        ([{**CHANNEL, "provider": "openai"}], "provider"),
        ([{**CHANNEL, "models": {"seedance-3": "x"}}], "seedance-3"),
        ([{**CHANNEL, "typo": 1}], "typo"),
        ([CHANNEL, CHANNEL], "unique"),
        ([{**CHANNEL, "enabled": False}], "enabled"),
        ([{**CHANNEL, "margin": "0"}], "margin"),
    ],
)
def test_a_bad_channel_is_refused_naming_what_is_wrong(
    channels: list[dict[str, Any]], named: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(channels=channels)
    assert named in str(refused.value)


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (
            ".toml",
            '[[channels]]\nid = "main"\nbase_url = "http://127.0.0.1:8100"\napi_key = "k"\n'
            "max_in_flight = 3\n",
        ),
        (".json", json.dumps([{**CHANNEL, "max_in_flight": 3}])),
    ],
)
def test_channels_come_from_a_toml_or_json_file(tmp_path: Any, suffix: str, text: str) -> None:
    path = tmp_path / f"channels{suffix}"
    path.write_text(text)
    listed = Settings(channels_file=path).channel_settings()
    assert listed is not None
    assert [(c.id, c.max_in_flight) for c in listed] == [("main", 3)]


def test_a_channels_file_that_is_wrong_says_so_with_its_path(tmp_path: Any) -> None:
    path = tmp_path / "channels.toml"
    path.write_text('[[channels]]\nid = "main"\n')
    with pytest.raises(ValueError, match=r"channels\.toml"):
        Settings(channels_file=path).channel_settings()
