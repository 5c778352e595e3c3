"""The upstream adaptors keep no cookies: an upstream authenticates by key, and a cookie it
sets is never sent back. (Webhook deliveries and media downloads go to an address pinned by
IP, from which no cookie jar takes cookies; their sessions keep none either.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reelgate.domain.request import parse_request
from reelgate.upstream.kie import CREATE_PATH, KieProvider
from tests.integration.engine_helpers import TEXT
from tests.sandbox_support import serve

COOKIE = "session=planted; Path=/"


@contextmanager
def cookie_setter() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A loopback server that sets a cookie on every answer and keeps every request's
    headers: the KIE create path accepts a task."""
    seen: list[dict[str, str]] = []

    async def kie_create(request: Request) -> Response:
        seen.append(dict(request.headers))
        body: dict[str, Any] = {"code": 200, "msg": "success", "data": {"taskId": "t1"}}
        return JSONResponse(body, headers={"set-cookie": COOKIE})

    app = Starlette(
        routes=[
            Route(CREATE_PATH, kie_create, methods=["POST"]),
        ]
    )
    with serve(app) as base:
        # By name: a cookie jar takes no cookies from a bare IP address at all.
        yield base.replace("127.0.0.1", "localhost"), seen


async def test_the_upstream_adaptor_sends_back_no_cookie_it_was_given() -> None:
    request = parse_request(TEXT)
    with cookie_setter() as (base, seen):
        provider = KieProvider(base, "key")
        try:
            for _ in range(3):
                assert await provider.submit(request, callback_url=None) == "t1"
        finally:
            await provider.aclose()
    assert len(seen) == 3
    assert [headers.get("cookie") for headers in seen] == [None, None, None]
