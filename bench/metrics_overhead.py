"""What observing every request costs (request id, metrics, route template), in process.

The poll fast path: the real gateway app (on a SQLite file, its task and key cached) is called
at the ASGI level, with and without :class:`reelgate.api.observing.Observing` in front, in
interleaved rounds; the difference per request is the overhead. A create pays the same, plus
what only creates do: counting its outcome, the log context of its task, and the timing of its
upstream call, each measured alone. No server and no network: this isolates the code added to
each request from uvicorn and the kernel, so the numbers are stable from run to run. Timings
are reported, never asserted.

    .venv/bin/python bench/metrics_overhead.py [--requests 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from reelgate import logs
from reelgate.api.create_outcomes import CreateOutcome
from reelgate.api.observing import Observing
from reelgate.app import create_app
from reelgate.config import Settings
from reelgate.domain.accounts import ApiKey
from reelgate.domain.request import parse_request
from reelgate.services.metrics import Metrics
from reelgate.services.observed_provider import ObservedProvider
from reelgate.store.migrate import upgrade_async

SECRET_KEY = "5eed" * 16
REQUEST = {"model": "seedance-2-fast", "prompt": "a quiet harbour at dawn", "duration": 5}


class Accepting:
    """An upstream that accepts every task at once (the create path without a network)."""

    channel = "kie"

    async def submit(self, request: Any, callback_url: str | None) -> str:
        return "UPSTREAM-1"

    async def fetch_status(self, upstream_task_id: str) -> Any:
        raise NotImplementedError

    async def probe(self) -> None:
        return None

    def read_callback(self, headers: Any, body: bytes) -> str:
        raise NotImplementedError

    async def find_created(self, task_id: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _scope(path: str, key: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"bench"),
            (b"accept", b"*/*"),
            (b"authorization", f"Bearer {key}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(_message: MutableMapping[str, Any]) -> None:
    return None


async def _lifespan(app: Any) -> Callable[[], Awaitable[None]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    running = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started

    async def stop() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await running

    return stop


async def _per_request_us(app: Any, scope: dict[str, Any], requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        await app(dict(scope), _receive, _send)
    return (time.perf_counter() - started) / requests * 1e6


async def poll_fast_path(requests: int, rounds: int) -> tuple[float, float]:
    """Microseconds per cached poll: without and with the observer."""
    with tempfile.TemporaryDirectory() as workdir:
        url = f"sqlite+aiosqlite:///{Path(workdir) / 'bench.db'}"
        await upgrade_async(url)
        settings = Settings(
            database_url=url,
            secret_key=SECRET_KEY,
            admin_token="rga_bench-admin-token",
            run_engine=False,
            media_dir=Path(workdir) / "media",
        )
        observed = create_app(settings, Accepting())
        assert isinstance(observed, Observing)
        bare = observed.app
        stop = await _lifespan(observed)
        try:
            inner: Any = bare  # Observing > RequestLimits > HotPaths > the framework's app
            api = inner.app.app.state.api
            await api.services.accounts.create("bench", "100")
            issued = await api.services.accounts.create_key("bench")
            key: ApiKey = issued.key
            task = await api.services.tasks.create(key, REQUEST)
            scope = _scope(f"/v1/tasks/{task.id}", issued.secret)
            await observed(dict(scope), _receive, _send)  # from the database: now cached
            assert api.bodies.cached(key, task.id) is not None
            without, with_ = [], []
            for _ in range(rounds):
                without.append(await _per_request_us(bare, scope, requests))
                with_.append(await _per_request_us(observed, scope, requests))
        finally:
            await stop()
    return statistics.median(without), statistics.median(with_)


def _timed_us(work: Callable[[], None], times: int = 200_000) -> float:
    started = time.perf_counter()
    for _ in range(times):
        work()
    return (time.perf_counter() - started) / times * 1e6


async def create_only(rounds: int) -> dict[str, float]:
    """Microseconds of what only a create adds, each part alone."""
    metrics = Metrics()
    request = parse_request(REQUEST)
    accepting = Accepting()
    wrapped = ObservedProvider(accepting, metrics)

    def count_outcome() -> None:
        with CreateOutcome(metrics) as outcome:
            outcome.body(REQUEST)

    def log_context() -> None:
        with logs.about(task="task_1", account="acct_1", upstream="kie"):
            pass

    async def submits(provider: Any, times: int = 50_000) -> float:
        started = time.perf_counter()
        for _ in range(times):
            await provider.submit(request, None)
        return (time.perf_counter() - started) / times * 1e6

    parts: dict[str, list[float]] = {"outcome": [], "log context": [], "upstream timing": []}
    for _ in range(rounds):
        parts["outcome"].append(_timed_us(count_outcome))
        parts["log context"].append(_timed_us(log_context))
        parts["upstream timing"].append(await submits(wrapped) - await submits(accepting))
    return {name: statistics.median(values) for name, values in parts.items()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    without, with_ = await poll_fast_path(args.requests, args.rounds)
    print(f"poll fast path, in process: {without:.2f} us without the observer, {with_:.2f} us")
    print(f"  observing a request costs {with_ - without:.2f} us ({with_ / without - 1:.1%})")
    parts = await create_only(args.rounds)
    for name, us in parts.items():
        print(f"create only, {name}: {us:.2f} us")
    total = with_ - without + sum(parts.values())
    print(f"  a create pays {total:.2f} us in all")


if __name__ == "__main__":
    asyncio.run(main())
