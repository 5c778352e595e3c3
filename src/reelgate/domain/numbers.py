"""Reading numbers that arrive as text (headers, query strings) without trusting them."""

from __future__ import annotations

import re
from typing import Final

_DIGITS: Final = re.compile(r"[0-9]{1,18}")


def plain_int(text: str) -> int | None:
    """A non-negative integer written in at most 18 ASCII digits, or None.

    ``str.isdigit`` also accepts digits such as "²" that ``int`` then refuses, and an unbounded
    string of digits costs time to convert: both are refused here."""
    return int(text) if _DIGITS.fullmatch(text) else None
