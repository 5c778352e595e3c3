"""The URL and prompt patterns the OpenAPI document states are the rules the server applies,
and every URL they allow is one a URL parser takes, naming its host."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import AnyHttpUrl, TypeAdapter

from reelgate.domain.request import (
    HTTP_URL_PATTERN,
    MAX_URL_CHARS,
    MEDIA_REF_PATTERN,
    PROMPT_PATTERN,
    parse_request,
)
from reelgate.errors import InvalidRequest

_URL_PARSER = TypeAdapter(AnyHttpUrl)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.from_regex(re.compile(HTTP_URL_PATTERN), fullmatch=True))
def test_every_url_the_pattern_allows_parses_with_its_host(url: str) -> None:
    if len(url) > MAX_URL_CHARS:
        return
    _URL_PARSER.validate_python(url)
    assert urlsplit(url).hostname


def _accepted(**fields: object) -> bool:
    try:
        parse_request({"model": "seedance-2", "prompt": "A red fox", **fields})
    except InvalidRequest:
        return False
    return True


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("https://example.com/a.png", True),
        ("HTTP://Example.COM:8080/a b", False),
        ("http://user:pw@cdn.example.com/v.mp4?sig=a%2Fb#t=1", True),
        ("https://203.0.113.7/a.png", True),
        ("https://example.com/caf\u00e9.png", True),
        ("https://a_b.example.com/x", True),
        ("asset://asset-20260404242101-76djj", True),
        ("https:///path", False),
        ("ftp://example.com/a.png", False),
        ("https://1.2.3.999/a.png", False),
        ("https://example.123/a.png", False),
        ("https://example.com:65536/", False),
        ("https://xn--a.com/", False),
        ("https://[::1]/a.png", True),
        ("http://[::ffff:10.0.0.1]:8080/hook", True),
        ("https://[2001:db8::1]/a.png", True),
        ("https://[:::]/a.png", False),
        ("https://[fe80::1%25eth0]/a.png", False),
        ("https://example.com/a\u00a0b", False),
        ("https://example.com/\nx", False),
        ("asset://", False),
        ("asset://a/b", False),
    ],
)
def test_the_media_pattern_and_the_server_agree(url: str, valid: bool) -> None:
    assert (re.fullmatch(MEDIA_REF_PATTERN, url) is not None) is valid
    assert _accepted(first_frame_url=url) is valid


@pytest.mark.parametrize(
    ("prompt", "valid"),
    [
        ("A red fox", True),
        ("  A red fox\n", True),
        ("\u3000\u2028fox", True),
        ("   ", False),
        ("\t\n\x1c\x85\u00a0\u2000\u3000", False),
        ("A red\x00fox", False),
    ],
)
def test_the_prompt_pattern_and_the_server_agree(prompt: str, valid: bool) -> None:
    assert (re.fullmatch(PROMPT_PATTERN, prompt) is not None) is valid
    assert _accepted(prompt=prompt) is valid
