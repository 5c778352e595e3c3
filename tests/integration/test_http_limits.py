"""What a client can hold of a gateway: slow bodies get a 408, oversized headers a 431, idle
connections are closed, and connections beyond the limit are refused. Driven by a raw socket
client over loopback, since a well-behaved HTTP client cannot misbehave on purpose; every wait
is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import pytest

from tests.conftest import ADMIN_TOKEN, GatewayFactory, RunningGateway
from tests.integration.api_helpers import CREATE_PATHS, ERROR_KEYS

BODY_TIMEOUT_S: Final = 1.0
KEEP_ALIVE_S: Final = 1
SLACK_S: Final = 3.0
"""How much later than its setting a timer may fire and the test still pass: generous."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, object]:
        body: dict[str, object] = json.loads(self.body)
        assert set(body) == ERROR_KEYS, body
        return body


class RawConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, within_s: float) -> Answer:
        async with asyncio.timeout(within_s):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in filter(None, lines):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return Answer(int(status_line.split()[1]), headers, body)

    async def closed_by_server(self, within_s: float) -> bool:
        """Whether the server closes the connection within ``within_s``."""
        try:
            async with asyncio.timeout(within_s):
                return await self.reader.read(1) == b""
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True


@contextlib.asynccontextmanager
async def raw_connection(gateway: RunningGateway) -> AsyncIterator[RawConnection]:
    url = urlsplit(gateway.base_url)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(url.hostname, url.port), timeout=5
    )
    try:
        yield RawConnection(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def authorization(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    "path", [CREATE_PATHS[0], "/admin/accounts"], ids=["create", "admin-parsed-body"]
)
async def test_a_body_that_does_not_arrive_in_time_gets_a_408_and_its_connection_closes(
    start_gateway: GatewayFactory, path: str
) -> None:
    gateway = start_gateway(body_timeout_s=BODY_TIMEOUT_S)
    key = ADMIN_TOKEN if path.startswith("/admin") else await gateway.account_with_key("slow")
    headers = {**authorization(key), "content-type": "application/json", "content-length": "10"}
    async with raw_connection(gateway) as connection:
        # Half of the declared body, then nothing.
        await connection.send(request("POST", path, headers, b'{"mod'))
        answer = await connection.answer(within_s=BODY_TIMEOUT_S + SLACK_S)
        assert answer.status == 408, answer
        assert answer.error()["code"] == "request_timeout"
        assert answer.headers["connection"] == "close"
        assert await connection.closed_by_server(within_s=SLACK_S)


async def test_a_body_that_arrives_slowly_but_in_time_is_read(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(body_timeout_s=5.0)
    async with raw_connection(gateway) as connection:
        body = json.dumps({"name": "patient", "credit_usd": "1"}).encode()
        headers = {
            **authorization(ADMIN_TOKEN),
            "content-type": "application/json",
            "content-length": str(len(body)),
        }
        await connection.send(request("POST", "/admin/accounts", headers, body[:10]))
        await asyncio.sleep(0.5)
        await connection.send(body[10:])
        answer = await connection.answer(within_s=10)
    assert answer.status == 201, answer


async def test_headers_over_16_kib_get_a_431_and_those_under_are_served(
    gateway: RunningGateway,
) -> None:
    for size, status in ((15 * 1024, 200), (17 * 1024, 431), (1024 * 1024, 431)):
        async with raw_connection(gateway) as connection:
            await connection.send(request("GET", "/v1/models", {"x-padding": "a" * size}))
            answer = await connection.answer(within_s=10)
            assert answer.status == status, (size, answer.status)
            if status == 431:
                assert answer.error()["code"] == "headers_too_large"
                assert await connection.closed_by_server(within_s=SLACK_S)


async def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_time(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(keep_alive_s=KEEP_ALIVE_S)
    async with raw_connection(gateway) as connection:
        await connection.send(request("GET", "/v1/models", {}))
        assert (await connection.answer(within_s=10)).status == 200
        assert await connection.closed_by_server(within_s=KEEP_ALIVE_S + SLACK_S)


async def test_a_connection_that_never_sends_a_request_is_closed_after_the_keep_alive_time(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(keep_alive_s=KEEP_ALIVE_S)
    async with raw_connection(gateway) as connection:
        assert await connection.closed_by_server(within_s=KEEP_ALIVE_S + SLACK_S)


async def test_requests_beyond_max_connections_get_a_503_until_a_connection_closes(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(max_connections=2)
    models = request("GET", "/v1/models", {})
    async with raw_connection(gateway) as first, raw_connection(gateway) as second:
        for held in (first, second):
            await held.send(models)
            assert (await held.answer(within_s=10)).status == 200
        async with raw_connection(gateway) as third:
            await third.send(models)
            refused = await third.answer(within_s=10)
            assert refused.status == 503, refused
            assert refused.headers["connection"] == "close"
            assert await third.closed_by_server(within_s=SLACK_S)
        await second.send(models)  # the served connections are still served
        assert (await second.answer(within_s=10)).status == 200
    # Once the server has seen them close (at once, but not before this client moves on),
    # new connections are served again.
    for _ in range(50):
        async with raw_connection(gateway) as later:
            await later.send(models)
            if (await later.answer(within_s=10)).status == 200:
                return
        await asyncio.sleep(0.1)
    pytest.fail("no connection was served again after the held ones closed")
