"""Identifiers reelgate hands out: a prefix and a ULID (a timestamp and 80 random bits)."""

from __future__ import annotations

import os
import re
from typing import Final

from ulid import ULID, ULIDGenerator

_ULID: Final = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
_RANDOM_BYTES_PER_ID: Final = 10
_RANDOM_BATCH: Final = 4096


class _RandomBytes:
    """The operating system's random bytes, drawn a few kilobytes at a time.

    ``os.urandom`` releases the GIL around its system call; on SQLite, where the writer thread
    waits for the GIL, getting it back cost a create about 0.2 ms under load (one draw per id).
    One draw per few hundred ids keeps the randomness and drops that wait."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def __call__(self, _timestamp_ms: int) -> bytes:
        if len(self._buffer) < _RANDOM_BYTES_PER_ID:
            self._buffer = bytearray(os.urandom(_RANDOM_BATCH))
        drawn = bytes(self._buffer[-_RANDOM_BYTES_PER_ID:])
        del self._buffer[-_RANDOM_BYTES_PER_ID:]
        return drawn


def _fresh_generator() -> ULIDGenerator:
    """Ids made within one millisecond in this process increase (the library's strict policy)."""
    return ULIDGenerator(randomness=_RandomBytes())


_generator = _fresh_generator()


def _after_fork() -> None:
    # A forked child must hand out neither its parent's unused bytes nor the next id of the
    # parent's millisecond.
    global _generator
    _generator = _fresh_generator()


os.register_at_fork(after_in_child=_after_fork)


def new_id(prefix: str) -> str:
    """A sortable, unguessable id such as ``task_01JD7Z...``."""
    return f"{prefix}_{_generator.generate()}"


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
