"""Where a client's webhook may go, decided on the addresses its host name resolves to.

At create, a callBackUrl whose host is, or resolves to, a forbidden address is refused with a
400. A name that does not resolve yet is accepted: it is resolved again at every delivery, and
the delivery connects to the very address that was checked, so a name that changes its answer
in between (DNS rebinding) cannot reach what the check refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from reelgate.domain.addresses import IpAddress, IpNetwork, why_forbidden
from reelgate.errors import InvalidRequest, ReelgateError

RESOLVE_TIMEOUT_S: Final = 5.0


class ForbiddenDestination(ReelgateError):
    code = "forbidden_destination"


class UnresolvedDestination(ReelgateError):
    code = "unresolved_destination"


@dataclass(frozen=True, slots=True)
class Destination:
    """A URL with its host replaced by a checked address, and what to tell the server."""

    url: str
    host_header: str
    tls_name: str | None
    """The name to present and verify in TLS, for https."""


async def _addresses(host: str, port: int) -> list[IpAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
        )
    except (OSError, TimeoutError) as exc:
        raise UnresolvedDestination(f"{host} could not be resolved") from exc
    # An IPv6 scope ("fe80::1%eth0") is not part of the address to judge.
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _forbidden(
    host: str, addresses: Sequence[IpAddress], allowed: Sequence[IpNetwork]
) -> str | None:
    for address in addresses:
        reason = why_forbidden(address, allowed)
        if reason is not None:
            shown = host if host == str(address) else f"{host} ({address})"
            return f"{shown} is {reason}"
    return None


async def check_callback_url(url: str, allowed: Sequence[IpNetwork]) -> None:
    """Refuse, as the client's error, a callBackUrl that would reach a forbidden address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        addresses = await _addresses(host, parts.port or _default_port(parts.scheme))
    except UnresolvedDestination:
        return  # judged again, on a fresh answer, before every delivery
    reason = _forbidden(host, addresses, allowed)
    if reason is not None:
        raise InvalidRequest(
            "callBackUrl",
            f"callBackUrl must reach a public address, but {reason}; use a publicly "
            "reachable http(s) URL (the operator can allow private networks)",
            code="forbidden_callback_url",
        )


async def pin(url: str, allowed: Sequence[IpNetwork]) -> Destination:
    """The URL aimed at a checked address of its host; raises ForbiddenDestination or
    UnresolvedDestination."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or _default_port(parts.scheme)
    addresses = await _addresses(host, port)
    reason = _forbidden(host, addresses, allowed)
    if reason is not None:
        raise ForbiddenDestination(reason)
    address = addresses[0]
    literal = f"[{address}]" if address.version == 6 else str(address)
    userinfo, _, host_header = parts.netloc.rpartition("@")
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    if userinfo:
        netloc = f"{userinfo}@{netloc}"  # sent as Basic authentication
    return Destination(
        url=urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
        host_header=host_header,
        tls_name=host if parts.scheme.lower() == "https" else None,
    )


def _default_port(scheme: str) -> int:
    return 443 if scheme.lower() == "https" else 80
