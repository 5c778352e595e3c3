"""``reelgate serve`` as operators run it, in a process of its own: on SIGTERM it stops being
ready before it stops accepting, and its logs (JSON when they do not go to a terminal) carry
request ids and never a key, a token or a signature."""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from reelgate.domain.links import callback_token
from reelgate.domain.secret_key import KeyUse, SecretKey
from tests.conftest import free_port
from tests.e2e.test_readme_quickstart import REELGATE, user_env

START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 30.0
ADMIN_TOKEN: Final = re.compile(r"rga_[A-Za-z0-9_-]{20,}")
QUICK_SANDBOX: Final = {
    "REELGATE_SANDBOX_WAITING_S": "0.2",
    "REELGATE_SANDBOX_QUEUING_S": "0.2",
    "REELGATE_SANDBOX_GENERATING_S": "0.4",
    "REELGATE_ENGINE_FIRST_POLL_S": "0.2",
    "REELGATE_ENGINE_POLL_MIN_S": "0.2",
    "REELGATE_ENGINE_POLL_MAX_S": "0.5",
}
REQUEST: Final = {"model": "seedance-2-fast", "prompt": "a lighthouse at dusk", "duration": 4}


class Serve:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, out: Path, err: Path) -> None:
        self.proc = proc
        self.base_url = f"http://127.0.0.1:{port}"
        self.out = out
        self.err = err

    def printed(self) -> str:
        return self.out.read_text(errors="replace")

    def logged(self) -> str:
        return self.err.read_text(errors="replace")

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=10, trust_env=False)


@contextmanager
def serve(tmp_path: Path, **settings: str) -> Iterator[Serve]:
    """``reelgate serve`` in an empty directory with ``settings``, ready; killed if it outlives
    the test."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    port = free_port()
    out, err = tmp_path / "serve.stdout", tmp_path / "serve.stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(REELGATE), "serve", "--port", str(port)],
            cwd=workdir,
            env={**user_env(), **settings},
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
        server = Serve(proc, port, out, err)
        try:
            _until_ready(server)
            yield server
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)


def _until_ready(server: Serve) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with server.client() as client:
        while time.monotonic() < deadline:
            assert server.proc.poll() is None, f"serve exited:\n{server.logged()}"
            try:
                if client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    pytest.fail(f"serve was not ready within {START_TIMEOUT_S} s:\n{server.logged()}")


def test_sigterm_makes_readyz_answer_503_while_requests_are_still_served_then_stops(
    tmp_path: Path,
) -> None:
    with serve(tmp_path, REELGATE_SHUTDOWN_DRAIN_S="3") as server:
        server.proc.send_signal(signal.SIGTERM)
        draining = None
        for _ in range(100):
            with server.client() as client:  # a new connection each time: still accepted
                answer = client.get("/readyz")
                if answer.status_code == 503:
                    draining = answer.json()
                    alive = client.get("/healthz")
                    break
            time.sleep(0.02)
        assert draining is not None, "readyz never answered 503 after SIGTERM"
        assert (draining["ready"], draining["failing"]) == (False, ["shutdown"])
        assert alive.status_code == 200, "requests are still served while draining"
        server.proc.wait(timeout=STOP_TIMEOUT_S)
        with server.client() as client, pytest.raises(httpx.ConnectError):
            client.get("/healthz")
    assert '"draining: /readyz answers 503' in server.logged()


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_logs_carry_request_ids_and_route_templates_and_never_a_secret(
    tmp_path: Path,
) -> None:
    settings = {**QUICK_SANDBOX, "REELGATE_ACCESS_LOG": "true", "REELGATE_SHUTDOWN_DRAIN_S": "0"}
    forged = {
        "key": "rg_" + secrets.token_urlsafe(32),
        "admin": "rga_" + secrets.token_urlsafe(32),
        "callback token": secrets.token_urlsafe(24),
        "callback signature": secrets.token_urlsafe(24),
    }
    with serve(tmp_path, **settings) as server:
        [admin_token] = ADMIN_TOKEN.findall(server.printed())
        with server.client(admin_token) as admin:
            assert admin.post(
                "/admin/accounts", json={"name": "logs", "credit_usd": "5"}
            ).is_success
            key = admin.post("/admin/accounts/logs/keys").json()["key"]
        with server.client(key) as client:
            created = client.post(
                "/v1/videos/generations", json=REQUEST, headers={"x-request-id": "req-logs-1"}
            )
            assert created.status_code == 202, created.text
            task_id = created.json()["task_id"]
            for _ in range(300):
                task = client.get(f"/v1/tasks/{task_id}").json()
                if task["state"] in ("success", "fail"):
                    break
                time.sleep(0.05)
            assert task["state"] == "success", task
            link = task["result"]["data"][0]["url"]
            assert client.get(link.removeprefix(server.base_url)).status_code == 200
            webhook_secret = client.get("/v1/webhooks/secret").json()["secret"]
        with server.client(forged["key"]) as client:
            assert client.get(f"/v1/tasks/{task_id}").status_code == 401
        with server.client(forged["admin"]) as client:
            assert client.get("/admin/audit").status_code == 401
            assert client.get("/metrics").status_code == 401
        with server.client() as client:
            refused = client.post(
                f"/v1/upstream/callbacks/kie?task_id={task_id}&token={forged['callback token']}",
                json={"data": {"taskId": "x"}},
                headers={"x-webhook-signature": forged["callback signature"]},
            )
            assert refused.status_code == 401
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=STOP_TIMEOUT_S)
    logged = server.logged()
    lines = _lines(logged)  # every line is one JSON object
    assert all({"time", "level", "logger", "event"} <= set(line) for line in lines)
    secret_key = SecretKey.parse((tmp_path / "work" / "reelgate.key").read_text())
    real_callback_token = callback_token(secret_key.derive(KeyUse.CALLBACK_TOKENS), task_id)
    never = {
        "the API key": key,
        "the admin token": admin_token,
        "the webhook secret": webhook_secret,
        "the video link's signature": re.search(r"signature=([^&]+)", link)[1],  # type: ignore[index]
        "the real callback token": real_callback_token,
        "the secret key": secret_key.material.hex(),
        **forged,
    }
    for what, secret in never.items():
        assert secret not in logged, f"{what} appears in the logs"
    access = [line for line in lines if line["logger"] == "reelgate.access"]
    created_line = next(line for line in access if line["request_id"] == "req-logs-1")
    assert (created_line["route"], created_line["status"]) == ("/v1/videos/generations", 202)
    assert isinstance(created_line["duration_ms"], float)
    routes = {line["route"] for line in access}
    assert "/v1/upstream/callbacks/{channel}" in routes, "the sandbox's callbacks are logged"
    assert "/v1/tasks/{task_id}/content/{index}" in routes
    assert all(task_id not in line["route"] for line in access)
    assert all(line.get("request_id") for line in access)
