"""The two hottest routes, served before the framework sees them.

Clients poll ``GET /v1/tasks/{id}`` every few seconds, so it is the hottest route by far. When
both the caller's key and the task are cached, this answers with the cached bytes at the ASGI
level; anything else (a miss, a bad key, another account's task) goes on to the framework's
route, which answers the same way from the database and fills the cache.

Both write their route's template in the scope, for the request's metrics and access log line
(see :mod:`reelgate.api.observing`).

Every create (``POST /v1/videos/generations`` and its alias) goes straight to its handler,
:func:`reelgate.api.public.create_task`, the one the OpenAPI document describes: the
framework's routing, dependency solving and middleware would otherwise cost about a third of
the create's time. Errors get the same answers as anywhere else (:func:`errors.error_answer`).
"""

from __future__ import annotations

from typing import Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from reelgate.api import errors
from reelgate.api.observing import ROUTE
from reelgate.api.public import CREATE_PATHS, create_task
from reelgate.api.state import ApiState

_PREFIX: Final = "/v1/tasks/"
_POLL_ROUTE: Final = "/v1/tasks/{task_id}"
_HEADERS: Final = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


class HotPaths:
    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "GET" and path.startswith(_PREFIX):
                body = self._cached(scope, path[len(_PREFIX) :])
                if body is not None:
                    scope[ROUTE] = _POLL_ROUTE
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
            elif path in CREATE_PATHS:
                scope[ROUTE] = path  # a create's path is its template
                if method == "POST":
                    await self._create(scope, receive, send)
                else:
                    await errors.method_not_allowed("POST")(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _create(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.app  # as the framework sets it: the handler finds its state there
        try:
            response = await create_task(Request(scope, receive), None)
        except Exception as exc:
            response = errors.error_answer(exc)
        await response(scope, receive, send)

    def _cached(self, scope: Scope, task_id: str) -> bytes | None:
        if not task_id or "/" in task_id:
            return None
        api: ApiState | None = getattr(self.app.state, "api", None)
        if api is None:
            return None  # not started yet
        for name, value in scope["headers"]:
            if name == b"authorization":
                key = api.auth.cached_key(value.decode("latin-1"))
                return None if key is None else api.bodies.cached(key, task_id)
        return None
