"""The sandbox's videos, opened with a real decoder: size, duration and audio as requested."""

from __future__ import annotations

import asyncio
import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import SANDBOX_KEY, SandboxFactory

# (resolution, aspect ratio) -> the frame the request asks for: the short side is the resolution.
SIZES = [
    ("480p", "16:9", 854, 480),
    ("480p", "9:16", 480, 854),
    ("480p", "1:1", 480, 480),
    ("720p", "16:9", 1280, 720),
    ("720p", "21:9", 1680, 720),
    ("720p", "3:4", 720, 960),
    ("720p", "adaptive", 1280, 720),
    ("1080p", "16:9", 1920, 1080),
    ("1080p", "4:3", 1440, 1080),
    ("1080p", "9:16", 1080, 1920),
]


async def _render(
    base_url: str, fields: dict[str, Any], tmp_path: Path
) -> tuple[Path, httpx.Response]:
    """Create a task, wait for success, download its video."""
    headers = {"authorization": f"Bearer {SANDBOX_KEY}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        created = await client.post(
            "/api/v1/jobs/createTask",
            json={
                "model": "bytedance/seedance-2",
                "input": {"prompt": "a lighthouse at dusk", **fields},
            },
        )
        task_id = created.json()["data"]["taskId"]
        for _ in range(300):
            data = (await client.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})).json()[
                "data"
            ]
            if data["state"] == "success":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the sandbox did not finish the task within 30 s")
        url = orjson.loads(data["resultJson"])["resultUrls"][0]
        video = await client.get(url)
    path = tmp_path / f"{task_id}.mp4"
    path.write_bytes(video.content)
    return path, video


def _probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    probed: dict[str, Any] = json.loads(out)
    return probed


def _video_stream(probe: dict[str, Any]) -> dict[str, Any]:
    (video,) = [s for s in probe["streams"] if s["codec_type"] == "video"]
    return video


@pytest.mark.parametrize(("resolution", "aspect_ratio", "width", "height"), SIZES)
async def test_the_video_has_the_requested_frame_size_and_duration(
    start_sandbox: SandboxFactory,
    tmp_path: Path,
    resolution: str,
    aspect_ratio: str,
    width: int,
    height: int,
) -> None:
    base = start_sandbox()
    path, _ = await _render(
        base,
        {
            "resolution": resolution,
            "aspect_ratio": aspect_ratio,
            "duration": 4,
            "generate_audio": False,
        },
        tmp_path,
    )
    video = _video_stream(_probe(path))
    frame = 1 / Fraction(video["r_frame_rate"])
    assert video["codec_name"] == "h264"
    assert (video["width"], video["height"]) == (width, height)
    assert abs(Fraction(video["duration"]) - 4) <= frame


async def test_a_fifteen_second_video_lasts_fifteen_seconds(
    start_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    path, _ = await _render(start_sandbox(), {"resolution": "480p", "duration": 15}, tmp_path)
    video = _video_stream(_probe(path))
    assert abs(Fraction(video["duration"]) - 15) <= 1 / Fraction(video["r_frame_rate"])


@pytest.mark.parametrize(
    ("generate_audio", "has_audio"),
    [(True, True), (False, False), (None, True)],
    ids=["asked", "refused", "kie-default-is-on"],
)
async def test_an_audio_track_exactly_when_generate_audio_is_not_false(
    start_sandbox: SandboxFactory, tmp_path: Path, generate_audio: bool | None, has_audio: bool
) -> None:
    fields: dict[str, Any] = {"resolution": "480p", "duration": 4}
    if generate_audio is not None:
        fields["generate_audio"] = generate_audio
    path, _ = await _render(start_sandbox(), fields, tmp_path)
    audio = [s for s in _probe(path)["streams"] if s["codec_type"] == "audio"]
    assert bool(audio) is has_audio
    if has_audio:
        assert abs(float(audio[0]["duration"]) - 4) < 0.1


async def test_videos_are_served_as_mp4_with_range_support(
    start_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    base = start_sandbox()
    path, video = await _render(base, {"resolution": "480p", "duration": 4}, tmp_path)
    assert video.headers["content-type"] == "video/mp4"
    async with httpx.AsyncClient() as client:
        part = await client.get(str(video.url), headers={"range": "bytes=0-99"})
    assert part.status_code == 206
    assert part.content == path.read_bytes()[:100]


async def test_the_same_request_is_rendered_once(
    start_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    base = start_sandbox(media_dir=tmp_path / "media")
    fields = {"resolution": "480p", "duration": 4, "generate_audio": False}
    await asyncio.gather(*(_render(base, fields, tmp_path) for _ in range(3)))
    assert len(list((tmp_path / "media").glob("*.mp4"))) == 1
