"""Stored videos: which file a request may read, by the owner's key or by a signed link."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from reelgate.domain import links
from reelgate.domain.ids import is_id
from reelgate.domain.numbers import plain_int
from reelgate.domain.task import MediaFile, TaskRecord
from reelgate.errors import Forbidden, NotFound
from reelgate.store.media import MediaFiles
from reelgate.store.tasks import TaskStore


@dataclass(frozen=True, slots=True)
class StoredVideo:
    task_id: str
    index: int
    path: Path
    file: MediaFile


class Videos:
    def __init__(self, store: TaskStore, files: MediaFiles, link_key: bytes) -> None:
        self.store = store
        self.files = files
        self.link_key = link_key

    async def for_owner(self, account_id: str, task_id: str, index: int) -> StoredVideo:
        record = await self.store.get(task_id) if is_id("task", task_id) else None
        if record is None or record.account_id != account_id:
            raise NotFound(f"no task {task_id[:100]!r}")
        return self._stored(record, index)

    async def by_link(self, task_id: str, index: int, expires: str, signature: str) -> StoredVideo:
        """The video a signed link names, while the link is good."""
        until = plain_int(expires)
        if until is None or not links.verify(
            self.link_key, task_id, index, until, signature, int(time.time())
        ):
            raise Forbidden(
                "this video link is not valid or has expired: read the task again for a fresh "
                "link, or send the API key that owns the task"
            )
        record = await self.store.get(task_id) if is_id("task", task_id) else None
        if record is None:
            raise NotFound(f"no task {task_id[:100]!r}")
        return self._stored(record, index)

    def _stored(self, record: TaskRecord, index: int) -> StoredVideo:
        if index >= len(record.media):
            raise NotFound(
                f"task {record.id} has no video {index}"
                + ("" if record.media else f": it is {record.state.value}, not success")
            )
        path = self.files.path(record.id, index)
        if not path.is_file():
            raise NotFound(f"the video of task {record.id} is no longer stored")
        return StoredVideo(record.id, index, path, record.media[index])
