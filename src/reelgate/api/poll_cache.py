"""What a task poll needs, kept in memory: API keys by hash and rendered task bodies by id.

Entries are dropped when the change feed says their row changed, in this process or another.
A reader that loads a row from the database takes a ticket first and stores its result only
if no change to that entry arrived in the meantime; otherwise an old row read just before a
change could overwrite the fresh state and stay cached. Concurrent readers of one entry share
its ticket: if each took a new one, a steady stream of misses would keep invalidating the one
before and the entry would never be stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from cachetools import LRUCache

from reelgate.domain import changes
from reelgate.domain.accounts import ApiKey

V = TypeVar("V")


class Ticket:
    __slots__ = ()


class FreshCache(Generic[V]):
    def __init__(self, size: int, sizeof: Callable[[V], int] | None = None) -> None:
        """At most ``size`` entries, or with ``sizeof`` at most ``size`` of what it counts (the
        least recently used go first); 0 keeps nothing."""
        self._entries: LRUCache[str, V] = LRUCache(maxsize=max(size, 1), getsizeof=sizeof)
        self._tickets: dict[str, Ticket] = {}
        self.enabled = size > 0

    def get(self, ref: str) -> V | None:
        return self._entries.get(ref)

    def ticket(self, ref: str) -> Ticket:
        """Taken before reading ``ref`` from the database."""
        ticket = self._tickets.get(ref)
        if ticket is None:
            ticket = self._tickets[ref] = Ticket()
        return ticket

    def fill(self, ref: str, value: V, ticket: Ticket) -> None:
        """Keep what was read, unless ``ref`` changed since its ticket was taken."""
        if self._tickets.get(ref) is ticket:
            del self._tickets[ref]
            if self.enabled:
                self._entries[ref] = value

    def drop(self, ref: str) -> None:
        self._entries.pop(ref, None)
        self._tickets.pop(ref, None)

    def clear(self) -> None:
        self._entries.clear()
        self._tickets.clear()


@dataclass(frozen=True, slots=True)
class TaskEntry:
    """A rendered task resource as kept for its owner."""

    account_id: str
    body: bytes
    """The whole resource; or, with ``ends_at``, the part before the ETA hint's value."""
    stale_at: float | None = None
    """When its links are to be signed anew or its ETA hint runs out: read again from then."""
    ends_at: float | None = None
    """When the ETA hint it shows reaches 0; the seconds left are written in when served."""
    tail: bytes = b""
    """With ``ends_at``: the part after the ETA hint's value."""

    def served(self, now: float) -> bytes | None:
        """The resource as of ``now``; None once it is stale."""
        if self.stale_at is not None and now >= self.stale_at:
            return None
        if self.ends_at is None:
            return self.body
        return b"%s%d%s" % (self.body, math.ceil(self.ends_at - now), self.tail)


ENTRY_OVERHEAD_BYTES: Final = 400
"""What an entry costs beside its bodies: the key, the entry object, the cache's own node."""


def _entry_bytes(entry: TaskEntry) -> int:
    return len(entry.body) + len(entry.tail) + ENTRY_OVERHEAD_BYTES


class PollCache:
    def __init__(self, key_size: int, task_bytes: int) -> None:
        self.keys: FreshCache[ApiKey] = FreshCache(key_size)
        # Bounded by bytes, not entries: a task's body grows with its prompt (up to 20,000
        # characters), so a count would bound nothing a process can plan its memory by.
        self.tasks: FreshCache[TaskEntry] = FreshCache(task_bytes, _entry_bytes)
        """Task id -> its entry."""

    def apply(self, change: changes.Change) -> None:
        topic, ref = change
        if topic == changes.TASK:
            self.tasks.drop(ref)
        elif topic == changes.KEY:
            self.keys.drop(ref)
        elif change == changes.RESYNC:
            self.keys.clear()
            self.tasks.clear()
