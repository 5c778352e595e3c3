"""Where stored videos live: ``<root>/<task id>/<index>``, in a local directory that the API and
every engine share.

A file is written under a temporary name, flushed to disk and renamed into place, so a name
that exists is always a whole file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO


class MediaFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, task_id: str, index: int) -> Path:
        return self.root / task_id / str(index)

    @contextlib.asynccontextmanager
    async def writing(self, task_id: str, index: int) -> AsyncIterator[BinaryIO]:
        """A file to write one result into; it takes its name only when the block ends without
        an error, and is removed otherwise."""
        path = self.path(task_id, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        try:
            with partial.open("wb") as out:
                yield out
                out.flush()
                # On disk before the task says success: a crash must not leave a success
                # pointing at a file that never reached the disk.
                await asyncio.to_thread(os.fsync, out.fileno())
            partial.replace(path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()

    def discard(self, task_id: str) -> None:
        """Forget a task's copies (a task that did not succeed after all)."""
        shutil.rmtree(self.root / task_id, ignore_errors=True)
