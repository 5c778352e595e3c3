"""The README's quick start, as a new user would follow it: ``reelgate serve`` with nothing
configured in an empty directory, an account and a key from the command line, the
specification's first example sent with the real ``curl``, then a restart; and the README's
first example itself, its Python and its ``reel`` line, run as written."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from tests.conftest import free_port

REELGATE: Final = Path(sys.executable).with_name("reelgate")
README: Final = Path(__file__).parents[2] / "README.md"
START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 20.0
COMMAND_TIMEOUT_S: Final = 60.0
ADMIN_TOKEN: Final = re.compile(r"rga_[A-Za-z0-9_-]{20,}")

# The specification's first example, its text-to-video request (xenodia-seedance2-api.txt),
# exactly as written there.
FIRST_EXAMPLE: Final = """{
  "model": "seedance-2-fast",
  "prompt": "A cinematic beach at sunset, gentle waves, palm trees, and orange sky.",
  "resolution": "720p",
  "aspect_ratio": "16:9",
  "duration": 5,
  "generate_audio": false
}"""
RESERVED: Final = 825_000  # 165,000 micro-USDC per second x 5 s, as the README says


def user_env() -> dict[str, str]:
    """The test's environment with every REELGATE_* variable removed: nothing configured."""
    return {name: value for name, value in os.environ.items() if not name.startswith("REELGATE_")}


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def printed(self) -> str:
        return self.stdout.read_text(errors="replace")

    def logged(self) -> str:
        return self.stderr.read_text(errors="replace")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)  # Ctrl-C, as in a terminal
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)


def _wait_until_answering(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(base_url=server.base_url, timeout=2, trust_env=False) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                pytest.fail(
                    f"reelgate serve exited with {server.proc.returncode}:\n"
                    f"{server.printed()}\n{server.logged()}"
                )
            try:
                if client.get("/v1/models").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    pytest.fail(
        f"reelgate serve did not answer within {START_TIMEOUT_S} s:\n"
        f"{server.printed()}\n{server.logged()}"
    )


@contextmanager
def serving(
    workdir: Path, logs: Path, run: str, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """``reelgate serve --port P`` in ``workdir``, answering; always stopped on the way out."""
    port = free_port()
    stdout, stderr = logs / f"{run}.stdout", logs / f"{run}.stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            [str(REELGATE), "serve", "--port", str(port)],
            cwd=workdir,
            env={**user_env(), **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        try:
            server = Server(proc, port, stdout, stderr)
            _wait_until_answering(server)
            yield server
        finally:
            _stop(proc)


def reelgate(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(REELGATE), *args],
        cwd=workdir,
        env=user_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result
    return result


def curl(*args: str) -> tuple[int, Any]:
    """Run the real curl; the HTTP status and the JSON body it received."""
    curl_bin = shutil.which("curl")
    assert curl_bin, "curl is not installed"
    result = subprocess.run(
        [curl_bin, "-sS", "--noproxy", "*", "--max-time", "20", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result
    body, _, status = result.stdout.rpartition("\n")
    return int(status), json.loads(body)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    empty = tmp_path / "work"
    empty.mkdir()
    return empty


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    directory = tmp_path / "logs"
    directory.mkdir()
    return directory


def test_quickstart_from_an_empty_directory_to_a_reserved_task_and_a_restart(
    workdir: Path, logs: Path
) -> None:
    assert REELGATE.exists(), REELGATE
    assert list(workdir.iterdir()) == []
    with serving(workdir, logs, "first") as first:
        tokens = ADMIN_TOKEN.findall(first.printed())
        assert len(tokens) == 1, first.printed()
        [admin_token] = tokens
        # The SQLite file lives in the working directory, and the secret key beside it, made
        # on this first start, announced once and readable by its owner only.
        assert (workdir / "reelgate.db").is_file()
        key_file = workdir / "reelgate.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        secret_key = key_file.read_text()
        assert re.fullmatch(r"[0-9a-f]{64}\n", secret_key), secret_key
        assert first.printed().count(f"Secret key generated in {key_file}") == 1

        reelgate(workdir, "accounts", "create", "studio", "--credit-usd", "25")
        issued = json.loads(reelgate(workdir, "keys", "create", "studio", "--json").stdout)
        key = issued["key"]
        assert key.startswith("rg_")

        auth = f"Authorization: Bearer {key}"
        status, envelope = curl(
            f"{first.base_url}/v1/videos/generations",
            "-H",
            auth,
            "-H",
            "Content-Type: application/json",
            "-d",
            FIRST_EXAMPLE,
        )
        assert status == 202, envelope
        assert envelope["state"] == "waiting"
        assert envelope["poll_url"] == f"/v1/tasks/{envelope['task_id']}"

        status, task = curl(f"{first.base_url}/v1/tasks/{envelope['task_id']}", "-H", auth)
        assert status == 200, task
        assert task["state"] == "waiting"
        assert task["billing"]["status"] == "reserved"
        assert task["billing"]["reserve_amount_micro_usdc"] == RESERVED

    assert first.proc.poll() is not None, "the first server did not stop"
    # Kept only as a hash: the token itself is nowhere in the database files. Nor is the
    # secret key, which only its own file holds.
    for file in workdir.iterdir():
        assert admin_token.encode() not in file.read_bytes(), file
        if file != key_file:
            assert secret_key.strip().encode() not in file.read_bytes(), file

    with serving(workdir, logs, "second") as second:
        assert not ADMIN_TOKEN.search(second.printed() + second.logged()), second.printed()
        assert "Admin token" not in second.printed()
        # The key made on the first start is the one used again.
        assert "Secret key generated" not in second.printed()
        assert key_file.read_text() == secret_key
        status, audit = curl(
            f"{second.base_url}/admin/audit", "-H", f"Authorization: Bearer {admin_token}"
        )
        assert status == 200, audit
        assert audit == {"ok": True, "violations": []}
        status, refused = curl(
            f"{second.base_url}/admin/audit", "-H", "Authorization: Bearer rga_not-the-token"
        )
        assert status == 401, refused
        # The task created before the restart is still there, still reserved.
        status, task = curl(f"{second.base_url}/v1/tasks/{envelope['task_id']}", "-H", auth)
        assert status == 200, task
        assert task["billing"]["reserve_amount_micro_usdc"] == RESERVED


def test_the_first_task_succeeds_with_its_video_kept_and_the_ledger_audits_clean(
    workdir: Path, logs: Path
) -> None:
    with serving(workdir, logs, "video") as server:
        reelgate(workdir, "accounts", "create", "studio", "--credit-usd", "25")
        key = json.loads(reelgate(workdir, "keys", "create", "studio", "--json").stdout)["key"]
        auth = f"Authorization: Bearer {key}"
        status, envelope = curl(
            f"{server.base_url}/v1/videos/generations",
            *("-H", auth, "-H", "Content-Type: application/json", "-d", FIRST_EXAMPLE),
        )
        assert status == 202, envelope
        deadline = time.monotonic() + 60
        while True:
            status, task = curl(f"{server.base_url}{envelope['poll_url']}", "-H", auth)
            if task["state"] in ("success", "fail") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert (task["state"], task["billing"]["status"]) == ("success", "committed"), task
        video = workdir / "downloaded.mp4"
        download = subprocess.run(
            ["curl", "-sS", "--noproxy", "*", "--max-time", "20", "-o", str(video),
             "-w", "%{http_code}", task["result"]["data"][0]["url"]],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False,
        )  # fmt: skip
        assert download.stdout == "200", download
    assert video.read_bytes()[4:8] == b"ftyp"
    # Kept in the working directory, beside the database, by default.
    kept = workdir / "reelgate-media" / task["task_id"] / "0"
    assert kept.read_bytes() == video.read_bytes()
    audited = reelgate(workdir, "audit")
    assert "ledger ok" in audited.stdout


def _first_example() -> tuple[str, str]:
    """The Python block and the ``reel`` line of the README's "First video task"."""
    text = README.read_text()
    section = text[text.index("## First video task") :]
    section = section[: section.index("\n## ", 3)]
    [python] = re.findall(r"```python\n(.*?)```", section, re.S)
    [reel] = [line for line in re.findall(r"```sh\n(.*?)```", section, re.S) if "bin/reel " in line]
    return python, reel.strip()


def test_the_readme_first_example_in_python_and_with_reel_makes_a_video(
    workdir: Path, logs: Path
) -> None:
    python, reel_line = _first_example()
    assert len([line for line in python.splitlines() if line.strip()]) == 3, python
    # The sandbox on short timings: what is tried is the example, not the waiting.
    quick = {
        "REELGATE_SANDBOX_WAITING_S": "0.2",
        "REELGATE_SANDBOX_QUEUING_S": "0.2",
        "REELGATE_SANDBOX_GENERATING_S": "0.5",
    }
    with serving(workdir, logs, "example", env=quick) as server:
        reelgate(workdir, "accounts", "create", "studio", "--credit-usd", "25")
        key = json.loads(reelgate(workdir, "keys", "create", "studio", "--json").stdout)["key"]
        env = {**user_env(), "REELGATE_API_KEY": key, "REELGATE_BASE_URL": server.base_url}
        ran = subprocess.run(
            [sys.executable, "-c", python],
            cwd=workdir, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
            check=False,
        )  # fmt: skip
        assert ran.returncode == 0, ran
        from_python = (workdir / "beach.mp4").read_bytes()
        (workdir / "beach.mp4").unlink()
        argv = shlex.split(reel_line)
        assert argv[0] == ".venv/bin/reel", argv
        ran = subprocess.run(
            [str(Path(sys.executable).with_name("reel")), *argv[1:]],
            cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=COMMAND_TIMEOUT_S, check=False,
        )  # fmt: skip
        assert ran.returncode == 0, ran
        assert "charged 0.825 USD" in ran.stdout
    for video in (from_python, (workdir / "beach.mp4").read_bytes()):
        assert video[4:8] == b"ftyp"
