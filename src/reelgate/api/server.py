"""How uvicorn serves the gateway: one set of options for ``reelgate serve`` and the tests.

uvicorn with httptools on uvloop is kept for its speed (the poll route's budget is measured
against it). What it bounds itself is set here: idle connections close after
``keep_alive_s``, and beyond ``max_connections`` a request gets uvicorn's own refusal (503,
``Connection: close``), given before any of the gateway's code runs, so that refusing costs
least when the process is busiest. What it cannot bound (header size, slow bodies) is checked
in :mod:`reelgate.api.limits`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from reelgate.config import Settings


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, which also closes a connection that never sends a request.

    uvicorn arms its keep-alive timer only when a response is complete, so a connection that
    sends nothing stays open for ever, holding one of ``max_connections``. Armed from the
    start, the same timer closes it after ``keep_alive_s``; the first bytes cancel it, as
    they do between requests.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.Config's options for the gateway, beside the app, address and logging."""
    return {
        "loop": "uvloop",
        "http": HttpProtocol,
        "timeout_keep_alive": settings.keep_alive_s,
        # uvicorn refuses a request once the open connections, the request's own included,
        # reach limit_concurrency: one more serves exactly max_connections.
        "limit_concurrency": settings.max_connections + 1,
    }
