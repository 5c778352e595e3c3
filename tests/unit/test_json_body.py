"""Request bodies as JSON: what is accepted as it is, and what is refused with which reason."""

from __future__ import annotations

import json

import pytest

from reelgate.api.json_body import MAX_DEPTH, decode
from reelgate.errors import InvalidRequest


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'{"model": "seedance-2", "duration": 5}', {"model": "seedance-2", "duration": 5}),
        # Escaped quotes take the slower path and are not mistaken for duplicates.
        (b'{"prompt": "a \\"quoted\\" sign", "p\\"": 1}', {"prompt": 'a "quoted" sign', 'p"': 1}),
        (b'{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}', {"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}),
        (b'{"": 1, "x": ""}', {"": 1, "x": ""}),
        (b'["a", "b"]', ["a", "b"]),
        (_nested(MAX_DEPTH), json.loads(_nested(MAX_DEPTH))),
        (b'{"n": 123456789012345678901234567890}', {"n": 1.2345678901234568e29}),
    ],
)
def test_valid_json_is_decoded(raw: bytes, value: object) -> None:
    assert decode(raw) == value


@pytest.mark.parametrize(
    ("raw", "param", "code"),
    [
        (b'{"duration": 99, "duration": 4}', "duration", "duplicate_key"),
        (b'{"model": "a", "prompt": "x", "model": "b"}', "model", "duplicate_key"),
        (b'{"a": {"b": 1, "b": 2}}', "b", "duplicate_key"),
        (b'[{"a": "\\"", "a": 1}]', "a", "duplicate_key"),
        # The same key spelled with an escape is the same key.
        (b'{"a": 1, "\\u0061": 2}', "a", "duplicate_key"),
        (_nested(MAX_DEPTH + 1), "body", "json_too_deep"),
        (_nested(100_000), "body", "json_too_deep"),
        (b'{"duration": 1e309}', "body", "number_out_of_range"),
        (b'{"duration": -1e400}', "body", "number_out_of_range"),
        (b'{"duration": ' + b"9" * 400 + b"}", "body", "number_out_of_range"),
        (b"{", "body", "invalid_json"),
        (b'{"a": NaN}', "body", "invalid_json"),
        (b'{"a": "\xff"}', "body", "invalid_json"),
        (b'{"a": "\\ud800"}', "body", "invalid_json"),
    ],
)
def test_invalid_json_is_refused_naming_what_is_wrong(raw: bytes, param: str, code: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        decode(raw)
    assert (refused.value.param, refused.value.code) == (param, code), refused.value.message


def test_the_depth_limit_is_stated_in_the_refusal() -> None:
    with pytest.raises(InvalidRequest, match=f"deeper than {MAX_DEPTH} levels"):
        decode(_nested(100_000))
