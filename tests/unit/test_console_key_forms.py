"""The console's key forms read as the accounts service reads settings: a form saved as shown
changes nothing (an expiry the form cannot show included), an empty new-key form sets nothing,
and cleared fields remove their limits."""

from __future__ import annotations

import pytest

from reelgate.api.console.key_forms import (
    form_values,
    limits_in_words,
    posted_values,
    settings_from_form,
)
from reelgate.domain.accounts import ApiKey
from reelgate.domain.limits import MAX_EXPIRES_AT, Budget, BudgetPeriod, KeyLimits, Rate
from reelgate.errors import InvalidRequest
from reelgate.services.accounts import key_settings

NOW = 1_790_000_000


def _key(limits: KeyLimits, name: str | None = "batch") -> ApiKey:
    return ApiKey("key_x", "acct_x", "rg_abc", NOW, None, name, limits)


EVERY_LIMIT = KeyLimits(
    rate=Rate(300, 60, 40),
    max_in_flight=7,
    models=("seedance-2",),
    budget=Budget(1_234_567, BudgetPeriod.MONTH),
    expires_at=NOW + 12_345,
)


@pytest.mark.parametrize(
    "limits",
    [EVERY_LIMIT, KeyLimits(), KeyLimits(expires_at=MAX_EXPIRES_AT)],
    ids=["every limit", "none", "expiry past year 9999"],
)
def test_a_key_form_saved_as_shown_changes_nothing(limits: KeyLimits) -> None:
    key = _key(limits)
    shown = form_values(key)
    pairs = [(k, v) for k, v in shown.items() if k != "models"]
    pairs += [("models", m) for m in shown["models"]]
    changes = settings_from_form(posted_values(pairs), change=True)
    assert key_settings(key.name, key.limits, changes, NOW) == (key.name, key.limits)


def test_an_empty_new_key_form_sets_nothing_and_cleared_fields_remove_limits() -> None:
    assert settings_from_form(form_values(None), change=False) == {}
    cleared = posted_values([("name", ""), ("rate", ""), ("burst", ""), ("max_in_flight", "")])
    cleared |= {"expires_at": "", "expires_at_was": "2026-09-21T14:00:00"}
    changes = settings_from_form(cleared, change=True)
    assert key_settings("batch", EVERY_LIMIT, changes, NOW) == (None, KeyLimits())


def test_limits_in_words_and_a_date_the_form_cannot_read() -> None:
    assert limits_in_words(_key(EVERY_LIMIT)) == [
        "rate 300/min, burst 40",
        "max 7 in flight",
        "models seedance-2",
        "budget 1.234567 USD/month",
        "expires 2026-09-21 17:39:05 UTC",
    ]
    assert limits_in_words(_key(KeyLimits(expires_at=MAX_EXPIRES_AT)))[0].startswith(
        "expires Unix time"
    )
    with pytest.raises(InvalidRequest) as refused:
        settings_from_form({"expires_at": "31/12/2030"}, change=False)
    assert refused.value.param == "expires_at"
