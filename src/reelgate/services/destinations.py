"""Where the gateway may connect on someone else's word, decided on the addresses a host name
resolves to: a client's callBackUrl, and the result URLs an upstream reports.

At create, a callBackUrl whose host is, or resolves to, a forbidden address is refused with a
400. A name that does not resolve yet is accepted: it is resolved again at every delivery, and
the delivery connects to the very address that was checked, so a name that changes its answer
in between (DNS rebinding) cannot reach what the check refused. Result downloads are pinned the
same way. The operator's allowed networks open both; an origin the gateway itself runs (the
embedded sandbox) is trusted as it is.
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
from reelgate.errors import DestinationRefused, DestinationUnresolved, InvalidRequest

RESOLVE_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Reach:
    """What the gateway may connect to beyond public addresses."""

    allowed: tuple[IpNetwork, ...] = ()
    """Networks the operator allowed (``REELGATE_ALLOWED_NETWORKS``)."""
    trusted_origins: frozenset[str] = frozenset()
    """``scheme://host:port`` origins the gateway runs itself, reached without a check."""


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
        raise DestinationUnresolved(f"{host} could not be resolved") from exc
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
    except DestinationUnresolved:
        return  # judged again, on a fresh answer, before every delivery
    reason = _forbidden(host, addresses, allowed)
    if reason is not None:
        raise InvalidRequest(
            "callBackUrl",
            f"callBackUrl must reach a public address, but {reason}; use a publicly "
            "reachable http(s) URL (the operator can allow private networks)",
            code="forbidden_callback_url",
        )


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL, the port always written."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme.lower()}://{host}:{parts.port or _default_port(parts.scheme)}"


async def pin(url: str, reach: Reach) -> Destination:
    """The URL aimed at a checked address of its host; raises DestinationRefused (or
    DestinationUnresolved)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise DestinationRefused("only http(s) URLs with a host can be reached")
    host = parts.hostname
    port = parts.port or _default_port(parts.scheme)
    addresses = await _addresses(host, port)
    if origin(url) not in reach.trusted_origins:
        reason = _forbidden(host, addresses, reach.allowed)
        if reason is not None:
            raise DestinationRefused(reason)
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
