"""A loopback TCP proxy in front of a real gateway that misbehaves on purpose, one connection
at a time: it answers 503 or 429 itself, loses the gateway's answer, or cuts a response off
after some bytes. What the client's retries and resumes are tested against."""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Final

from tests.conftest import free_port

PASS: Final = "pass"


@dataclass(frozen=True)
class Refuse:
    """Answer the connection's first request with this status and the contract's error body,
    without passing it on."""

    status: int
    retry_after: str | None = None


@dataclass(frozen=True)
class LoseAnswer:
    """Pass the request on, let the gateway answer it, and close the client's connection
    without a byte of the answer: a create whose answer never came."""


@dataclass(frozen=True)
class CutAfter:
    """Pass the request on and cut the connection after ``n`` bytes of the answer."""

    n: int


Action = str | Refuse | LoseAnswer | CutAfter
_REASONS: Final = {429: "Too Many Requests", 502: "Bad Gateway", 503: "Service Unavailable"}
_ERRORS: Final = {429: "rate_limited", 502: "upstream_error", 503: "unavailable"}


@dataclass
class Proxy:
    url: str
    actions: deque[Action] = field(default_factory=deque)
    """What to do with each new connection, in order; once empty, pass everything."""
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    """The first line of every request the proxy saw."""
    heads: list[bytes] = field(default_factory=list)
    """The head (request line and headers) of each connection's first request."""

    def then(self, *actions: Action) -> Proxy:
        self.actions.extend(actions)
        return self

    def count(self, prefix: bytes) -> int:
        return sum(1 for line in self.requests if line.startswith(prefix))


def _read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _refusal(refuse: Refuse) -> bytes:
    body = json.dumps(
        {
            "error": _ERRORS.get(refuse.status, "error"),
            "message": "the proxy in front of the gateway refused this on purpose",
            "type": "api_error",
            "code": _ERRORS.get(refuse.status, "error"),
            "param": None,
        }
    ).encode()
    headers = [
        f"HTTP/1.1 {refuse.status} {_REASONS.get(refuse.status, 'Error')}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if refuse.retry_after is not None:
        headers.append(f"retry-after: {refuse.retry_after}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


class _Relay:
    def __init__(self, proxy: Proxy, client: socket.socket, upstream: tuple[str, int]) -> None:
        self.proxy, self.client, self.upstream = proxy, client, upstream

    def run(self, action: Action) -> None:
        # Either side may hang up at any moment (that is what is being tested): a connection
        # that breaks ends its relay, quietly.
        with suppress(OSError):
            self._run(action)

    def _run(self, action: Action) -> None:
        with self.client:
            head = _read_head(self.client)
            if not head:
                return
            self.proxy.requests.append(head.split(b"\r\n", 1)[0])
            self.proxy.heads.append(head.split(b"\r\n\r\n", 1)[0])
            if isinstance(action, Refuse):
                self.client.sendall(_refusal(action))
                return
            with socket.create_connection(self.upstream) as server:
                server.sendall(head)
                up = threading.Thread(target=self._client_to_server, args=(server,), daemon=True)
                up.start()
                self._server_to_client(server, action)
                self.client.shutdown(socket.SHUT_RDWR)

    def _client_to_server(self, server: socket.socket) -> None:
        try:
            while chunk := self.client.recv(65536):
                # Later requests on a kept-alive connection are seen too.
                if chunk[:1].isalpha() and b" HTTP/1.1\r\n" in chunk:
                    self.proxy.requests.append(chunk.split(b"\r\n", 1)[0])
                server.sendall(chunk)
        except OSError:
            pass
        finally:
            with suppress(OSError):
                server.shutdown(socket.SHUT_WR)

    def _server_to_client(self, server: socket.socket, action: Action) -> None:
        sent = 0
        try:
            while chunk := server.recv(65536):
                if isinstance(action, LoseAnswer):
                    return  # the gateway has answered: the answer is dropped
                if isinstance(action, CutAfter):
                    chunk = chunk[: max(0, action.n - sent)]
                    self.client.sendall(chunk)
                    sent += len(chunk)
                    if sent >= action.n:
                        return
                    continue
                self.client.sendall(chunk)
        except OSError:
            pass


@contextmanager
def proxy_to(base_url: str) -> Iterator[Proxy]:
    """A proxy on a loopback port of its own in front of ``base_url``."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    upstream = (host, int(port))
    listen_port = free_port()
    listener = socket.create_server(("127.0.0.1", listen_port))
    proxy = Proxy(f"http://127.0.0.1:{listen_port}")
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            proxy.connections += 1
            action = proxy.actions.popleft() if proxy.actions else PASS
            relay = _Relay(proxy, client, upstream)
            threading.Thread(target=relay.run, args=(action,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        stopping.set()
        # Shutting the socket down wakes the blocked accept(); closing alone may not.
        with suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(timeout=5)
