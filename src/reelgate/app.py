"""The whole gateway assembled: database, upstream, services, engine and HTTP API, wired in the
app's lifespan, never at import time. ``reelgate serve`` serves :func:`create_app`; ``reelgate
engine`` runs :func:`run_engine`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.types import ASGIApp

from reelgate import logs
from reelgate.api.app import build_api
from reelgate.api.auth import Auth
from reelgate.api.callbacks import UPSTREAM_CALLBACK_PATH
from reelgate.api.limits import RequestLimits
from reelgate.api.observing import Observing
from reelgate.api.operations import Operations, operations_app
from reelgate.api.poll_cache import FreshCache
from reelgate.api.resources import TaskView
from reelgate.api.server import serving
from reelgate.api.state import ApiState
from reelgate.config import Settings
from reelgate.domain.health import gateway_id
from reelgate.domain.secret_key import KeyUse, SecretKey
from reelgate.engine.process import EngineProcess
from reelgate.services.database import open_database
from reelgate.services.database_metrics import DatabaseMetrics
from reelgate.services.destinations import Reach, origin
from reelgate.services.metrics import Metrics
from reelgate.services.readiness import Readiness
from reelgate.services.secret_key import load_secret_key
from reelgate.services.wiring import Services, open_services
from reelgate.upstream.provider import Provider
from reelgate.upstream.wiring import EMBEDDED_SANDBOX_PATH, build_upstream, single_channel

log = logging.getLogger(__name__)


def _callback_base(settings: Settings) -> str | None:
    """Where upstreams reach the callbacks, ``{channel}`` standing for the channel: only with a
    public address."""
    if settings.public_url is None:
        return None
    return settings.public_url.rstrip("/") + UPSTREAM_CALLBACK_PATH


def _reach(settings: Settings, trusted: str | None = None) -> Reach:
    return Reach(
        allowed=tuple(settings.allowed_networks),
        trusted_origins=frozenset({origin(trusted)} if trusted else ()),
    )


def engine_process(
    services: Services, trusted_origin: str | None = None, *, alone: bool = False
) -> EngineProcess:
    """The engine, rendering webhook bodies as the task's owner reads the task; ``alone`` in a
    process of its own, where it follows the change feed for tasks made due elsewhere."""
    view = TaskView.of(services.settings, services.link_key)
    engine = EngineProcess(
        services.db,
        services.settings,
        services.channels.provider,
        lambda record: view.body(record)[0],
        _reach(services.settings, trusted_origin),
        services.metrics,
        follow_due=alone,
    )
    engine.channel_rates = {
        config.id: config.requests_per_s
        for config in services.channels.order
        if config.requests_per_s is not None
    }
    return engine


def _operations(
    services: Services,
    key: SecretKey,
    readiness: Readiness,
    database: DatabaseMetrics | None = None,
) -> Operations:
    """What /metrics, /healthz and /readyz read; ``database``: the gateway-wide totals, which
    only ``serve`` shows."""
    if database is not None:
        services.metrics.watch(database)
    return Operations(
        metrics=services.metrics,
        readiness=readiness,
        require_admin=Auth(services.accounts, FreshCache(0), services.admin_token_hash).admin,
        metrics_public=services.settings.metrics_public,
        gateway=gateway_id(key.fingerprint()),
        database=database,
    )


async def _prune_idempotency_keys(services: Services) -> None:
    """Forget expired Idempotency-Keys, now and then (lookups already ignore them)."""
    every_s = min(3600.0, services.settings.idempotency_ttl_s / 4)
    while True:
        try:
            pruned = await services.tasks.prune_idempotency_keys()
            if pruned:
                log.info("forgot %d expired idempotency keys", pruned)
        except Exception:
            log.exception("could not prune idempotency keys; trying again later")
        await asyncio.sleep(every_s)


def create_app(settings: Settings, provider: Provider | None = None) -> ASGIApp:
    """The gateway as an ASGI app. The database must already be migrated (``reelgate migrate``).

    ``provider`` replaces the upstream the settings name (KIE, or the embedded sandbox).
    """
    upstream = build_upstream(settings) if provider is None else single_channel(settings, provider)
    sandbox = upstream.sandbox
    if sandbox is not None and settings.public_url is None:
        # The embedded sandbox calls back to the gateway it lives in.
        settings = settings.model_copy(update={"public_url": settings.loopback_url()})
    # The embedded sandbox serves its videos from the gateway's own address: trusted as it is,
    # and nothing else on loopback.
    trusted = settings.loopback_url() if sandbox is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        key = load_secret_key(settings)
        db = await open_database(settings, key)
        metrics = Metrics()
        services = await open_services(
            settings, key, db, upstream, _callback_base(settings), metrics
        )
        logs.never_show(key.material.hex(), services.link_key.hex())
        api = ApiState.of(services)
        app.state.api = api
        # The console's session cookies are sealed with a key of their own: any process of
        # this gateway opens them, and a copy of the database alone cannot forge one.
        app.state.console_key = key.derive(KeyUse.CONSOLE_SESSIONS)
        readiness = Readiness(db, services.channels.providers)
        app.state.ops = _operations(services, key, readiness, DatabaseMetrics(db))
        observing.metrics = metrics
        follower = asyncio.create_task(api.follow_changes(), name="reelgate-change-feed")
        pruner = asyncio.create_task(
            _prune_idempotency_keys(services), name="reelgate-idempotency-pruner"
        )
        stop = asyncio.Event()
        engine_run = None
        if settings.run_engine:
            engine = engine_process(services, trusted)
            services.callbacks.wake_engine = engine.wake
            readiness.loops = tuple(engine.health.values())
            engine_run = asyncio.create_task(engine.run(stop), name="reelgate-engine")
        try:
            yield
        finally:
            stop.set()
            if engine_run is not None:
                await engine_run
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
            await services.rates.store.aclose()
            await services.channels.aclose()
            if sandbox is not None:
                await sandbox.state.sandbox.aclose()
            await db.dispose()

    app, served = build_api(lifespan, console=settings.console)
    if sandbox is not None:
        app.mount(EMBEDDED_SANDBOX_PATH, sandbox)
    observing = Observing(
        RequestLimits(served, settings.body_timeout_s), access_log=settings.access_log
    )
    return observing


async def run_engine(
    settings: Settings,
    stop: asyncio.Event,
    *,
    once: bool = False,
    metrics_port: int | None = None,
) -> None:
    """The engine alone, for deployments that split it from the API (``reelgate engine``);
    with ``metrics_port``, its /metrics, /healthz and /readyz served there."""
    key = load_secret_key(settings)
    db = await open_database(settings, key)
    upstream = build_upstream(settings)
    services = None
    try:
        services = await open_services(
            settings, key, db, upstream, _callback_base(settings), Metrics()
        )
        logs.never_show(key.material.hex(), services.link_key.hex())
        engine = engine_process(services, alone=True)
        if once:
            await engine.run_once()
            return
        readiness = Readiness(db, services.channels.providers)
        readiness.loops = tuple(engine.health.values())
        if metrics_port is None:
            await engine.run(stop)
            return
        ops = operations_app(_operations(services, key, readiness))
        async with serving(ops, settings.host, metrics_port):
            await engine.run(stop)
    finally:
        if services is not None:
            await services.channels.aclose()
        else:
            for provider in upstream.providers.values():
                await provider.aclose()
        await db.dispose()
