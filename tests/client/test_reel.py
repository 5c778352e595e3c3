"""``reel`` run as a user runs it, a subprocess against a real gateway on loopback: with and
without a terminal (a pseudo-terminal from the pty module), its output and exit statuses."""

from __future__ import annotations

import errno
import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

import pytest

from reelgate_client import Reelgate
from tests.client.conftest import TEXT_COST, new_key, video_stream
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.engine_helpers import FAST_ENGINE

REEL: Final = Path(sys.executable).with_name("reel")
CHEAP: Final = ("--resolution", "480p", "--duration", "4")
TIMEOUT_S: Final = 60


def _env(gateway: RunningGateway, key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
    env["REELGATE_BASE_URL"] = gateway.base_url
    if key is not None:
        env["REELGATE_API_KEY"] = key
    return env


def reel(
    gateway: RunningGateway, key: str | None, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``reel`` with no terminal: stdin, stdout and stderr are pipes."""
    return subprocess.run(
        [str(REEL), *args],
        env=_env(gateway, key),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def reel_in_terminal(
    gateway: RunningGateway, key: str, *args: str, answer: bytes = b"", cwd: Path | None = None
) -> tuple[int, str]:
    """``reel`` on a pseudo-terminal, as in an interactive shell; ``answer`` is typed in."""
    master, slave = pty.openpty()
    env = {**_env(gateway, key), "TERM": "xterm-256color", "COLUMNS": "120"}
    proc = subprocess.Popen(
        [str(REEL), *args], env=env, cwd=cwd, stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    if answer:
        os.write(master, answer)
    output = b""
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 65536)
            except OSError as exc:  # EIO: the child closed the terminal
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
    return proc.wait(timeout=TIMEOUT_S), output.decode(errors="replace")


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result
    return json.loads(result.stdout)


def test_reel_generate_without_a_terminal_prints_plain_lines(
    live: RunningGateway, key: str, tmp_path: Path
) -> None:
    result = reel(
        live, key, "generate", "a beach at sunset", *CHEAP, "--out", "beach.mp4", cwd=tmp_path
    )
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0] == "price: 0.31 USD (310000 micro-USDC)"
    assert re.fullmatch(
        r"task_\w+ (waiting|queuing|generating) \d+% \d+s reserved 0.31 USD", lines[1]
    )
    assert any(" success 100% " in line for line in lines)
    assert "\x1b[" not in result.stdout  # no terminal, no escape codes
    assert f"saved {tmp_path / 'beach.mp4'}" in lines or "saved beach.mp4" in lines
    assert lines[-1].endswith(": charged 0.31 USD")
    assert video_stream(tmp_path / "beach.mp4")["codec_name"] == "h264"


def test_reel_generate_json_prints_json_only(
    live: RunningGateway, key: str, tmp_path: Path
) -> None:
    out = tmp_path / "v.mp4"
    body = _json(
        reel(
            live, key, "generate", "a kite", *CHEAP, "--out", str(out), "--channel", "kie", "--json"
        )
    )
    assert body["task"]["state"] == "success"
    assert body["task"]["billing"]["channel"] == "kie"
    assert body["task"]["billing"]["actual_amount_micro_usdc"] == TEXT_COST
    assert body["path"] == str(out)
    assert out.stat().st_size > 0


def test_reel_in_a_pseudo_terminal_shows_bars_and_asks_before_spending(
    live: RunningGateway, key: str, tmp_path: Path
) -> None:
    status, output = reel_in_terminal(
        live, key, "generate", "a kite", *CHEAP, "--out", "k.mp4", cwd=tmp_path
    )
    assert status == 0, output
    assert "\x1b[" in output  # drawn live
    assert re.search(r"task task_\w+", output)
    assert "success" in output
    assert "download" in output
    assert "saved k.mp4" in output
    assert "charged 0.31 USD" in output
    # Over --confirm-over-usd it asks; "n" cancels before anything is created.
    status, output = reel_in_terminal(
        live, key, "generate", "a kite", *CHEAP, "--confirm-over-usd", "0.1", answer=b"n\n"
    )
    assert status == 2, output
    assert "Spend up to 0.31 USD?" in output
    listed = _json(reel(live, key, "tasks", "list", "--json"))
    assert len(listed) == 1


def test_reel_tasks_models_usage_and_account(
    live: RunningGateway, key: str, tmp_path: Path
) -> None:
    made = _json(reel(live, key, "generate", "a kite", *CHEAP, "--json"))["task"]
    task_id = made["task_id"]

    listed = reel(live, key, "tasks", "list")
    assert listed.returncode == 0, listed
    assert task_id in listed.stdout
    assert [t["task_id"] for t in _json(reel(live, key, "tasks", "list", "--json"))] == [task_id]
    shown = reel(live, key, "tasks", "show", task_id)
    assert "success" in shown.stdout
    assert "a kite" in shown.stdout
    assert _json(reel(live, key, "tasks", "show", task_id, "--json"))["task_id"] == task_id
    watched = reel(live, key, "tasks", "watch", task_id)
    assert watched.returncode == 0, watched
    assert "success" in watched.stdout
    assert _json(reel(live, key, "tasks", "watch", task_id, "--json"))["state"] == "success"
    downloaded = _json(reel(live, key, "tasks", "download", task_id, "--json", cwd=tmp_path))
    assert downloaded == {"task_id": task_id, "path": f"{task_id}.mp4"}
    assert video_stream(tmp_path / f"{task_id}.mp4")["codec_name"] == "h264"

    models = reel(live, None, "models")
    assert models.returncode == 0, models
    assert "seedance-2-fast" in models.stdout
    assert "0.0775" in models.stdout  # 480p without video, per second
    assert {m["id"] for m in _json(reel(live, None, "models", "--json"))} == {
        "seedance-2",
        "seedance-2-fast",
    }
    usage = reel(live, key, "usage", "--group-by", "model")
    assert "seedance-2-fast" in usage.stdout
    assert _json(reel(live, key, "usage", "--json"))["total"]["committed_micro_usdc"] == TEXT_COST
    account = reel(live, key, "account")
    assert "99.69 USD" in account.stdout
    assert _json(reel(live, key, "account", "--json"))["name"] == "alice"


def test_reel_exit_statuses(
    start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch, quick_sandbox: Path
) -> None:
    monkeypatch.setenv("REELGATE_SANDBOX_FAIL_SHARE", "1.0")
    gateway = start_gateway(**FAST_ENGINE)
    key = new_key(gateway, "exits")

    failed = reel(gateway, key, "generate", "a kite", *CHEAP)
    assert failed.returncode == 1, failed
    assert "failed: generation_failed" in failed.stderr
    failed_json = reel(gateway, key, "generate", "a kite", *CHEAP, "--json")
    assert failed_json.returncode == 1
    assert json.loads(failed_json.stdout)["state"] == "fail"

    usage_errors = [
        reel(gateway, key, "generate", "a kite", "--duration", "five"),
        reel(gateway, key, "tasks", "frobnicate"),
        reel(gateway, None, "account"),
        reel(gateway, key, "generate", "a kite", *CHEAP, "--confirm-over-usd", "0.1"),
        reel(gateway, key, "generate", "a kite", "--resolution", "1080p"),
    ]
    assert [r.returncode for r in usage_errors] == [2] * 5, usage_errors
    assert "REELGATE_API_KEY" in usage_errors[2].stderr
    assert "--yes" in usage_errors[3].stderr
    assert "no 1080p tier" in usage_errors[4].stderr

    refused = reel(gateway, "rg_wrong", "account")
    assert refused.returncode == 3
    assert "401 unauthorized" in refused.stderr
    invalid = reel(gateway, key, "generate", "a kite", "--duration", "99", "--yes")
    assert invalid.returncode == 3
    assert "duration" in invalid.stderr
    missing = reel(gateway, key, "tasks", "show", "task_nope", "--json")
    assert missing.returncode == 3
    assert json.loads(missing.stdout)["error"] == "not_found"


def test_reel_interrupted_exits_130_and_the_task_goes_on(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway()  # no engine: the task stays waiting
    key = new_key(gateway, "patient")
    with Reelgate(base_url=gateway.base_url, api_key=key) as rg:
        task = rg.videos.create(model="seedance-2-fast", prompt="a kite", duration=4)
    proc = subprocess.Popen(
        [str(REEL), "tasks", "watch", task.task_id],
        env=_env(gateway, key), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # following it now
        assert first.startswith(f"{task.task_id} waiting"), first
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "goes on at the gateway" in err
    with Reelgate(base_url=gateway.base_url, api_key=key) as rg:
        assert rg.tasks.retrieve(task.task_id).state == "waiting"
