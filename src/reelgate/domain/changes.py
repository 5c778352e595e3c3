"""Changes as the change feed announces them: a topic and the reference of what changed.

Every process keeps caches (API keys, rendered tasks) and open event streams fresh from these.
"""

from __future__ import annotations

from typing import Final

Change = tuple[str, str]

TASK: Final = "task"
"""A task changed; the reference is its id."""
KEY: Final = "key"
"""An API key changed (it was revoked); the reference is its hash."""
DUE: Final = "due"
"""A task became due now (its upstream called about it); the reference is its id. Engines in
other processes look at once instead of at their next turn."""
RESYNC: Final[Change] = ("*", "*")
"""Changes may have been missed: every cached entry must be dropped."""
