"""Which addresses a client's webhook may reach, as a table."""

from __future__ import annotations

import ipaddress

import pytest

from reelgate.domain.addresses import why_forbidden

FORBIDDEN = {
    "127.0.0.1": "a loopback address",
    "127.8.9.10": "a loopback address",
    "::1": "a loopback address",
    "0.0.0.0": "an unspecified address",
    "::": "an unspecified address",
    "10.0.0.1": "a private address",
    "172.16.5.4": "a private address",
    "192.168.1.1": "a private address",
    "fd12:3456::1": "a private address",
    "169.254.169.254": "the cloud metadata address",
    "fd00:ec2::254": "the cloud metadata address",
    "169.254.1.1": "a link-local address",
    "fe80::1": "a link-local address",
    "224.0.0.1": "a multicast address",
    "100.64.0.1": "not a public address",
    "198.18.0.1": "a private address",
    "::ffff:10.0.0.1": "a private address",
    "::ffff:127.0.0.1": "a loopback address",
    "64:ff9b::a9fe:a9fe": "the cloud metadata address",
    "240.0.0.1": "a private address",
}
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize(("address", "reason"), FORBIDDEN.items())
def test_internal_addresses_are_forbidden_with_a_reason(address: str, reason: str) -> None:
    assert why_forbidden(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert why_forbidden(ipaddress.ip_address(address)) is None


def test_a_network_the_operator_allows_is_allowed_and_no_other() -> None:
    allowed = [ipaddress.ip_network("10.1.0.0/16")]
    assert why_forbidden(ipaddress.ip_address("10.1.2.3"), allowed) is None
    assert why_forbidden(ipaddress.ip_address("10.2.0.1"), allowed) == "a private address"
    assert why_forbidden(ipaddress.ip_address("127.0.0.1"), allowed) == "a loopback address"
