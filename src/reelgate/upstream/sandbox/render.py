"""Real H.264 videos from ffmpeg, cached on disk by what they show.

A load test creates thousands of tasks with a handful of distinct requests, so each distinct
(size, duration, audio, prompt) is rendered once and every later task points at the same file.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from reelgate.errors import ReelgateError

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


class RenderError(ReelgateError):
    code = "render_failed"


def frame_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """Width and height: the resolution names the short side; both even, as yuv420p needs."""
    short = SHORT_SIDE[resolution]
    w, h = RATIOS.get(aspect_ratio, RATIOS[ADAPTIVE_PICK])
    long = round(short * max(w, h) / min(w, h) / 2) * 2
    return (long, short) if w >= h else (short, long)


@dataclass(frozen=True, slots=True)
class Clip:
    resolution: str
    aspect_ratio: str
    duration: int
    audio: bool
    prompt: str

    @property
    def name(self) -> str:
        key = f"{self.resolution}|{self.aspect_ratio}|{self.duration}|{self.audio}|{self.prompt}"
        return hashlib.sha256(key.encode()).hexdigest()[:32] + ".mp4"


class Renderer:
    def __init__(self, media_dir: Path, fps: int) -> None:
        self.media_dir = media_dir
        self.fps = fps
        self._renders: dict[str, asyncio.Task[Path]] = {}

    async def render(self, clip: Clip) -> Path:
        """The clip's file, rendering it first unless it exists; concurrent calls share one run."""
        path = self.media_dir / clip.name
        if path.exists():
            return path
        running = self._renders.get(clip.name)
        if running is None:
            running = self._renders[clip.name] = asyncio.create_task(self._render(clip, path))
            running.add_done_callback(lambda _: self._renders.pop(clip.name, None))
        return await asyncio.shield(running)

    async def _render(self, clip: Clip, path: Path) -> Path:
        if shutil.which("ffmpeg") is None:
            raise RenderError("ffmpeg is not installed: run scripts/setup (apt-get install ffmpeg)")
        self.media_dir.mkdir(parents=True, exist_ok=True)
        width, height = frame_size(clip.resolution, clip.aspect_ratio)
        text_file = self.media_dir / f"{clip.name}.txt"
        lines = textwrap.wrap(clip.prompt, width=max(12, width // 28))[:6] or [" "]
        text_file.write_text("\n".join(lines))
        partial = path.with_suffix(".partial.mp4")
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
            (
                f"drawtext=fontfile={FONT}:textfile={text_file}:expansion=none:"
                f"fontcolor=white:fontsize={max(12, height // 18)}:line_spacing=8:"
                "x=(w-text_w)/2:y=(h-text_h)/2"
            ),
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
        command += ["-movflags", "+faststart", str(partial)]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, stderr = await process.communicate()
        text_file.unlink(missing_ok=True)
        if process.returncode != 0:
            partial.unlink(missing_ok=True)
            raise RenderError(f"ffmpeg failed: {stderr.decode(errors='replace')[-500:]}")
        # Renamed into place only when whole, so an existing file is always a finished one.
        partial.replace(path)
        return path
