"""Request ids: the one a client sends in ``X-Request-ID`` is kept when it is plain, so that its
own logs and the gateway's can be joined; otherwise the gateway makes one."""

from __future__ import annotations

import re
from typing import Final

REQUEST_ID_LENGTH: Final = 128
_PLAIN: Final = re.compile(rb"[\x21-\x7e]{1,%d}" % REQUEST_ID_LENGTH)
"""Visible ASCII, no spaces, and short: it goes into logs, a response header and a column."""


def accepted(sent: bytes) -> str | None:
    """The client's request id as kept, or None when it is not one to keep."""
    return sent.decode("ascii") if _PLAIN.fullmatch(sent) else None
