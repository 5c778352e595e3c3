"""The media store: each successful task's video, copied from the upstream into reelgate's own
storage (a local directory), so that it outlives the upstream's expiring links.

A file is written under a temporary name, flushed to disk and renamed into place, so a name
that exists is always a whole file. Files live at ``<root>/<task id>/<index>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Final

import aiohttp

from reelgate.errors import ReelgateError
from reelgate.store.tasks import MediaFile

CHUNK: Final = 256 * 1024
GENERIC_TYPES: Final = frozenset({"", "application/octet-stream", "binary/octet-stream"})
DEFAULT_TYPE: Final = "video/mp4"


class MediaError(ReelgateError):
    """A result could not be copied; the copy is tried again later."""

    code = "media_unavailable"


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, task_id: str, index: int) -> Path:
        return self.root / task_id / str(index)

    async def copy(
        self, client: aiohttp.ClientSession, task_id: str, urls: tuple[str, ...], max_bytes: int
    ) -> tuple[MediaFile, ...]:
        """Copy every result URL of the task; raise MediaError when one cannot be had whole."""
        if not urls:
            raise MediaError("the upstream reported success without a result")
        return tuple(
            [
                await self._copy_one(client, url, self.path(task_id, i), max_bytes)
                for i, url in enumerate(urls)
            ]
        )

    def discard(self, task_id: str) -> None:
        """Forget a task's copies (a task that did not succeed after all)."""
        shutil.rmtree(self.root / task_id, ignore_errors=True)

    async def _copy_one(
        self, client: aiohttp.ClientSession, url: str, path: Path, max_bytes: int
    ) -> MediaFile:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        try:
            async with client.get(url) as response:
                if response.status != 200:
                    raise MediaError(f"the result answered HTTP {response.status}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise MediaError(f"the result is larger than {max_bytes} bytes")
                size = 0
                with partial.open("wb") as out:
                    async for chunk in response.content.iter_chunked(CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            raise MediaError(f"the result is larger than {max_bytes} bytes")
                        out.write(chunk)
                    # On disk before the task says success: a crash must not leave a success
                    # pointing at a file that never reached the disk.
                    await asyncio.to_thread(_flush, out.fileno())
                if size == 0:
                    raise MediaError("the result is empty")
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            partial.replace(path)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MediaError(f"the result could not be downloaded: {type(exc).__name__}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        return MediaFile(content_type=DEFAULT_TYPE if kind in GENERIC_TYPES else kind, size=size)


def _flush(fd: int) -> None:
    os.fsync(fd)
