"""The poll cache never keeps a value read before a change, and fills under steady misses."""

from __future__ import annotations

from reelgate.api.poll_cache import ENTRY_OVERHEAD_BYTES, FreshCache, PollCache, TaskEntry
from reelgate.domain import changes


def test_a_value_read_before_a_change_is_not_kept() -> None:
    cache: FreshCache[str] = FreshCache(10)
    ticket = cache.ticket("task_1")
    cache.drop("task_1")  # the change arrives while the old row is being read
    cache.fill("task_1", "old state", ticket)
    assert cache.get("task_1") is None


def test_overlapping_readers_of_one_entry_still_fill_it() -> None:
    cache: FreshCache[str] = FreshCache(10)
    first = cache.ticket("task_1")
    second = cache.ticket("task_1")  # a second miss before the first read returns
    cache.fill("task_1", "state", first)
    cache.fill("task_1", "state", second)
    assert cache.get("task_1") == "state"


def test_a_reader_after_the_change_fills_the_fresh_value() -> None:
    cache: FreshCache[str] = FreshCache(10)
    stale = cache.ticket("task_1")
    cache.drop("task_1")
    fresh = cache.ticket("task_1")
    cache.fill("task_1", "stale", stale)
    cache.fill("task_1", "fresh", fresh)
    assert cache.get("task_1") == "fresh"


def test_a_zero_size_cache_keeps_nothing() -> None:
    cache: FreshCache[str] = FreshCache(0)
    cache.fill("task_1", "state", cache.ticket("task_1"))
    assert cache.get("task_1") is None


def test_the_task_cache_is_bounded_by_bytes_dropping_the_least_recently_used() -> None:
    cache = PollCache(key_size=10, task_bytes=3 * (1_000 + ENTRY_OVERHEAD_BYTES))
    for n in range(3):
        cache.tasks.fill(
            f"task_{n}", TaskEntry("acct", b"x" * 1_000), cache.tasks.ticket(f"task_{n}")
        )
    assert cache.tasks.get("task_0") is not None  # now the most recently used
    big = TaskEntry("acct", b"x" * 2_000)  # a long prompt's body takes the room of two
    cache.tasks.fill("task_big", big, cache.tasks.ticket("task_big"))
    kept = [ref for ref in ("task_0", "task_1", "task_2", "task_big") if cache.tasks.get(ref)]
    assert kept == ["task_0", "task_big"]


def test_changes_drop_their_entries_and_a_resync_drops_all() -> None:
    cache = PollCache(key_size=10, task_bytes=10_000)
    cache.tasks.fill("task_1", TaskEntry("acct", b"{}"), cache.tasks.ticket("task_1"))
    cache.tasks.fill("task_2", TaskEntry("acct", b"{}"), cache.tasks.ticket("task_2"))
    cache.apply((changes.TASK, "task_1"))
    assert cache.tasks.get("task_1") is None
    assert cache.tasks.get("task_2") is not None
    cache.apply(changes.RESYNC)
    assert cache.tasks.get("task_2") is None


def test_a_kept_eta_hint_counts_down_and_the_entry_goes_stale_when_it_runs_out() -> None:
    entry = TaskEntry("acct", b'{"eta_hint_seconds":', 1_000.0, 1_000.0, b"}")
    assert entry.served(970.0) == b'{"eta_hint_seconds":30}'
    assert entry.served(999.5) == b'{"eta_hint_seconds":1}'
    assert entry.served(1_000.0) is None
