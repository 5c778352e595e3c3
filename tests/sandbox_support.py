"""What the sandbox tests share: a KIE client, task helpers, a loopback callback receiver, and
serving any ASGI app on a loopback port."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Final

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import SANDBOX_KEY, free_port

FAST_480P: Final[dict[str, Any]] = {
    "model": "bytedance/seedance-2-fast",
    "input": {"prompt": "a paper boat on a pond", "resolution": "480p", "duration": 4},
}
"""The cheapest request: 4 s at 480p on seedance-2-fast, 15.5 credits a second."""
RECORD_FIELDS: Final[dict[str, type | tuple[type, ...]]] = {
    "taskId": str,
    "model": str,
    "state": str,
    "param": str,
    "resultJson": str,
    "failCode": str,
    "failMsg": str,
    "costTime": int,
    "completeTime": (int, type(None)),
    "createTime": int,
    "updateTime": int,
}
TERMINAL: Final = ("success", "fail")


@asynccontextmanager
async def kie_client(
    base_url: str, key: str | None = SANDBOX_KEY
) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as client:
        yield client


async def create(client: httpx.AsyncClient, body: dict[str, Any] = FAST_480P) -> str:
    answer = await client.post("/api/v1/jobs/createTask", json=body)
    payload = answer.json()
    assert (answer.status_code, payload["code"]) == (200, 200), payload
    task_id: str = payload["data"]["taskId"]
    return task_id


async def record(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    answer = (await client.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})).json()
    assert (answer["code"], answer["msg"]) == (200, "success"), answer
    data: dict[str, Any] = answer["data"]
    return data


async def until_finished(
    client: httpx.AsyncClient, task_id: str, seconds: float = 20
) -> dict[str, Any]:
    """The task's record once it is terminal, polling every 50 ms."""
    deadline = time.monotonic() + seconds
    while (data := await record(client, task_id))["state"] not in TERMINAL:
        assert time.monotonic() < deadline, f"{task_id} still {data['state']} after {seconds} s"
        await asyncio.sleep(0.05)
    return data


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/sandbox/stats")
    assert answer.status_code == 200
    counts: dict[str, Any] = answer.json()
    return counts


async def eventually(check: Callable[[], bool], seconds: float = 10) -> None:
    """Wait until ``check()`` holds, failing after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the expected condition did not come true in time"
        await asyncio.sleep(0.02)


def assert_kie_record(data: dict[str, Any]) -> None:
    """Every field KIE's recordInfo documents, each of its type, and nothing else."""
    assert set(data) == set(RECORD_FIELDS)
    for name, kind in RECORD_FIELDS.items():
        assert isinstance(data[name], kind), f"{name} is {type(data[name]).__name__}"
        assert not isinstance(data[name], bool), f"{name} is a bool"
    assert data["createTime"] > 1_600_000_000_000, "times are Unix milliseconds"


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a loopback port, in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            assert thread.is_alive(), "the server did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    at: float
    """Unix seconds when it arrived."""


class Receiver:
    """A loopback HTTP endpoint that keeps every callback it gets and answers with the next of
    ``statuses`` (then 200)."""

    def __init__(self, url: str, deliveries: list[Delivery]) -> None:
        self.url = url
        self.deliveries = deliveries

    def count(self, n: int) -> Callable[[], bool]:
        return lambda: len(self.deliveries) >= n


@contextmanager
def receiver(statuses: list[int] | None = None) -> Iterator[Receiver]:
    deliveries: list[Delivery] = []
    answers = list(statuses or [])

    async def receive(request: Request) -> Response:
        deliveries.append(Delivery(dict(request.headers), await request.body(), time.time()))
        return Response("ok", status_code=answers.pop(0) if answers else 200)

    with serve(Starlette(routes=[Route("/cb", receive, methods=["POST"])])) as base:
        yield Receiver(f"{base}/cb", deliveries)
