"""Identifiers reelgate hands out: a prefix and a ULID (a timestamp and 80 random bits)."""

from __future__ import annotations

import re
from typing import Final

from ulid import ULID

_ULID: Final = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def new_id(prefix: str) -> str:
    """A sortable, unguessable id such as ``task_01JD7Z...``."""
    return f"{prefix}_{ULID()}"


def is_id(prefix: str, value: str) -> bool:
    """Whether ``value`` could be an id reelgate made; anything else cannot name a row, so it is
    answered without asking the database."""
    head, sep, tail = value.partition("_")
    return head == prefix and sep == "_" and _ULID.fullmatch(tail) is not None


MAX_ID_MS: Final = 2**48 - 1
"""The last millisecond a ULID can carry (in the year 10889)."""


def first_id_at(prefix: str, ms: int) -> str:
    """The smallest id that could be made at Unix millisecond ``ms`` (clamped to what a ULID
    carries): every id made at ``ms`` or later sorts at or after it, every earlier one before."""
    ms = min(max(ms, 0), MAX_ID_MS)
    return f"{prefix}_{ULID.from_bytes(ms.to_bytes(6, 'big') + bytes(10))}"


def made_at_ms(value: str) -> int | None:
    """The Unix millisecond an id of :func:`new_id` was made at; None for a value that is not
    such an id."""
    _, sep, tail = value.partition("_")
    if not (sep and _ULID.fullmatch(tail)):
        return None
    return ULID.from_str(tail).milliseconds
