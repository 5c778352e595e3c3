"""The HTTP session an upstream adaptor talks through: one per upstream account, made on first
use inside the event loop that uses it, with the account's key and the two timeouts that tell
"nothing was sent" from "sent, no answer"."""

from __future__ import annotations

import aiohttp


class UpstreamSession:
    def __init__(self, api_key: str, connect_timeout_s: float, timeout_s: float) -> None:
        self._headers = {"authorization": f"Bearer {api_key}"}
        # connect: waiting for a pooled connection and opening one; nothing has been sent yet.
        # sock_read: waiting for the answer once the request went out. total bounds the rest.
        self._timeout = aiohttp.ClientTimeout(
            total=connect_timeout_s + timeout_s, connect=connect_timeout_s, sock_read=timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    def client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=200),
                raise_for_status=False,
                # An upstream authenticates by key; cookies would only cost each request time.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
