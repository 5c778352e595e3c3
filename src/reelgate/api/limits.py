"""What a request may cost before it is answered: the size of its headers and the time its body
takes to arrive. The first thing every request meets.

The server (uvicorn with httptools, see :mod:`reelgate.api.server`) bounds idle connections and
their number, but neither of these: httptools has no limit on header size and uvicorn none on
how long a body may take. Both are checked here, at the ASGI level, where the answer can be the
contract's error body. Headers are counted once the server has read them, so the memory a huge
head takes while it arrives is bounded only by a reverse proxy in front (see the README).
"""

from __future__ import annotations

import asyncio
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelgate.api.errors import error_answer
from reelgate.errors import HeadersTooLarge, RequestTimeout

MAX_HEADER_BYTES: Final = 16 * 1024
"""Header names and values together; what browsers and proxies send fits many times over."""

_BODILESS: Final = frozenset({"GET", "HEAD"})
"""Methods whose requests the gateway answers without reading a body."""


class RequestLimits:
    def __init__(self, app: ASGIApp, body_timeout_s: float) -> None:
        self.app = app
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # Every request pays for this check: a plain loop is the cheapest way to sum.
            size = 0
            for name, value in scope["headers"]:
                size += len(name) + len(value)
            if size > MAX_HEADER_BYTES:
                too_large = HeadersTooLarge(
                    f"the request's header fields are larger than {MAX_HEADER_BYTES} bytes"
                )
                await error_answer(too_large)(scope, receive, send)
                return
            if scope["method"] not in _BODILESS:
                receive = _body_deadline(receive, self.body_timeout_s)
        await self.app(scope, receive, send)


def _body_deadline(receive: Receive, timeout_s: float) -> Receive:
    """``receive``, raising :class:`RequestTimeout` once the body has taken longer than
    ``timeout_s`` from now; after the body's last part it waits as long as it is asked to
    (a streamed answer waits on it for the client to go away)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    body_done = False

    async def receive_in_time() -> Message:
        nonlocal body_done
        if body_done:
            return await receive()
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise RequestTimeout(
                f"the request body did not arrive within {timeout_s:g} s"
            ) from None
        body_done = message["type"] != "http.request" or not message.get("more_body", False)
        return message

    return receive_in_time
