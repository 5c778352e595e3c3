"""Accounts and their API keys, as values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from reelgate.domain.limits import NO_LIMITS, KeyLimits
from reelgate.domain.webhooks import WEBHOOK_SECRET_OVERLAP_S

ACCOUNT_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$"
"""1 to 200 letters, digits, '.', '_', '@' or '-', starting with a letter or digit: the one
rule, checked by the accounts service and stated in the OpenAPI document."""


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    balance_micro_usdc: int
    reserved_micro_usdc: int
    created_at: int
    webhook_secret: str = field(repr=False)
    previous_webhook_secret: str | None = field(default=None, repr=False)
    webhook_secret_rotated_at: int | None = None

    def signing_secrets(self, now_s: int) -> tuple[str, ...]:
        """The secrets that sign its webhooks now: the current one, and for a day after a
        rotation the one before, so that receivers verifying with either accept them."""
        if (
            self.previous_webhook_secret is not None
            and self.webhook_secret_rotated_at is not None
            and now_s - self.webhook_secret_rotated_at < WEBHOOK_SECRET_OVERLAP_S
        ):
            return (self.webhook_secret, self.previous_webhook_secret)
        return (self.webhook_secret,)

    @property
    def available_micro_usdc(self) -> int:
        return self.balance_micro_usdc - self.reserved_micro_usdc


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    account_id: str
    prefix: str
    created_at: int
    revoked_at: int | None
    name: str | None = None
    limits: KeyLimits = NO_LIMITS

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def expired(self, now_s: float) -> bool:
        expires_at = self.limits.expires_at
        return expires_at is not None and now_s >= expires_at
