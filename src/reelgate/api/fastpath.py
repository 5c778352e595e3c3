"""Task polls answered straight from memory, before the framework sees them.

Clients poll ``GET /v1/tasks/{id}`` every few seconds, so it is the hottest route by far. When
both the caller's key and the task are cached, this answers with the cached bytes at the ASGI
level; anything else (a miss, a bad key, another account's task) goes on to the framework's
route, which answers the same way from the database and fills the cache.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from reelgate.api.gateway import Gateway

_PREFIX: Final = "/v1/tasks/"
_HEADERS: Final = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


class PollFastPath:
    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            if path.startswith(_PREFIX):
                body = self._cached(scope, path[len(_PREFIX) :])
                if body is not None:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)

    def _cached(self, scope: Scope, task_id: str) -> bytes | None:
        if not task_id or "/" in task_id:
            return None
        for name, value in scope["headers"]:
            if name == b"authorization":
                key = self.gateway.cached_key(value.decode("latin-1"))
                return None if key is None else self.gateway.cached_task_body(key, task_id)
        return None
