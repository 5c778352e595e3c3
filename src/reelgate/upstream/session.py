"""The HTTP session an upstream adaptor talks through: one per upstream account, made on first
use inside the event loop that uses it, with the account's key and the two timeouts that tell
"nothing was sent" from "sent, no answer", and the errors every adaptor raises for either."""

from __future__ import annotations

import aiohttp

from reelgate.errors import UpstreamError, UpstreamOutcomeUnknown


def unreachable() -> UpstreamError:
    return UpstreamError(
        "the video provider could not be reached", code="upstream_unreachable", retryable=True
    )


def unreadable() -> UpstreamError:
    return UpstreamError(
        "the video provider sent an unreadable answer", code="upstream_bad_answer", retryable=True
    )


def outcome_unknown(message: str) -> UpstreamOutcomeUnknown:
    return UpstreamOutcomeUnknown(message, code="upstream_outcome_unknown")


def no_task_id() -> UpstreamOutcomeUnknown:
    return outcome_unknown("the video provider accepted the task without saying its id")


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

    async def create(self, url: str, body: bytes) -> tuple[int, bytes]:
        """POST a create: its status and body. Raises ``unreachable()`` when nothing reached
        the provider (so nothing was created), and UpstreamOutcomeUnknown when the request may
        have arrived: the task may exist, and must never be sent again blindly."""
        try:
            async with self.client().post(
                url, data=body, headers={"content-type": "application/json"}
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise unreachable() from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise outcome_unknown(
                "the video provider did not answer in time; the task may still have been created"
            ) from exc

    async def read(self, url: str, params: dict[str, str] | None = None) -> tuple[int, bytes]:
        """GET: its status and body. A read is safe to repeat, so any transport failure is
        ``unreachable()``, retryable."""
        try:
            async with self.client().get(url, params=params) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise unreachable() from exc
