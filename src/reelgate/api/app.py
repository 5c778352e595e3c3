"""The HTTP API as a FastAPI app: routes, error answers and the OpenAPI document. What it
serves with is handed to it at start (``app.state.api``); it is never built at import time."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

import reelgate
from reelgate.api import (
    admin,
    callbacks,
    content,
    errors,
    events,
    lists,
    operations,
    public,
    webhooks,
)
from reelgate.api.hot_paths import HotPaths

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def build_api(lifespan: Lifespan) -> tuple[FastAPI, HotPaths]:
    """The FastAPI app, and the ASGI app to serve: the app behind the hot paths.
    ``lifespan`` must set ``app.state.api`` (an :class:`~reelgate.api.state.ApiState`) and
    ``app.state.ops`` (an :class:`~reelgate.api.operations.Operations`)."""
    app = FastAPI(
        title="reelgate",
        version=reelgate.__version__,
        summary="Seedance 2.0 video generation, billed per generated second.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    errors.install(app)
    app.include_router(public.router)
    app.include_router(lists.router)
    app.include_router(events.router)
    app.include_router(content.router)
    app.include_router(webhooks.router)
    app.include_router(admin.router)
    app.include_router(callbacks.router)
    app.include_router(operations.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=[*app.routes, *public.create_router.routes],
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(public.request_schema_components())
            api = getattr(app.state, "api", None)
            if api is not None:
                # The channels a client may pin are this deployment's: the document says which.
                public.name_channels(
                    components, [c.id for c in api.services.channels.order if c.enabled]
                )
            # Invalid input is answered 400 with reelgate's error body, never FastAPI's 422.
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app, HotPaths(app)
