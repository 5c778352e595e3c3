"""Accounts and API keys: the operations behind both the CLI and the admin API."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from reelgate.domain.accounts import ACCOUNT_NAME_PATTERN, Account, ApiKey
from reelgate.domain.limits import (
    MAX_EXPIRES_AT,
    KeyLimits,
    Rate,
    check_max_in_flight,
    check_models,
    check_name,
    parse_budget,
    parse_expires_in,
    parse_rate,
)
from reelgate.domain.listing import Page, page_of
from reelgate.domain.money import CREDIT, MAX_BALANCE_USD, OPENING_CREDIT, UsdAmount
from reelgate.errors import Conflict, InvalidRequest, NotFound
from reelgate.store.accounts import AccountStore
from reelgate.store.audit import audit
from reelgate.store.database import Database

KEY_PREFIX: Final = "rg_"
_ACCOUNT_NAME: Final = re.compile(ACCOUNT_NAME_PATTERN)


def hash_secret(secret: str) -> str:
    """API keys and admin tokens carry 256 random bits: a plain SHA-256 is as good as a slow
    hash for them, and cheap enough to run on every request."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AccountView:
    account: Account
    keys: list[ApiKey]


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKey
    secret: str
    """Shown once; only its hash is stored."""


def _amount(field: str, usd: str, rule: UsdAmount) -> int:
    try:
        return rule.to_micro(usd)
    except ValueError as exc:
        raise InvalidRequest(field, f"{field} {exc}") from None


KEY_SETTINGS: Final = frozenset(
    {"name", "rate", "burst", "max_in_flight", "models", "budget_usd", "expires_in", "expires_at"}
)
"""What can be set on a key: ``name``, ``rate`` ("5/s"), ``burst``, ``max_in_flight``,
``models`` (a list, or comma-separated), ``budget_usd`` ("50/day"), ``expires_in`` ("30d") or
``expires_at`` (Unix seconds). In a change, None removes the limit."""


def key_settings(
    name: str | None, limits: KeyLimits, changes: Mapping[str, object], now_s: int
) -> tuple[str | None, KeyLimits]:
    """A key's name and limits after ``changes`` (see KEY_SETTINGS); a 400 naming the field for
    anything wrong."""
    unknown = set(changes) - KEY_SETTINGS
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidRequest(field, f"{field} is not a setting of API keys")
    if "name" in changes:
        value = changes["name"]
        name = None if value is None else check_name(str(value))
    rate = limits.rate
    if "rate" in changes:
        value = changes["rate"]
        rate = None if value is None else parse_rate(str(value), None)
    if "burst" in changes and "rate" not in changes:
        raise InvalidRequest("burst", "burst is given with a rate: set rate too, e.g. '5/s'")
    if changes.get("burst") is not None and rate is not None:
        # (With the rate removed there is nothing for a burst to shape.)
        burst = changes["burst"]
        if not isinstance(burst, int) or isinstance(burst, bool):
            raise InvalidRequest("burst", "burst must be an integer")
        rate = parse_rate(f"{rate.count}/{_unit(rate)}", burst)
    updated = dataclasses.replace(limits, rate=rate)
    if "max_in_flight" in changes:
        value = changes["max_in_flight"]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise InvalidRequest("max_in_flight", "max_in_flight must be an integer")
        updated = dataclasses.replace(
            updated, max_in_flight=None if value is None else check_max_in_flight(value)
        )
    if "models" in changes:
        value = changes["models"]
        if isinstance(value, str):
            value = [m.strip() for m in value.split(",") if m.strip()]
        if value is not None and not isinstance(value, list | tuple):
            raise InvalidRequest("models", "models must be a list of model ids")
        updated = dataclasses.replace(
            updated, models=None if value is None else check_models([str(m) for m in value])
        )
    if "budget_usd" in changes:
        value = changes["budget_usd"]
        updated = dataclasses.replace(
            updated, budget=None if value is None else parse_budget(str(value))
        )
    if "expires_in" in changes and "expires_at" in changes:
        raise InvalidRequest("expires_at", "give expires_in or expires_at, not both")
    if "expires_in" in changes:
        value = changes["expires_in"]
        expires = None if value is None else parse_expires_in(str(value), now_s)
        updated = dataclasses.replace(updated, expires_at=expires)
    if "expires_at" in changes:
        value = changes["expires_at"]
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_EXPIRES_AT
        ):
            raise InvalidRequest("expires_at", "expires_at must be a time in Unix seconds")
        updated = dataclasses.replace(updated, expires_at=value)
    return name, updated


def _unit(rate: Rate) -> str:
    return {1: "s", 60: "min", 3600: "h"}[rate.period_s]


def _existing(name: str) -> str:
    """A name no account can have names no account: answered without asking the database."""
    if not _ACCOUNT_NAME.fullmatch(name):
        raise NotFound(f"no account named {name[:200]!r}")
    return name


class AccountService:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.store = AccountStore(db)

    async def create(self, name: str, credit_usd: str = "0") -> Account:
        if not _ACCOUNT_NAME.fullmatch(name):
            raise InvalidRequest(
                "name",
                "name must be 1 to 200 characters of letters, digits, '.', '_', '@' or '-', "
                "starting with a letter or digit",
            )
        return await self.store.create(name, _amount("credit_usd", credit_usd, OPENING_CREDIT))

    async def credit(self, name: str, usd: str, note: str | None = None) -> Account:
        if note is not None and "\x00" in note:
            raise InvalidRequest("note", "note must be text without NUL characters")
        amount = _amount("usd", usd, CREDIT)
        account = await self.store.credit(_existing(name), amount, note)
        if account is None:
            # The amount itself is fine (a 400 said otherwise above); the balance is not.
            raise Conflict(
                f"usd would take the balance of {name!r} over {MAX_BALANCE_USD} USD, the most "
                "an account may hold",
                param="usd",
                code="balance_limit",
            )
        return account

    async def show(self, name: str) -> AccountView:
        account = await self.store.get(_existing(name))
        return AccountView(account, await self.store.keys(account.id))

    async def create_key(
        self, account_name: str, settings: Mapping[str, object] | None = None
    ) -> IssuedKey:
        """A new key for the account, with the name and limits ``settings`` give (see
        KEY_SETTINGS)."""
        name, limits = key_settings(None, KeyLimits(), settings or {}, int(time.time()))
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = await self.store.add_key(
            _existing(account_name), hash_secret(secret), secret[:10], name, limits
        )
        return IssuedKey(key, secret)

    async def update_key(self, key_id: str, changes: Mapping[str, object]) -> ApiKey:
        """Change a key's name and limits (see KEY_SETTINGS); what is not named stays."""
        key = await self.store.get_key(key_id)
        name, limits = key_settings(key.name, key.limits, changes, int(time.time()))
        return await self.store.update_key(key_id, name, limits)

    async def list_keys(self, account_name: str) -> list[ApiKey]:
        account = await self.store.get(_existing(account_name))
        return await self.store.keys(account.id)

    async def revoke_key(self, key_id: str) -> ApiKey:
        return await self.store.revoke_key(key_id)

    async def find_key(self, secret: str) -> ApiKey | None:
        """The key with this secret, revoked or not; None when there is none."""
        return await self.store.find_key(hash_secret(secret))

    async def find_key_by_hash(self, key_hash: str) -> ApiKey | None:
        return await self.store.find_key(key_hash)

    async def page(self, after: str | None, limit: int) -> Page[Account]:
        """Accounts by name, ``limit`` at a time, continuing after the name ``after``."""
        return page_of(await self.store.by_name(after, limit + 1), limit)

    async def webhook_secret(self, account_id: str) -> str:
        return (await self.store.by_id(account_id)).webhook_secret

    async def rotate_webhook_secret(self, account_id: str) -> str:
        """A new secret signs the account's webhooks; the old one signs beside it for a day."""
        return (await self.store.rotate_webhook_secret(account_id)).webhook_secret

    async def audit(self) -> list[str]:
        return await audit(self.db)

    async def id_of(self, name: str) -> str:
        """The id of the account with this name; NotFound when there is none."""
        return (await self.store.get(_existing(name))).id
