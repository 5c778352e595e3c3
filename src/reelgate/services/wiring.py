"""The services one running gateway process holds, opened once at start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from reelgate.config import Settings
from reelgate.domain.changes import Change
from reelgate.domain.pricing import PriceBook
from reelgate.domain.secret_key import KeyUse, SecretKey
from reelgate.services.accounts import AccountService, hash_secret
from reelgate.services.callbacks import CallbackIntake
from reelgate.services.channels import Channels
from reelgate.services.console_sessions import ConsoleSessions
from reelgate.services.history import TaskHistory
from reelgate.services.metrics import Metrics
from reelgate.services.rates import Rates, buckets
from reelgate.services.signing import media_signing_key
from reelgate.services.tasks import TaskService
from reelgate.services.usage import UsageService
from reelgate.services.videos import Videos
from reelgate.store import changes, meta
from reelgate.store.database import Database
from reelgate.store.media import MediaFiles
from reelgate.store.tasks import TaskStore
from reelgate.upstream.wiring import Upstream


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    db: Database
    prices: PriceBook
    accounts: AccountService
    tasks: TaskService
    usage: UsageService
    """Task lists, statements and usage."""
    callbacks: CallbackIntake
    videos: Videos
    admin_token_hash: str | None
    """The admin API's token, as its hash; None disables the admin API."""
    link_key: bytes
    """Signs links to stored videos."""
    metrics: Metrics
    """This process's metrics."""
    channels: Channels
    """The upstream channels, every call to them measured: what the engine talks to as well."""
    rates: Rates
    """Per-key request rates, in Redis or in this process (REELGATE_REDIS_URL)."""
    history: TaskHistory
    """Tasks' timelines and webhook attempts, for the console."""
    console_sessions: ConsoleSessions
    """Console sessions signed out before they expire."""

    async def follow_changes(self) -> AsyncIterator[Change]:
        """Every change any process commits from now on (see :mod:`reelgate.store.changes`)."""
        async for change in changes.follow(self.db, self.settings.change_poll_interval_s):
            yield change


async def open_services(
    settings: Settings,
    key: SecretKey,
    db: Database,
    upstream: Upstream,
    callback_base: str | None,
    metrics: Metrics,
) -> Services:
    """The services, with the keys the gateway keeps read from the database (or made there on
    first start). ``db`` is opened with ``key`` (:func:`reelgate.services.database.open_database`);
    ``callback_base`` is where upstreams reach the callbacks, ``{channel}`` standing for the
    channel; ``metrics`` is the process's registry."""
    link_key = await media_signing_key(db, settings)
    admin_token_hash = (
        hash_secret(settings.admin_token)
        if settings.admin_token
        else await meta.get(db, meta.ADMIN_TOKEN_HASH)
    )
    # From the secret key, which the database never holds: a copy of the database alone cannot
    # make a callback token.
    callback_key = key.derive(KeyUse.CALLBACK_TOKENS)
    prices = PriceBook(settings.prices)
    store = TaskStore(db)
    channels = Channels(
        db,
        upstream.channels,
        upstream.providers,
        metrics,
        failures_to_open=settings.circuit_failures,
        cool_down_s=settings.circuit_cool_down_s,
    )
    await channels.start()
    # Reading a task back after a callback leases it as an engine's check does, for as long: a
    # process killed meanwhile holds the task no longer than a killed engine would.
    callbacks = CallbackIntake(
        store, channels.provider, callback_key, callback_base, lease_s=settings.engine_lease_s
    )
    return Services(
        settings=settings,
        db=db,
        prices=prices,
        accounts=AccountService(db),
        tasks=TaskService(db, settings, prices, channels, callbacks.url_for),
        usage=UsageService(db),
        callbacks=callbacks,
        videos=Videos(store, MediaFiles(settings.media_dir), link_key),
        admin_token_hash=admin_token_hash,
        link_key=link_key,
        metrics=metrics,
        channels=channels,
        rates=Rates(buckets(settings.redis_url)),
        history=TaskHistory(db),
        console_sessions=ConsoleSessions(db),
    )
