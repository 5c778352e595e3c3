"""The keys pages' forms: a key's limits as a person reads them, and a posted form read into the
settings the accounts service takes. The service judges every value (as it does for the admin
API and the CLI); this module only turns form text into the shapes the service expects, so that
a value the admin API refuses is refused here with the same words."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from reelgate.domain.accounts import ApiKey
from reelgate.domain.limits import BudgetPeriod, usd
from reelgate.errors import InvalidRequest

FIELD_LABELS: Final = {
    "name": "Key name",
    "rate": "Rate",
    "burst": "Burst",
    "max_in_flight": "Max in flight",
    "models": "Models",
    "budget_usd": "Budget",
    "expires_in": "Expires in",
    "expires_at": "Expires at (UTC)",
}
"""The form's label of each setting the service may name in a refusal."""
PERIODS: Final = [period.value for period in BudgetPeriod]
_INTEGER: Final = re.compile(r"^-?[0-9]{1,18}$")
_LOCAL_TIME: Final = "%Y-%m-%dT%H:%M:%S"


def _when(unix_s: int) -> str:
    try:
        return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (ValueError, OverflowError):
        # Past the year 9999 (the admin API takes expiries up to MAX_EXPIRES_AT).
        return f"Unix time {unix_s}"


def _local(unix_s: int | None) -> str:
    """A ``datetime-local`` input's value (UTC), or "" when none, or none it can show."""
    if unix_s is None:
        return ""
    try:
        return datetime.fromtimestamp(unix_s, UTC).strftime(_LOCAL_TIME)
    except (ValueError, OverflowError):
        return ""


@dataclass(frozen=True, slots=True)
class KeyRow:
    """One key of a keys table: the key, its limits in words, and its update form's values."""

    key: ApiKey
    limits: list[str]
    expired: bool
    values: dict[str, Any]


def limits_in_words(key: ApiKey) -> list[str]:
    limits = key.limits
    words = []
    if limits.rate is not None:
        words.append(f"rate {limits.rate}, burst {limits.rate.burst}")
    if limits.max_in_flight is not None:
        words.append(f"max {limits.max_in_flight} in flight")
    if limits.models is not None:
        words.append("models " + ", ".join(limits.models))
    if limits.budget is not None:
        words.append(f"budget {usd(limits.budget.micro_usdc)} USD/{limits.budget.period}")
    if limits.expires_at is not None:
        words.append(f"expires {_when(limits.expires_at)}")
    return words


def form_values(key: ApiKey | None) -> dict[str, Any]:
    """What a key's form shows: its settings as they are (empty for a new key)."""
    if key is None:
        return {"models": [], "budget_period": "day"}
    limits = key.limits
    return {
        "name": key.name or "",
        "rate": "" if limits.rate is None else str(limits.rate),
        "burst": "" if limits.rate is None else str(limits.rate.burst),
        "max_in_flight": "" if limits.max_in_flight is None else str(limits.max_in_flight),
        "models": list(limits.models or ()),
        "budget_amount": "" if limits.budget is None else usd(limits.budget.micro_usdc),
        "budget_period": "day" if limits.budget is None else limits.budget.period.value,
        "expires_at": _local(limits.expires_at),
        "expires_at_was": _local(limits.expires_at),
    }


def key_rows(keys: Sequence[ApiKey], now_s: int) -> list[KeyRow]:
    return [
        KeyRow(
            key=key,
            limits=limits_in_words(key),
            expired=key.limits.expires_at is not None and key.limits.expires_at <= now_s,
            values=form_values(key),
        )
        for key in keys
    ]


def posted_values(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """A posted key form's values as typed, to show the form again with them after a refusal."""
    values: dict[str, Any] = {name: value.strip() for name, value in pairs if name != "models"}
    values["models"] = [value for name, value in pairs if name == "models"]
    values.setdefault("budget_period", "day")
    return values


def _integer(text: str) -> object:
    # Digits become the integer the service checks against its bounds; anything else goes as
    # text, which the service refuses as "must be an integer", naming the field.
    return int(text) if _INTEGER.fullmatch(text) else text


def _expires_at(text: str) -> int:
    try:
        moment = datetime.strptime(text, _LOCAL_TIME if len(text) > 16 else "%Y-%m-%dT%H:%M")
    except ValueError:
        raise InvalidRequest(
            "expires_at", "expires_at must be a date and time, e.g. 2027-01-31T00:00 (UTC)"
        ) from None
    return int(moment.replace(tzinfo=UTC).timestamp())


def settings_from_form(values: dict[str, Any], change: bool) -> dict[str, object]:
    """The settings ``AccountService.create_key`` (or, with ``change``, ``update_key``) takes
    for a posted form. In a new key's form an empty field sets nothing; in a change, an empty
    field removes that limit (the form showed each limit as it was), except an expiry left as
    it was shown, which stays exactly as it was (the form shows it to the second only)."""
    settings: dict[str, object] = {}

    def put(name: str, value: object) -> None:
        if value not in ("", None) or change:
            settings[name] = None if value == "" else value

    put("name", values.get("name", ""))
    put("rate", values.get("rate", ""))
    burst = values.get("burst", "")
    if burst or (change and values.get("rate")):
        put("burst", _integer(burst) if burst else "")
    max_in_flight = values.get("max_in_flight", "")
    put("max_in_flight", _integer(max_in_flight) if max_in_flight else "")
    models = values.get("models") or []
    put("models", list(models) if models else "")
    amount = values.get("budget_amount", "")
    put("budget_usd", f"{amount}/{values.get('budget_period') or 'total'}" if amount else "")
    expires_in, expires_at = values.get("expires_in", ""), values.get("expires_at", "")
    if expires_in:
        settings["expires_in"] = expires_in
    if change and expires_at == values.get("expires_at_was", ""):
        pass  # left as shown: the expiry stays (also one too far ahead for the form to show)
    elif expires_at:
        settings["expires_at"] = _expires_at(expires_at)
    elif change and not expires_in:
        settings["expires_at"] = None
    return settings


def refusal(exc: InvalidRequest) -> dict[str, str]:
    """A refusal to show next to the form: the field's label, and the service's words."""
    return {
        "field": exc.param,
        "label": FIELD_LABELS.get(exc.param, exc.param),
        "message": exc.message,
    }
