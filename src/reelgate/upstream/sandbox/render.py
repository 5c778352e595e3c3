"""Real H.264 videos from ffmpeg, cached on disk by what they show.

A load test creates thousands of tasks from a handful of distinct requests, so each distinct
(size, duration, audio, prompt) is rendered once and every later task points at the same file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import shutil
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

SHORT_SIDE: Final = {"480p": 480, "720p": 720, "1080p": 1080}
RATIOS: Final = {
    "1:1": (1, 1),
    "4:3": (4, 3),
    "3:4": (3, 4),
    "16:9": (16, 9),
    "9:16": (9, 16),
    "21:9": (21, 9),
}
ADAPTIVE_PICK: Final = "16:9"
"""What ``adaptive`` becomes: the sandbox has no input image to adapt to."""
FONT: Final = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
MAX_LINES: Final = 8
FILE_NAME: Final = re.compile(r"[0-9a-f]{32}\.mp4")
"""The only names served: finished renders, never partial files or anything else on disk."""
_RECIPE: Final = "v2"
"""Part of every file name: changing how videos look must not serve stale cached files."""

log = logging.getLogger(__name__)


class RenderError(Exception):
    """A video the sandbox could not render (the simulator's own, not one of the gateway's)."""


def frame_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """Width and height: the resolution names the short side; both even, as yuv420p needs."""
    short = SHORT_SIDE[resolution]
    w, h = RATIOS.get(aspect_ratio, RATIOS[ADAPTIVE_PICK])
    long = round(short * max(w, h) / min(w, h) / 2) * 2
    return (long, short) if w >= h else (short, long)


def caption(prompt: str, width: int, font_size: int) -> str:
    """The prompt wrapped to the frame; cut with an ellipsis when it would not fit."""
    # DejaVu Sans averages about 0.6 em a glyph; keep a margin on both sides.
    chars = max(8, int(width * 0.85 / (font_size * 0.6)))
    lines = textwrap.wrap(prompt, width=chars) or [" "]
    if len(lines) > MAX_LINES:
        lines = lines[:MAX_LINES]
        lines[-1] = lines[-1][: chars - 1].rstrip() + "…"
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Clip:
    resolution: str
    aspect_ratio: str
    duration: int
    audio: bool
    prompt: str

    def file_name(self, fps: int) -> str:
        parts = (_RECIPE, fps, self.resolution, self.aspect_ratio, self.duration, self.audio)
        key = "|".join(map(str, (*parts, self.prompt)))
        return hashlib.sha256(key.encode()).hexdigest()[:32] + ".mp4"


class Render:
    """One clip's file, being made or made; shared by every task that shows the same clip."""

    def __init__(self, path: Path, ready_ms: int | None = None) -> None:
        self.path = path
        self.ready_ms = ready_ms
        self.failed_ms: int | None = None
        self.error: str | None = None
        self.job: asyncio.Task[None] | None = None

    async def wait(self) -> None:
        """Until the file exists or the render failed."""
        if self.job is not None:
            # Shielded: a waiter that gives up must not cancel the render others wait for.
            await asyncio.shield(self.job)


class Renderer:
    def __init__(self, media_dir: Path | None, fps: int, concurrency: int) -> None:
        self._media_dir = media_dir
        self._own_dir: Path | None = None
        self.fps = fps
        self._slots = asyncio.Semaphore(concurrency)
        self._renders: dict[str, Render] = {}
        self.runs = 0
        """ffmpeg processes started: what the cache saves is visible in the sandbox's stats."""

    @property
    def media_dir(self) -> Path:
        """Made on first use, so that an app that never renders leaves nothing behind."""
        if self._media_dir is None:
            self._own_dir = self._media_dir = Path(tempfile.mkdtemp(prefix="reelgate-sandbox-"))
        return self._media_dir

    def start(self, clip: Clip) -> Render:
        """The clip's render: the cached file, the run already making it, or a new run."""
        name = clip.file_name(self.fps)
        render = self._renders.get(name)
        if render is not None and render.error is None:
            return render
        path = self.media_dir / name
        with contextlib.suppress(FileNotFoundError):
            # Rendered by an earlier run into the same media directory.
            render = Render(path, ready_ms=int(path.stat().st_mtime * 1000))
        if render is None or render.error is not None:
            render = Render(path)
            render.job = asyncio.create_task(self._run(clip, render), name=f"render {name}")
        self._renders[name] = render
        return render

    def file(self, name: str) -> Path | None:
        """A finished video by its name, or None."""
        if not FILE_NAME.fullmatch(name):
            return None
        path = self.media_dir / name
        return path if path.is_file() else None

    async def aclose(self) -> None:
        jobs = [r.job for r in self._renders.values() if r.job is not None and not r.job.done()]
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    async def _run(self, clip: Clip, render: Render) -> None:
        try:
            async with self._slots:
                self.runs += 1
                await self._ffmpeg(clip, render.path)
        except (RenderError, OSError) as exc:
            # The tasks showing this clip fail, as a real generation may; a later task retries.
            log.error("sandbox render failed: %s", exc)
            render.error = str(exc)
            render.failed_ms = int(time.time() * 1000)
        else:
            render.ready_ms = int(time.time() * 1000)

    def _command(self, clip: Clip, text_file: Path, partial: Path) -> list[str]:
        """The ffmpeg command line; writes the caption it draws into ``text_file``."""
        if shutil.which("ffmpeg") is None:
            raise RenderError("ffmpeg is not installed: run scripts/setup (apt-get install ffmpeg)")
        if not Path(FONT).is_file():
            raise RenderError(f"{FONT} is missing: run scripts/setup (fonts-dejavu-core)")
        width, height = frame_size(clip.resolution, clip.aspect_ratio)
        font_size = max(12, height // 18)
        text_file.parent.mkdir(parents=True, exist_ok=True)
        text_file.write_text(caption(clip.prompt, width, font_size), encoding="utf-8")
        command = [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"color=c=0x1d3557:s={width}x{height}:r={self.fps}:d={clip.duration}",
        ]
        if clip.audio:
            command += [
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency=440:sample_rate=44100:d={clip.duration}",
            ]
        command += [
            "-vf",
            # The prompt as written (expansion=none: a "%" stays a "%"), and a running clock
            # so that a player shows a moving picture.
            # ffmpeg runs in the media directory and names the caption file without its folder:
            # a folder's ":" or "," would otherwise need filtergraph escaping.
            f"drawtext=fontfile={FONT}:textfile={text_file.name}:expansion=none:"
            f"fontcolor=white:fontsize={font_size}:line_spacing={font_size // 3}:"
            "x=(w-text_w)/2:y=(h-text_h)/2,"
            f"drawtext=fontfile={FONT}:text='%{{pts\\:hms}}':fontcolor=0xa8dadc:"
            f"fontsize={max(10, font_size * 2 // 3)}:x=(w-text_w)/2:y=h-2*text_h",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-t",
            str(clip.duration),
        ]
        if clip.audio:
            command += ["-c:a", "aac", "-b:a", "64k"]
        return [*command, "-movflags", "+faststart", str(partial)]

    async def _ffmpeg(self, clip: Clip, path: Path) -> None:
        # Unique names: another sandbox may render the same clip into a shared directory.
        token = secrets.token_hex(4)
        text_file = path.with_name(f"{path.stem}.{token}.txt")
        partial = path.with_name(f"{path.stem}.{token}.partial.mp4")
        done = False
        try:
            command = self._command(clip, text_file, partial)
            process = await asyncio.create_subprocess_exec(
                *command,
                cwd=text_file.parent,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                _, stderr = await process.communicate()
            except asyncio.CancelledError:
                # The sandbox is closing: leave no ffmpeg running behind it.
                process.kill()
                await process.wait()
                raise
            if process.returncode != 0:
                raise RenderError(f"ffmpeg failed: {stderr.decode(errors='replace')[-500:]}")
            # Renamed into place only when whole, so an existing file is always a finished one.
            partial.replace(path)
            done = True
        finally:
            text_file.unlink(missing_ok=True)
            if not done:
                partial.unlink(missing_ok=True)
