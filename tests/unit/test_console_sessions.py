"""The console's session cookies and CSRF tokens: sealed, bound to one session, and refused
when altered, sealed under another key, or expired."""

from __future__ import annotations

import dataclasses
import time

from reelgate.api.console.sessions import Session, Sessions, Who

KEY = bytes(range(32))


def test_a_sealed_session_opens_as_it_was_and_holds_no_secret() -> None:
    sessions = Sessions(KEY)
    session = Session.new(Who.DEVELOPER, "ab" * 32)
    cookie = sessions.seal(session)
    assert sessions.open(cookie) == session
    assert "ab" * 8 not in cookie  # sealed, not merely signed: the hash is not readable


def test_an_altered_foreign_or_expired_cookie_is_no_session() -> None:
    sessions = Sessions(KEY)
    cookie = sessions.seal(Session.new(Who.OPERATOR, "cd" * 32))
    flipped = cookie[:20] + ("A" if cookie[20] != "A" else "B") + cookie[21:]
    assert sessions.open(flipped) is None
    assert Sessions(bytes(32)).open(cookie) is None
    assert sessions.open("") is None
    assert sessions.open("not base64 at all!") is None
    assert sessions.open("x" * 5000) is None
    expired = dataclasses.replace(Session.new(Who.OPERATOR, "cd"), expires_at=int(time.time()) - 1)
    assert sessions.open(sessions.seal(expired)) is None


def test_a_csrf_token_is_good_for_its_own_session_only() -> None:
    sessions = Sessions(KEY)
    mine, other = Session.new(), Session.new()
    token = sessions.csrf_token(mine)
    assert sessions.csrf_ok(mine, token)
    assert not sessions.csrf_ok(other, token)
    assert not sessions.csrf_ok(mine, None)
    assert not sessions.csrf_ok(mine, "")
    assert not sessions.csrf_ok(mine, token[:-1] + ("0" if token[-1] != "0" else "1"))
