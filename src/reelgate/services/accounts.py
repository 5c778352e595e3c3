"""Accounts and API keys: the operations behind both the CLI and the admin API."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Final

from reelgate.domain.accounts import ACCOUNT_NAME_PATTERN, Account, ApiKey
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

    async def create_key(self, account_name: str) -> IssuedKey:
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = await self.store.add_key(_existing(account_name), hash_secret(secret), secret[:10])
        return IssuedKey(key, secret)

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
