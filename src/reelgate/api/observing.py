"""Every request observed, before anything else meets it: its request id, its metrics and its
access log line.

The request id is the client's ``X-Request-ID`` when it is a plain one, else a new one; it is
echoed in the answer, kept in the scope for the create (which stores it with the task), and
carried by every log line written while the request is served. Metrics and access log lines
name the route's template, never the path: a path carries ids, and a client could make any
number of them. The routes served before the framework (:mod:`reelgate.api.hot_paths`) write
their template in the scope themselves.

This runs on every request, the poll fast path's included, so it does as little as it can:
one pass over the headers, two clock reads, and series looked up once per route and status.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import Final

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelgate import logs
from reelgate.domain import request_ids
from reelgate.services.metrics import Metrics

ROUTE: Final = "reelgate.route"
"""Where a route served before the framework writes its template."""
REQUEST_ID: Final = "reelgate.request_id"
"""Where the request's id is kept for the handlers."""
UNMATCHED: Final = "unmatched"
_HEADER: Final = b"x-request-id"

access_log = logging.getLogger("reelgate.access")


def request_id(scope: Scope) -> str | None:
    found: str | None = scope.get(REQUEST_ID)
    return found


class Observing:
    def __init__(self, app: ASGIApp, *, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log
        self.metrics: Metrics | None = None
        """Bound at start, when the process's registry is made."""
        # Made ids: this process's random prefix and a count, unique across processes and
        # half the cost of random ones (request ids need not be unguessable).
        prefix, counter = os.urandom(4).hex(), itertools.count(1)
        self._new_id: Callable[[], str] = lambda: f"{prefix}{next(counter):08x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = None
        for name, value in scope["headers"]:
            if name == _HEADER:
                rid = request_ids.accepted(value)
                break
        if rid is None:
            rid = self._new_id()
        scope[REQUEST_ID] = rid
        echoed = (_HEADER, rid.encode())
        root_path = scope.get("root_path", "")
        status = 500  # what the server answers when the app fails before answering

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        token = logs.request_id.set(rid)
        try:
            await self.app(scope, receive, send_observed)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get(ROUTE) or _template(scope, root_path)
            if self.metrics is not None:
                self.metrics.http.record(route, scope["method"], status, seconds)
            if self.access_log:
                _log_access(route, scope["method"], status, seconds)
            logs.request_id.reset(token)


def _template(scope: Scope, root_path: str) -> str:
    """The template of the route the framework chose, under the path of any mount it is in."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is None or isinstance(route, Mount):
        return UNMATCHED
    mounted_at = scope.get("root_path", "")[len(root_path) :]
    return f"{mounted_at}{path}"


def _log_access(route: str, method: str, status: int, seconds: float) -> None:
    duration_ms = round(seconds * 1000, 3)
    access_log.info(
        "%s %s %d %.1f ms",
        method,
        route,
        status,
        duration_ms,
        extra={"route": route, "method": method, "status": status, "duration_ms": duration_ms},
    )
