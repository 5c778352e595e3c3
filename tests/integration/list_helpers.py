"""What the list and usage tests share: tasks stored at chosen times, settled as chosen, and
CSV read back."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from typing import Any, Final

import httpx
from ulid import ULID

from reelgate.domain.lifecycle import Fail, Succeed
from reelgate.domain.pricing import Quote
from reelgate.domain.task import NewTask, TaskState
from reelgate.store.tasks import TaskStore
from tests.conftest import open_database

QUOTES: Final = {
    # model: (tier, per second, seconds, cost): 5 s at 720p, no video input, margin 1.
    "seedance-2-fast": Quote("720p_no_video", 165_000, 5, 1_000_000, 825_000),
    "seedance-2": Quote("720p_no_video", 205_000, 8, 1_000_000, 1_640_000),
}


async def store_tasks(
    database_url: str,
    key: dict[str, Any],
    count: int,
    *,
    created_s: int | None = None,
    model: str = "seedance-2-fast",
    end: TaskState | None = None,
    channel: str = "kie",
) -> list[str]:
    """``count`` tasks of the key's account, made ``created_s`` (default now) as the gateway
    makes them (the id carries the time), each reserved, and ended as ``end`` says; their ids,
    oldest first."""
    db = open_database(database_url)
    store, ids = TaskStore(db), []
    try:
        for _ in range(count):
            ms = int(time.time() * 1000) if created_s is None else created_s * 1000
            task_id = f"task_{ULID.from_timestamp(ms / 1000)}"
            await store.create(
                NewTask(
                    id=task_id,
                    account_id=key["account_id"],
                    key_id=key["id"],
                    model=model,
                    request={"prompt": "a boat", "resolution": "720p", "aspect_ratio": "16:9"},
                    channel=channel,
                    quote=QUOTES[model],
                    created_at_ms=ms,
                    first_poll_at_ms=ms + 3_600_000,
                    deadline_at_ms=ms + 3_600_000,
                )
            )
            if end is TaskState.SUCCESS:
                assert await store.apply(task_id, Succeed({"created": ms // 1000}, ()))
            elif end is TaskState.FAIL:
                assert await store.apply(task_id, Fail({"code": "x", "message": "no"}))
            ids.append(task_id)
    finally:
        await db.dispose()
    return sorted(ids)


def csv_rows(answer: httpx.Response) -> tuple[list[str], list[dict[str, str]]]:
    """A CSV answer's header and rows, read with the csv module."""
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8", answer.headers
    reader = csv.reader(io.StringIO(answer.text, newline=""))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


async def all_pages(
    client: httpx.AsyncClient, path: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every item of a list, page by page (``path`` may carry a query; ``params`` add to it)."""
    path, _, query = path.partition("?")
    fixed = httpx.QueryParams(query).merge(params or {})
    items: list[dict[str, Any]] = []
    after = None
    while True:
        page = await client.get(path, params=fixed.set("after", after) if after else fixed)
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["data"]
        if not body["has_more"]:
            assert body["next_after"] is None
            return items
        after = body["next_after"]
        last = body["data"][-1]
        assert after == last["task_id" if last["object"] == "task" else "id"]


def ids(items: Sequence[dict[str, Any]]) -> list[str]:
    return [item["task_id"] for item in items]
