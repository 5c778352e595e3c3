"""The ids reelgate hands out: well formed, increasing within a process, never repeated across
a fork, and read back to the millisecond they were made at."""

from __future__ import annotations

import os
import time

from reelgate.domain.ids import first_id_at, is_id, made_at_ms, new_id


def test_ids_are_well_formed_distinct_and_increasing() -> None:
    # Thousands of ids share milliseconds and outlast one draw of random bytes (409 ids).
    ids = [new_id("task") for _ in range(5000)]
    assert all(is_id("task", value) for value in ids)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


def test_an_id_reads_back_the_millisecond_it_was_made_at() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id("task")
    after = time.time_ns() // 1_000_000
    at = made_at_ms(made)
    assert at is not None
    assert before <= at <= after
    assert first_id_at("task", before) <= made
    assert made_at_ms("task_not-an-id") is None


def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    new_id("task")  # the parent has drawn random bytes and made an id this millisecond
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's lines run in the other process
        os.write(write_end, "\n".join(new_id("task") for _ in range(500)).encode())
        os._exit(0)
    os.close(write_end)
    parents = {new_id("task") for _ in range(500)}
    os.waitpid(child, 0)
    with os.fdopen(read_end, "rb") as pipe:
        childs = set(pipe.read().decode().split("\n"))
    assert len(childs) == 500
    # Not even the random parts meet: the child drew bytes of its own.
    assert not {random_part(value) for value in parents} & {random_part(value) for value in childs}


def random_part(value: str) -> str:
    """The 80 random bits of an id (after its prefix and 48-bit millisecond)."""
    return value.partition("_")[2][10:]
