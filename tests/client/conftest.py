"""What the client's tests share: a real gateway on loopback (on SQLite only: the client does
not care which database is behind it), its engine and embedded sandbox on short timings, an
account with a key, and ffprobe."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from reelgate_client import Reelgate
from tests.conftest import ADMIN_TOKEN, GatewayFactory, RunningGateway
from tests.integration.engine_helpers import FAST_ENGINE

TEXT: Final[dict[str, Any]] = {
    "model": "seedance-2-fast",
    "prompt": "a red kite over dunes",
    "resolution": "480p",
    "duration": 4,
}
TEXT_COST: Final = 77_500 * 4
"""seedance-2-fast at 480p without video input: 77,500 micro-USDC a second."""


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    from reelgate.store.migrate import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'reelgate.db'}"
    upgrade(url)
    return url


def new_key(gateway: RunningGateway, name: str, credit_usd: str = "100") -> str:
    """An account made through the admin API, and a key of it."""
    with httpx.Client(
        base_url=gateway.base_url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ) as admin:
        made = admin.post("/admin/accounts", json={"name": name, "credit_usd": credit_usd})
        assert made.status_code == 201, made.text
        issued = admin.post(f"/admin/accounts/{name}/keys")
        assert issued.status_code == 201, issued.text
        key: str = issued.json()["key"]
        return key


@pytest.fixture
def live(start_gateway: GatewayFactory, quick_sandbox: Path) -> RunningGateway:
    """A gateway whose engine runs tasks to their end within a second or two."""
    # Polls are advised every 200 ms rather than 5 s: the polling tests wait less.
    return start_gateway(**FAST_ENGINE, recommended_poll_interval_ms=200)


@pytest.fixture
def key(live: RunningGateway) -> str:
    return new_key(live, "alice")


@pytest.fixture
def rg(live: RunningGateway, key: str) -> Iterator[Reelgate]:
    with Reelgate(base_url=live.base_url, api_key=key, timeout=30) as client:
        yield client


def probe(path: Path) -> dict[str, Any]:
    """What ffprobe decodes of a video file (it fails on anything that is not one)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    probed: dict[str, Any] = json.loads(out)
    return probed


def video_stream(path: Path) -> dict[str, Any]:
    (video,) = [s for s in probe(path)["streams"] if s["codec_type"] == "video"]
    return video
