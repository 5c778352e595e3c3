"""Which network addresses a client's callBackUrl may reach.

A webhook is a request the gateway makes on a client's behalf, so a URL pointing inside the
operator's network (loopback, private ranges, link-local, the cloud metadata service) would let
any client probe it. Such addresses are refused unless the operator allows their network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES: Final = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


def why_forbidden(address: IpAddress, allowed: Iterable[IpNetwork] = ()) -> str | None:
    """Why a webhook may not go to ``address`` ("a loopback address", ...), or None if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:10.0.0.1 and 64:ff9b::10.0.0.1 reach the IPv4 address inside them.
        embedded = address.ipv4_mapped or _nat64(address)
        if embedded is not None:
            address = embedded
    if any(address in network for network in allowed):
        return None
    if address in METADATA_ADDRESSES:
        return "the cloud metadata address"
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for failed, reason in checks if failed), None)


_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")


def _nat64(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
