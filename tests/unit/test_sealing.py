"""The secret key's format, the keys derived from it, and sealed values that open only with the
right key at the right place."""

from __future__ import annotations

import pytest

from reelgate.domain.secret_key import KeyUse, SecretKey, new_secret_key
from reelgate.errors import SecretKeyError
from reelgate.store.sealing import Sealer

KEY = SecretKey.parse("ab" * 32)
SECRET = "whsec_" + "x" * 44


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("ab" * 32, True),
        ("AB" * 32, True),
        ("ab" * 32 + "\n", True),  # as a file holds it
        ("  " + "ab" * 32 + "  ", True),
        ("ab" * 31, False),
        ("ab" * 33, False),
        ("zz" * 32, False),
        ("", False),
        ("a secret of the right length? " * 2 + "abcd", False),
    ],
)
def test_a_secret_key_is_64_hex_digits(text: str, valid: bool) -> None:
    if valid:
        assert SecretKey.parse(text).material == bytes.fromhex(text.strip())
    else:
        with pytest.raises(ValueError, match="64 hexadecimal digits") as refused:
            SecretKey.parse(text)
        assert text.strip() not in str(refused.value) or not text.strip()


def test_new_keys_parse_and_differ() -> None:
    assert SecretKey.parse(new_secret_key()) != SecretKey.parse(new_secret_key())


def test_every_use_has_its_own_key_and_the_key_never_shows() -> None:
    derived = {KEY.derive(use) for use in KeyUse}
    assert len(derived) == len(KeyUse)
    assert KEY.material not in derived
    assert all(len(key) == 32 for key in derived)
    assert "ab" * 32 not in repr(KEY)
    assert KEY.fingerprint() == KEY.derive(KeyUse.CHECK).hex()


def test_a_sealed_value_opens_to_the_secret_and_never_shows_it() -> None:
    sealed = Sealer(KEY).seal(SECRET, "accounts/acct_1")
    assert sealed.startswith("enc1:")
    assert "x" * 10 not in sealed
    assert Sealer(KEY).open(sealed, "accounts/acct_1") == SECRET
    assert Sealer(KEY).seal(SECRET, "accounts/acct_1") != sealed, "a new nonce each time"


def _tampered(sealed: str) -> str:
    body = sealed.removeprefix("enc1:")
    flipped = "A" if body[20] != "A" else "B"
    return "enc1:" + body[:20] + flipped + body[21:]


@pytest.mark.parametrize(
    ("key", "stored", "place"),
    [
        (SecretKey.parse("cd" * 32), None, "accounts/acct_1"),
        (KEY, None, "accounts/acct_2"),
        (KEY, "tampered", "accounts/acct_1"),
        (KEY, "enc1:not base64!", "accounts/acct_1"),
        (KEY, "enc1:", "accounts/acct_1"),
    ],
    ids=["another-key", "another-place", "tampered", "garbage", "empty"],
)
def test_a_sealed_value_does_not_open_with_another_key_place_or_a_change(
    key: SecretKey, stored: str | None, place: str
) -> None:
    sealed = Sealer(KEY).seal(SECRET, "accounts/acct_1")
    given = _tampered(sealed) if stored == "tampered" else (stored or sealed)
    with pytest.raises(SecretKeyError, match="does not open"):
        Sealer(key).open(given, place)


def test_plaintext_is_not_taken_for_a_sealed_value_nor_sealed_twice() -> None:
    with pytest.raises(SecretKeyError, match="kept in plaintext"):
        Sealer(KEY).open(SECRET, "accounts/acct_1")
    with pytest.raises(ValueError, match="already sealed"):
        Sealer(KEY).seal(Sealer(KEY).seal(SECRET, "meta/x"), "meta/x")
