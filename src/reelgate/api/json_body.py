"""Request bodies as JSON, refused with a reason a client can act on: not JSON, nested too
deep, a number out of range, or a key given twice.

orjson decodes (it is the fastest, and strict about UTF-8, surrogates and NaN), but it keeps
the last of duplicate keys without a word: ``{"duration": 99, "duration": 4}`` would bill 4
seconds for a request whose first reader sees 99. Duplicates are found by counting quotes:
every string in valid JSON, key or value, adds two ``"`` bytes to the text, and an escaped
``\\"`` one more; a key dropped as a duplicate takes its quotes out of the decoded value. So
when the text has exactly two quotes per decoded key and string, there is no duplicate; only
otherwise (a duplicate, or an escaped quote, say in a prompt) is the body read again by the
standard library, whose ``object_pairs_hook`` sees every pair, to name the key. On a typical
300-byte create body the count costs well under a microsecond, where decoding with the
standard library every time would cost about three more.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Final

import orjson

from reelgate.errors import InvalidRequest

MAX_DEPTH: Final = 64
"""Arrays and objects nested deeper are refused; the create body needs two levels."""

_KEY_SHOWN: Final = 200


def decode(body: bytes) -> object:
    """The body's JSON value; :class:`InvalidRequest` saying what is wrong otherwise."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _not_json(exc) from None
    if body.count(b'"') != _quotes(value, 1):
        _refuse_duplicate_keys(body)
    return value


def _not_json(exc: orjson.JSONDecodeError) -> InvalidRequest:
    # orjson says what went wrong only in its message; these are its words in the pinned
    # version (a unit test holds them).
    if exc.msg.startswith("depth limit exceeded"):
        return _too_deep()
    if exc.msg.startswith("number is infinity"):
        return InvalidRequest(
            "body",
            f"the number at character {exc.pos} of the request body is out of range: "
            "JSON numbers must fit a 64-bit float (at most about 1.8e308 either way)",
            code="number_out_of_range",
        )
    return InvalidRequest(
        "body", "the request body must be a JSON object in UTF-8", code="invalid_json"
    )


def _too_deep() -> InvalidRequest:
    return InvalidRequest(
        "body",
        f"the request body nests arrays and objects deeper than {MAX_DEPTH} levels",
        code="json_too_deep",
    )


def _quotes(value: object, depth: int) -> int:
    """The ``"`` bytes ``value`` takes as JSON text without duplicate keys or escaped quotes."""
    items: Iterable[object]
    if isinstance(value, dict):
        count, items = 2 * len(value), value.values()
    elif isinstance(value, list):
        count, items = 0, value
    else:
        return 2 if isinstance(value, str) else 0
    if depth > MAX_DEPTH:
        raise _too_deep()
    for item in items:
        if isinstance(item, str):
            count += 2
        elif isinstance(item, dict | list):
            count += _quotes(item, depth + 1)
    return count


def _refuse_duplicate_keys(body: bytes) -> None:
    # Only reached for text orjson accepted, nested at most MAX_DEPTH deep. Numbers are kept as
    # text: they are not needed, and the standard library limits the digits of an integer.
    json.loads(body, object_pairs_hook=_unique, parse_int=str, parse_float=str)


def _unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            shown = key if len(key) <= _KEY_SHOWN else key[:_KEY_SHOWN] + "..."
            raise InvalidRequest(
                shown,
                f"the key '{shown}' appears more than once in a JSON object of the request "
                "body; give each key once",
                code="duplicate_key",
            )
        seen[key] = value
    return seen
