"""The ASGI application: wired in its lifespan, never at import time."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp

import reelgate
from reelgate.api import admin, callbacks, content, errors, events, public, resources, webhooks
from reelgate.api.fastpath import PollFastPath
from reelgate.api.gateway import Gateway
from reelgate.api.poll_cache import PollCache
from reelgate.config import Settings
from reelgate.domain.pricing import PriceBook
from reelgate.engine.media import MediaStore
from reelgate.engine.process import EngineProcess
from reelgate.services.accounts import AccountService, hash_secret
from reelgate.services.signing import media_signing_key
from reelgate.services.tasks import TaskService
from reelgate.store import changes, meta
from reelgate.store.database import Database
from reelgate.upstream.provider import Provider
from reelgate.upstream.wiring import EMBEDDED_SANDBOX_PATH, build_upstream

log = logging.getLogger(__name__)


async def _follow_changes(gateway: Gateway) -> None:
    """Keep the poll cache fresh for as long as the app runs. If following fails, nothing cached
    can be trusted: drop it all and start again."""
    while True:
        try:
            async for change in changes.follow(gateway.db, gateway.settings.change_poll_interval_s):
                gateway.cache.apply(change)
                gateway.events.apply(change)  # after the cache: streams then read fresh bodies
        except Exception:
            log.exception("change feed failed; dropping the poll cache and following again")
            gateway.cache.apply(changes.RESYNC)
            gateway.events.apply(changes.RESYNC)
            await asyncio.sleep(1)


def _build_gateway(settings: Settings, db: Database, provider: Provider) -> Gateway:
    prices = PriceBook(settings.prices)
    tasks = TaskService(db, settings, prices, provider)
    catalogue = resources.model_list(prices, tasks.margin_ppm)
    return Gateway(
        settings=settings,
        db=db,
        accounts=AccountService(db),
        tasks=tasks,
        cache=PollCache(settings.key_cache_size, settings.task_cache_size),
        view=resources.TaskView.of(settings, link_key=b""),
        media=MediaStore(settings.media_dir),
        models_body=catalogue.model_dump_json().encode(),
        model_bodies={card.id: card.model_dump_json().encode() for card in catalogue.data},
    )


def create_app(settings: Settings, provider: Provider | None = None) -> ASGIApp:
    """The gateway as an ASGI app. The database must already be migrated (``reelgate migrate``).

    ``provider`` replaces the upstream the settings name (KIE, or the embedded sandbox).
    """
    sandbox = None
    if provider is None:
        upstream = build_upstream(settings)
        provider, sandbox = upstream.provider, upstream.sandbox
        if sandbox is not None and settings.public_url is None:
            # The embedded sandbox calls back to the gateway it lives in.
            settings = settings.model_copy(update={"public_url": settings.loopback_url()})
    db = Database(settings.database_url)
    gateway = _build_gateway(settings, db, provider)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway.admin_token_hash = (
            hash_secret(settings.admin_token)
            if settings.admin_token
            else await meta.get(db, meta.ADMIN_TOKEN_HASH)
        )
        gateway.view = dataclasses.replace(
            gateway.view, link_key=await media_signing_key(db, settings)
        )
        follower = asyncio.create_task(_follow_changes(gateway), name="reelgate-change-feed")
        stop_engine = asyncio.Event()
        engine = None
        if settings.run_engine:
            process = EngineProcess(db, settings, provider, lambda r: gateway.view.body(r)[0])
            gateway.wake_engine = process.wake
            engine = asyncio.create_task(process.run(stop_engine), name="reelgate-engine")
        try:
            yield
        finally:
            stop_engine.set()
            if engine is not None:
                await engine
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            await provider.aclose()
            if sandbox is not None:
                await sandbox.state.sandbox.aclose()
            await db.dispose()

    app = FastAPI(
        title="reelgate",
        version=reelgate.__version__,
        summary="Seedance 2.0 video generation, billed per generated second.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.gateway = gateway
    errors.install(app)
    app.include_router(public.router)
    app.include_router(events.router)
    app.include_router(content.router)
    app.include_router(webhooks.router)
    app.include_router(admin.router)
    app.include_router(callbacks.router)
    if sandbox is not None:
        app.mount(EMBEDDED_SANDBOX_PATH, sandbox)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(public.request_schema_components())
            # Invalid input is answered 400 with reelgate's error body, never FastAPI's 422.
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return PollFastPath(app, gateway)
