"""Accounts, their API keys and their credits."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.domain.accounts import Account, ApiKey
from reelgate.domain.changes import KEY
from reelgate.domain.ids import is_id, new_id
from reelgate.domain.limits import Budget, BudgetPeriod, KeyLimits, Rate
from reelgate.domain.money import MAX_BALANCE_MICRO_USDC
from reelgate.domain.task import LedgerKind
from reelgate.domain.webhooks import new_webhook_secret
from reelgate.errors import Conflict, NotFound
from reelgate.store import changes
from reelgate.store.database import Database
from reelgate.store.schema import accounts, api_keys, ledger
from reelgate.store.sealing import PREFIX, Sealer, is_sealed

# An ApiKey's fields: everything but the hash, which never leaves the store.
_KEY_COLUMNS = tuple(c for c in api_keys.c if c.name != "key_hash")


def key_of(row: sa.Row[Any]) -> ApiKey:
    """An api_keys row as a value, its limits gathered."""
    m = row._mapping
    rate = (
        None
        if m["rate_count"] is None
        else Rate(m["rate_count"], m["rate_period_s"], m["rate_burst"])
    )
    budget = (
        None
        if m["budget_micro_usdc"] is None
        else Budget(m["budget_micro_usdc"], BudgetPeriod(m["budget_period"]))
    )
    return ApiKey(
        id=m["id"],
        account_id=m["account_id"],
        prefix=m["prefix"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
        name=m["name"],
        limits=KeyLimits(
            rate=rate,
            max_in_flight=m["max_in_flight"],
            models=None if m["models"] is None else tuple(m["models"].split(",")),
            budget=budget,
            expires_at=m["expires_at"],
        ),
    )


def limit_values(name: str | None, limits: KeyLimits) -> dict[str, Any]:
    """The api_keys columns that hold a key's name and limits."""
    rate, budget = limits.rate, limits.budget
    return {
        "name": name,
        "rate_count": None if rate is None else rate.count,
        "rate_period_s": None if rate is None else rate.period_s,
        "rate_burst": None if rate is None else rate.burst,
        "max_in_flight": limits.max_in_flight,
        "models": None if limits.models is None else ",".join(limits.models),
        "budget_micro_usdc": None if budget is None else budget.micro_usdc,
        "budget_period": None if budget is None else budget.period.value,
        "expires_at": limits.expires_at,
    }


def _place(account_id: str) -> str:
    """Where an account's webhook secrets are kept, which their sealing is bound to: both
    columns share it, so that a rotation moves the current one to the previous in SQL."""
    return f"accounts/{account_id}"


def account_of(row: sa.Row[Any], sealer: Sealer) -> Account:
    """An accounts row as a value, its webhook secrets opened."""
    place = _place(row.id)
    previous = row.previous_webhook_secret
    return Account(
        **{
            **row._mapping,
            "webhook_secret": sealer.open(row.webhook_secret, place),
            "previous_webhook_secret": None if previous is None else sealer.open(previous, place),
        }
    )


async def _account_by_name(conn: AsyncConnection, sealer: Sealer, name: str) -> Account:
    row = (await conn.execute(sa.select(accounts).where(accounts.c.name == name))).one_or_none()
    if row is None:
        raise NotFound(f"no account named {name!r}")
    return account_of(row, sealer)


async def _credit(conn: AsyncConnection, account_id: str, amount: int, note: str | None) -> bool:
    """Add to the balance, with its ledger entry, unless the balance would pass the most an
    account may hold; False when it would, and nothing is written. One UPDATE both checks and
    adds, so concurrent credits cannot race past the limit."""
    added = await conn.execute(
        accounts.update()
        .where(
            accounts.c.id == account_id,
            # Compared with the headroom, computed here, so that SQL never makes a sum past it.
            accounts.c.balance_micro_usdc <= MAX_BALANCE_MICRO_USDC - amount,
        )
        .values(balance_micro_usdc=accounts.c.balance_micro_usdc + amount)
    )
    if added.rowcount != 1:
        return False
    await conn.execute(
        ledger.insert().values(
            account_id=account_id,
            task_id=None,
            kind=LedgerKind.CREDIT,
            amount_micro_usdc=amount,
            created_at=int(time.time()),
            note=note,
        )
    )
    return True


class AccountStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, name: str, credit_micro_usdc: int) -> Account:
        """The new account with its opening credit, which must fit in an empty account."""
        account_id = new_id("acct")
        async with self.db.write() as conn:
            try:
                await conn.execute(
                    accounts.insert().values(
                        id=account_id,
                        name=name,
                        created_at=int(time.time()),
                        webhook_secret=self.db.sealer.seal(
                            new_webhook_secret(), _place(account_id)
                        ),
                    )
                )
            except IntegrityError:
                raise Conflict(f"an account named {name!r} already exists") from None
            if credit_micro_usdc and not await _credit(
                conn, account_id, credit_micro_usdc, "opening credit"
            ):
                raise ValueError(f"an opening credit of {credit_micro_usdc} is over the maximum")
            return await _account_by_name(conn, self.db.sealer, name)

    async def credit(
        self, name: str, amount_micro_usdc: int, note: str | None = None
    ) -> Account | None:
        """The account after the credit; None when it would take the balance over the most an
        account may hold, and nothing was written."""
        async with self.db.write() as conn:
            account = await _account_by_name(conn, self.db.sealer, name)
            if not await _credit(conn, account.id, amount_micro_usdc, note):
                return None
            return await _account_by_name(conn, self.db.sealer, name)

    async def get(self, name: str) -> Account:
        async with self.db.read() as conn:
            return await _account_by_name(conn, self.db.sealer, name)

    async def by_name(self, after: str | None, limit: int) -> list[Account]:
        """Up to ``limit`` accounts in the order of their names, after the name ``after``."""
        query = sa.select(accounts).order_by(accounts.c.name).limit(limit)
        if after is not None:
            query = query.where(accounts.c.name > after)
        async with self.db.read() as conn:
            return [account_of(row, self.db.sealer) for row in await conn.execute(query)]

    async def by_id(self, account_id: str) -> Account:
        async with self.db.read() as conn:
            row = (
                await conn.execute(sa.select(accounts).where(accounts.c.id == account_id))
            ).one_or_none()
            if row is None:
                raise NotFound(f"no account with id {account_id!r}")
            return account_of(row, self.db.sealer)

    async def rotate_webhook_secret(self, account_id: str) -> Account:
        async with self.db.write() as conn:
            await conn.execute(
                accounts.update()
                .where(accounts.c.id == account_id)
                .values(
                    webhook_secret=self.db.sealer.seal(new_webhook_secret(), _place(account_id)),
                    # Sealed as it is: the same place opens it.
                    previous_webhook_secret=accounts.c.webhook_secret,
                    webhook_secret_rotated_at=int(time.time()),
                )
            )
        return await self.by_id(account_id)

    async def seal_plaintext_secrets(self) -> int:
        """Seal the webhook secrets an older reelgate kept in plaintext; how many rows changed.
        A row changes only while it still holds the plaintext read, so processes starting
        together seal each secret once."""
        sealer = self.db.sealer
        a = accounts
        sealed = 0
        async with self.db.write() as conn:
            rows = await conn.execute(
                sa.select(a.c.id, a.c.webhook_secret, a.c.previous_webhook_secret).where(
                    sa.or_(
                        a.c.webhook_secret.not_like(PREFIX + "%"),
                        a.c.previous_webhook_secret.not_like(PREFIX + "%"),
                    )
                )
            )
            for row in rows.all():
                unchanged = [a.c.id == row.id]
                values = {}
                for column in (a.c.webhook_secret, a.c.previous_webhook_secret):
                    plaintext = getattr(row, column.name)
                    if plaintext is not None and not is_sealed(plaintext):
                        unchanged.append(column == plaintext)
                        values[column.name] = sealer.seal(plaintext, _place(row.id))
                updated = await conn.execute(a.update().where(*unchanged).values(values))
                sealed += updated.rowcount
        return sealed

    async def replace_webhook_secrets(self) -> int:
        """Give every account a new webhook secret and drop the one before, for a gateway whose
        secret key was lost (nothing opens the old ones); how many accounts there are."""
        async with self.db.write() as conn:
            ids = (await conn.execute(sa.select(accounts.c.id))).scalars().all()
            for account_id in ids:
                await conn.execute(
                    accounts.update()
                    .where(accounts.c.id == account_id)
                    .values(
                        webhook_secret=self.db.sealer.seal(
                            new_webhook_secret(), _place(account_id)
                        ),
                        previous_webhook_secret=None,
                        webhook_secret_rotated_at=None,
                    )
                )
        return len(ids)

    async def keys(self, account_id: str) -> list[ApiKey]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(*_KEY_COLUMNS)
                .where(api_keys.c.account_id == account_id)
                .order_by(api_keys.c.id)
            )
            return [key_of(row) for row in rows]

    async def add_key(
        self,
        account_name: str,
        key_hash: str,
        prefix: str,
        name: str | None = None,
        limits: KeyLimits | None = None,
    ) -> ApiKey:
        key_id, created_at = new_id("key"), int(time.time())
        async with self.db.write() as conn:
            account = await _account_by_name(conn, self.db.sealer, account_name)
            await conn.execute(
                api_keys.insert().values(
                    id=key_id,
                    account_id=account.id,
                    key_hash=key_hash,
                    prefix=prefix,
                    created_at=created_at,
                    **limit_values(name, limits or KeyLimits()),
                )
            )
            return await self._key(conn, key_id)

    async def _key(self, conn: AsyncConnection, key_id: str) -> ApiKey:
        row = (
            await conn.execute(sa.select(*_KEY_COLUMNS).where(api_keys.c.id == key_id))
        ).one_or_none()
        if row is None:
            raise NotFound(f"no API key with id {key_id[:100]!r}")
        return key_of(row)

    async def get_key(self, key_id: str) -> ApiKey:
        if not is_id("key", key_id):
            raise NotFound(f"no API key with id {key_id[:100]!r}")
        async with self.db.read() as conn:
            return await self._key(conn, key_id)

    async def update_key(self, key_id: str, name: str | None, limits: KeyLimits) -> ApiKey:
        """Set the key's name and limits (all of them: the caller merged what stays); every
        process learns of it from the change feed and reads the key afresh."""
        if not is_id("key", key_id):
            raise NotFound(f"no API key with id {key_id[:100]!r}")
        async with self.db.write() as conn:
            key_hash = (
                await conn.execute(sa.select(api_keys.c.key_hash).where(api_keys.c.id == key_id))
            ).scalar_one_or_none()
            if key_hash is None:
                raise NotFound(f"no API key with id {key_id[:100]!r}")
            await conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id)
                .values(**limit_values(name, limits))
            )
            await changes.publish(conn, KEY, key_hash)
            return await self._key(conn, key_id)

    async def revoke_key(self, key_id: str) -> ApiKey:
        if not is_id("key", key_id):
            raise NotFound(f"no API key with id {key_id[:100]!r}")
        async with self.db.write() as conn:
            row = (
                await conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id))
            ).one_or_none()
            if row is None:
                raise NotFound(f"no API key with id {key_id!r}")
            revoked_at = row.revoked_at
            if revoked_at is None:
                revoked_at = int(time.time())
                await conn.execute(
                    api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=revoked_at)
                )
                await changes.publish(conn, KEY, row.key_hash)
            return await self._key(conn, key_id)

    async def find_key(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, revoked or not; None when there is none."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(sa.select(*_KEY_COLUMNS).where(api_keys.c.key_hash == key_hash))
            ).one_or_none()
            return None if row is None else key_of(row)
