"""Copying each successful task's video from the upstream into the media store, so that it
outlives the upstream's expiring links.

The URLs come from the upstream's own status answer, yet they are fetched as carefully as a
client's webhook: every request (and every redirect) goes to an address checked just before
it, so a result URL cannot make the gateway read its own network.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urljoin

import aiohttp

from reelgate.domain.numbers import plain_int
from reelgate.domain.task import MediaFile
from reelgate.errors import DestinationRefused, MediaUnavailable
from reelgate.services.destinations import Reach, pin
from reelgate.store.media import MediaFiles

CHUNK: Final = 256 * 1024
GENERIC_TYPES: Final = frozenset({"", "application/octet-stream", "binary/octet-stream"})
DEFAULT_TYPE: Final = "video/mp4"
MAX_REDIRECTS: Final = 3


class Downloader:
    def __init__(
        self, client: aiohttp.ClientSession, files: MediaFiles, reach: Reach, max_bytes: int
    ) -> None:
        self.client = client
        self.files = files
        self.reach = reach
        self.max_bytes = max_bytes

    async def copy(self, task_id: str, urls: tuple[str, ...]) -> tuple[MediaFile, ...]:
        """Copy every result URL of the task; raise MediaUnavailable when one cannot be had
        whole."""
        if not urls:
            raise MediaUnavailable("the upstream reported success without a result")
        return tuple([await self._copy_one(task_id, i, url) for i, url in enumerate(urls)])

    async def _copy_one(self, task_id: str, index: int, url: str) -> MediaFile:
        try:
            async with self.files.writing(task_id, index) as out:
                response = await self._get(url)
                async with response:
                    declared = plain_int(response.headers.get("content-length", ""))
                    if declared is not None and declared > self.max_bytes:
                        raise MediaUnavailable(f"the result is larger than {self.max_bytes} bytes")
                    size = 0
                    async for chunk in response.content.iter_chunked(CHUNK):
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise MediaUnavailable(
                                f"the result is larger than {self.max_bytes} bytes"
                            )
                        out.write(chunk)
                    if size == 0:
                        raise MediaUnavailable("the result is empty")
                    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        except DestinationRefused as exc:
            raise MediaUnavailable(f"the result's address is not allowed: {exc.message}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MediaUnavailable(
                f"the result could not be downloaded: {type(exc).__name__}"
            ) from exc
        return MediaFile(content_type=DEFAULT_TYPE if kind in GENERIC_TYPES else kind, size=size)

    async def _get(self, url: str) -> aiohttp.ClientResponse:
        """The answer to a GET of ``url``, following a few redirects, each one to an address
        checked before connecting; only a 200 is returned."""
        for _ in range(MAX_REDIRECTS + 1):
            target = await pin(url, self.reach)
            response = await self.client.get(
                target.url,
                headers={"host": target.host_header},
                allow_redirects=False,
                server_hostname=target.tls_name,
            )
            if response.status in (301, 302, 303, 307, 308) and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                response.release()
                continue
            if response.status != 200:
                response.release()
                raise MediaUnavailable(f"the result answered HTTP {response.status}")
            return response
        raise MediaUnavailable(f"the result redirected more than {MAX_REDIRECTS} times")
