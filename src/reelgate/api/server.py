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
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from types import FrameType
from typing import Any, Final

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from reelgate.config import Settings

log = logging.getLogger(__name__)

DRAINING: Final = "reelgate.draining"
"""Set in the app's lifespan state once the server begins to stop; every request begun after
sees it in ``scope["state"]`` (the ASGI lifespan state is copied into each request's)."""


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


class GatewayServer(uvicorn.Server):
    """uvicorn's server, which on SIGTERM first stops being ready, then stops.

    An orchestrator sends SIGTERM and, at about the same time, takes the process out of its
    load balancer, which may take a few seconds to notice. For ``drain_s`` the server goes on
    accepting and serving while ``/readyz`` answers 503; only then does uvicorn's own shutdown
    begin (stop accepting, finish what is under way, stop the app). Ctrl-C (SIGINT) stops at
    once, as it does in a terminal; a second Ctrl-C cuts the drain short too.
    """

    def __init__(self, config: uvicorn.Config, drain_s: float) -> None:
        super().__init__(config)
        self.drain_s = drain_s
        self.terminated = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM:
            self.terminated = True
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.terminated and self.drain_s > 0:
            self.lifespan.state[DRAINING] = True
            log.info(
                "draining: /readyz answers 503 for %g s while requests are still served",
                self.drain_s,
            )
            loop = asyncio.get_running_loop()
            until = loop.time() + self.drain_s
            # force_exit is set by a signal handler: polled, as uvicorn's own loop does.
            while loop.time() < until and not self.force_exit:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await super().shutdown(sockets)


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, host: str, port: int) -> AsyncIterator[None]:
    """Serve ``app`` in the running event loop for as long as the block runs (an engine's
    metrics port). Signals stay with the process, which stops the block."""
    server = _Quiet(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False))
    run = asyncio.create_task(server.serve(), name="reelgate-operations-server")
    try:
        while not server.started:
            if run.done():
                await run  # it failed to start (the port is taken): say why
                raise RuntimeError(f"the operations server on {host}:{port} did not start")
            await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        await run


class _Quiet(uvicorn.Server):
    """A server that leaves signals to its process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
