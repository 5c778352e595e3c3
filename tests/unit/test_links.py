"""Signed video links: what they allow, and how long."""

from __future__ import annotations

import pytest

from reelgate.domain.links import expiry_s, signature, verify

KEY = b"k" * 32


@pytest.mark.parametrize("now", [0, 1, 3599, 3600, 1_760_000_123])
def test_a_link_made_now_lasts_at_least_its_lifetime_and_is_renewed_within_the_hour(
    now: int,
) -> None:
    expires, renew_at = expiry_s(now, ttl_s=86_400)
    assert now < renew_at <= now + 3600
    assert expires == renew_at + 86_400
    assert expires - now >= 86_400


def test_short_lifetimes_renew_sooner() -> None:
    expires, renew_at = expiry_s(1000, ttl_s=120)
    assert renew_at - 1000 <= 30
    assert expires - 1000 >= 120


def test_a_link_verifies_until_it_expires() -> None:
    sig = signature(KEY, "task_1", 0, 2000)
    assert verify(KEY, "task_1", 0, 2000, sig, now_s=1999)
    assert not verify(KEY, "task_1", 0, 2000, sig, now_s=2000)


@pytest.mark.parametrize(
    ("task_id", "index", "expires", "key"),
    [
        ("task_2", 0, 2000, KEY),
        ("task_1", 1, 2000, KEY),
        ("task_1", 0, 9999, KEY),
        ("task_1", 0, 2000, b"other key"),
    ],
)
def test_a_link_names_one_file_until_one_time_under_one_key(
    task_id: str, index: int, expires: int, key: bytes
) -> None:
    sig = signature(KEY, "task_1", 0, 2000)
    assert not verify(key, task_id, index, expires, sig, now_s=1000)
