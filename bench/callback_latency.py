"""Measure how long an upstream callback takes to become visible to clients: from the moment
the callback is sent to the gateway until a client polling ``GET /v1/tasks/{id}`` sees the
change, and until a client following ``GET /v1/tasks/{id}/events`` receives it, under a steady
load of callbacks. The budget (DESIGN.md): 100 ms at the 99th percentile.

A callback is never believed: the gateway reads the task back from the upstream
(``services/callbacks.py``) and applies what that says. Two changes are measured per task:

- progress: the upstream task has just moved from waiting to generating; the callback makes
  the gateway read it and move the task (state and progress) at once;
- success: the upstream task has just succeeded; the callback makes the gateway read it and
  note the video, and the task shows ``success`` only once an engine has copied the video into
  the media store: that copy is part of what is measured.

The set-up: ``reelgate sandbox`` (pinned to core 1) whose tasks wait ``--waiting`` seconds,
then generate ``--generating`` seconds, and which sends no callback itself: this script sends
them, as KIE would, to the callback link the gateway gave it (read from the sandbox), each only
once the sandbox's own record shows the change. ``reelgate serve`` (pinned to core 0) runs its
engine inside (``--deployment serve``); with ``--deployment split`` (PostgreSQL)
``serve --no-engine`` and one ``reelgate engine`` on core 1 instead. The engine never checks a
task on its own (its first check is set days away), so every change comes from a callback.
This process, on core 1, creates ``--rate / 2`` tasks a second for ``--seconds`` (so
``--rate`` callbacks a second, half of each kind), follows each task's event stream from its
create, and after each callback polls the task every ``--poll-interval-ms`` until the change
shows. The poll figures include up to that interval of sampling.

Percentiles are reported, never asserted; a JSON report lands in ``bench/results/``.
PostgreSQL's server is not pinned: it shares both cores.

    .venv/bin/python bench/callback_latency.py [--database sqlite|postgres]
        [--deployment serve|split] [--rate 20] [--seconds 30] [--warmup 3]
        [--poll-interval-ms 5] [--waiting 2] [--generating 2] [--change-poll-interval-s S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import sqlalchemy as sa

# chaos and engine_ratio are scripts beside this one: run as one, this directory is on sys.path.
from chaos import free_port, raise_interrupt
from engine_ratio import database, percentiles
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from reelgate.config import Settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADMIN_TOKEN = "rga_bench-admin-token"
SANDBOX_KEY = "bench-sandbox-key"
SERVER_CORE, CLIENT_CORE = 0, 1
BUDGET_MS = 100.0
NEVER_S = "1000000"
"""The engine's first check of a task, and its pauses: later than any run."""
SETTLE_S = 0.02
"""How long after the sandbox's own timeline says a change happened the callback is sent."""
GIVE_UP_S = 10.0
BODY = {
    "model": "seedance-2-fast",
    "prompt": "A lighthouse in a storm, waves breaking on the rocks.",
    "resolution": "480p",
    "duration": 4,
    "generate_audio": False,
}


@dataclass(frozen=True, slots=True)
class Options:
    database: str
    deployment: str
    rate: float
    seconds: float
    warmup: float
    poll_interval_ms: float
    waiting: float
    generating: float
    change_poll_interval_s: float | None


@dataclass
class Sample:
    """One callback and when its change showed, in seconds after it was sent."""

    kind: str
    created: float
    """When the task was created, seconds after the run started (for the warmup cut)."""
    ack_s: float | None = None
    """The callback's own answer."""
    changed: bool | None = None
    """What the callback's answer said: whether it changed the task."""
    poll_s: float | None = None
    sse_s: float | None = None


# ---------------------------------------------------------------- processes


@contextlib.contextmanager
def process(
    name: str, command: list[str], env: dict[str, str], core: int, workdir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    log = (workdir / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        ["taskset", "-c", str(core), *command],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {seconds} s")


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    return env


def reelgate(args: list[str], env: dict[str, str], workdir: Path) -> str:
    return subprocess.run(
        [str(BIN / "reelgate"), *args],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


# ---------------------------------------------------------------- one task


class Watcher:
    """A task's event stream, read from its create on: when each state was first received."""

    def __init__(self, session: aiohttp.ClientSession, url: str, key: str) -> None:
        self.seen: dict[str, float] = {}
        self.changed = asyncio.Event()
        self.job = asyncio.create_task(self._read(session, url, key))

    async def _read(self, session: aiohttp.ClientSession, url: str, key: str) -> None:
        headers = {"authorization": f"Bearer {key}", "accept": "text/event-stream"}
        async with session.get(url, headers=headers) as stream:
            data = b""
            async for line in stream.content:
                if line.startswith(b"data:"):
                    data = line[5:].strip()
                elif line in (b"\n", b"\r\n") and data:
                    state = orjson.loads(data)["state"]
                    self.seen.setdefault(state, time.perf_counter())
                    self.changed.set()
                    data = b""

    async def first(self, state: str, seconds: float) -> float | None:
        deadline = time.perf_counter() + seconds
        while state not in self.seen:
            self.changed.clear()
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return self.seen[state]

    async def close(self) -> None:
        self.job.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await self.job


@dataclass
class Run:
    opts: Options
    gateway: str
    sandbox: str
    key: str
    db: AsyncEngine
    session: aiohttp.ClientSession
    started: float = field(default_factory=time.perf_counter)
    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}

    async def upstream_record(self, upstream_id: str) -> dict[str, Any]:
        async with self.session.get(
            f"{self.sandbox}/api/v1/jobs/recordInfo",
            params={"taskId": upstream_id},
            headers={"authorization": f"Bearer {SANDBOX_KEY}"},
        ) as answer:
            record: dict[str, Any] = (await answer.json())["data"]
            return record

    async def callback_link(self, task_id: str) -> tuple[str, str, int]:
        """The upstream id, the callback link the gateway gave, and the create time (ms)."""
        async with self.db.connect() as conn:
            upstream_id = await conn.scalar(
                sa.text("SELECT upstream_task_id FROM tasks WHERE id = :id"), {"id": task_id}
            )
        async with self.session.get(
            f"{self.sandbox}/sandbox/tasks/{upstream_id}",
            headers={"authorization": f"Bearer {SANDBOX_KEY}"},
        ) as answer:
            data = (await answer.json())["data"]
        link = orjson.loads(data["param"])["callBackUrl"]
        return upstream_id, link, data["createTime"]

    async def poll_until(
        self, task_id: str, done: Callable[[dict[str, Any]], bool]
    ) -> float | None:
        deadline = time.perf_counter() + GIVE_UP_S
        while time.perf_counter() < deadline:
            async with self.session.get(
                f"{self.gateway}/v1/tasks/{task_id}", headers=self.auth()
            ) as answer:
                task = orjson.loads(await answer.read())
            if done(task):
                return time.perf_counter()
            await asyncio.sleep(self.opts.poll_interval_ms / 1000)
        return None

    async def call_back(
        self,
        task_id: str,
        kind: str,
        state: str,
        upstream_id: str,
        link: str,
        at_ms: int,
        watcher: Watcher,
        created: float,
    ) -> None:
        """At ``at_ms`` (Unix), once the sandbox's record shows ``state``, send the callback and
        time the change showing to a poller and to the event stream."""
        await asyncio.sleep(max(0.0, at_ms / 1000 + SETTLE_S - time.time()))
        record = await self.upstream_record(upstream_id)
        while record["state"] != state:
            await asyncio.sleep(0.005)
            record = await self.upstream_record(upstream_id)
        sample = Sample(kind, created)
        body = orjson.dumps({"code": 200, "msg": "success", "data": record})
        sent = time.perf_counter()
        async with self.session.post(
            link, data=body, headers={"content-type": "application/json"}
        ) as answer:
            ack = await answer.json()
        sample.ack_s = time.perf_counter() - sent
        sample.changed = bool(ack.get("changed"))
        polled = await self.poll_until(task_id, lambda task: task["state"] == state)
        streamed = await watcher.first(state, max(0.0, sent + GIVE_UP_S - time.perf_counter()))
        sample.poll_s = None if polled is None else polled - sent
        sample.sse_s = None if streamed is None else streamed - sent
        if streamed is not None and streamed < sent:
            self.problems.append(f"{task_id}: {state} streamed before its callback was sent")
        self.samples.append(sample)

    async def one_task(self) -> None:
        created = time.perf_counter() - self.started
        async with self.session.post(
            f"{self.gateway}/v1/videos/generations", json=BODY, headers=self.auth()
        ) as answer:
            if answer.status != 202:
                self.problems.append(f"create answered {answer.status}: {await answer.text()}")
                return
            task_id = (await answer.json())["task_id"]
        watcher = Watcher(self.session, f"{self.gateway}/v1/tasks/{task_id}/events", self.key)
        try:
            upstream_id, link, created_ms = await self.callback_link(task_id)
            waiting_ms = int(self.opts.waiting * 1000)
            done_ms = waiting_ms + int(self.opts.generating * 1000)
            await self.call_back(
                task_id,
                "progress",
                "generating",
                upstream_id,
                link,
                created_ms + waiting_ms,
                watcher,
                created,
            )
            await self.call_back(
                task_id,
                "success",
                "success",
                upstream_id,
                link,
                created_ms + done_ms,
                watcher,
                created,
            )
        finally:
            await watcher.close()


async def steady(run: Run) -> None:
    """``rate / 2`` tasks a second, evenly, for ``seconds``: ``rate`` callbacks a second."""
    per_s = run.opts.rate / 2
    jobs = []
    start = time.perf_counter()
    for n in range(int(run.opts.seconds * per_s)):
        await asyncio.sleep(max(0.0, start + n / per_s - time.perf_counter()))
        jobs.append(asyncio.create_task(run.one_task()))
    for outcome in await asyncio.gather(*jobs, return_exceptions=True):
        if isinstance(outcome, BaseException):
            run.problems.append(f"a task's measurement failed: {outcome!r}")


# ---------------------------------------------------------------- the run


def _after(seen: float | None, ack: float | None) -> float | None:
    return None if seen is None or ack is None else max(0.0, seen - ack)


def stats_ms(values: list[float | None]) -> dict[str, Any]:
    seen = [v * 1000 for v in values if v is not None]
    out: dict[str, Any] = {"count": len(values), "timed_out": len(values) - len(seen)}
    if seen:
        out |= {name: round(value, 1) for name, value in percentiles(seen).items()}
        out["within_budget_share"] = sum(v <= BUDGET_MS for v in seen) / len(values)
    return out


async def measure(opts: Options, url: str, workdir: Path) -> dict[str, Any]:
    sandbox_port, port = free_port(), free_port()
    sandbox_url, gateway_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{port}"
    sandbox_env = {
        **base_env(),
        "REELGATE_SANDBOX_API_KEY": SANDBOX_KEY,
        "REELGATE_SANDBOX_WAITING_S": str(opts.waiting),
        "REELGATE_SANDBOX_QUEUING_S": "0",
        "REELGATE_SANDBOX_GENERATING_S": str(opts.generating),
        # This script is the upstream's callback sender: the sandbox sends none itself.
        "REELGATE_SANDBOX_CALLBACK_LOST_SHARE": "1",
        "REELGATE_SANDBOX_CREDITS": "1000000000",
        "REELGATE_SANDBOX_SEED": "1",
        "REELGATE_SANDBOX_MEDIA_DIR": str(workdir / "sandbox-media"),
    }
    env = {
        **base_env(),
        "REELGATE_DATABASE_URL": url,
        "REELGATE_SECRET_KEY": secrets.token_hex(32),
        "REELGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "REELGATE_KIE_API_KEY": SANDBOX_KEY,
        "REELGATE_KIE_BASE_URL": sandbox_url,
        "REELGATE_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "REELGATE_MEDIA_DIR": str(workdir / "media"),
        "REELGATE_PUBLIC_URL": gateway_url,
        "REELGATE_PORT": str(port),
        "REELGATE_ENGINE_FIRST_POLL_S": NEVER_S,
        "REELGATE_ENGINE_POLL_MIN_S": NEVER_S,
        "REELGATE_ENGINE_POLL_MAX_S": NEVER_S,
    }
    if opts.change_poll_interval_s is not None:
        env["REELGATE_CHANGE_POLL_INTERVAL_S"] = str(opts.change_poll_interval_s)
    reelgate(["accounts", "create", "bench", "--credit-usd", "100000"], env, workdir)
    key = json.loads(reelgate(["keys", "create", "bench", "--json"], env, workdir))["key"]
    split = opts.deployment == "split"
    serve = [str(BIN / "reelgate"), "serve", *(["--no-engine"] if split else [])]
    with contextlib.ExitStack() as stack:
        sandbox = stack.enter_context(
            process(
                "sandbox",
                [str(BIN / "reelgate"), "sandbox", "--port", str(sandbox_port)],
                sandbox_env,
                CLIENT_CORE,
                workdir,
            )
        )
        wait_until_up(f"{sandbox_url}/api/v1/chat/credit", sandbox, workdir / "sandbox.log")
        gateway = stack.enter_context(process("serve", serve, env, SERVER_CORE, workdir))
        wait_until_up(f"{gateway_url}/v1/models", gateway, workdir / "serve.log")
        if split:
            stack.enter_context(
                process("engine", [str(BIN / "reelgate"), "engine"], env, CLIENT_CORE, workdir)
            )
        db = create_async_engine(Settings(database_url=url).database_url)
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                run = Run(opts, gateway_url, sandbox_url, key, db, session)
                # One task first, unmeasured: the sandbox renders the (shared) video once.
                await run.one_task()
                run.samples.clear()
                run.started = time.perf_counter()
                await steady(run)
        finally:
            await db.dispose()
    kept = [s for s in run.samples if s.created >= opts.warmup]
    figures: dict[str, Any] = {}
    for kind in ("progress", "success"):
        of_kind = [s for s in kept if s.kind == kind]
        figures[kind] = {
            "poll_ms": stats_ms([s.poll_s for s in of_kind]),
            "event_stream_ms": stats_ms([s.sse_s for s in of_kind]),
            "callback_answer_ms": stats_ms([s.ack_s for s in of_kind]),
            # What follows the callback's answer: the change feed, the cache, the stream (and
            # for a success, the engine's copy of the video).
            "poll_after_answer_ms": stats_ms([_after(s.poll_s, s.ack_s) for s in of_kind]),
            "event_stream_after_answer_ms": stats_ms([_after(s.sse_s, s.ack_s) for s in of_kind]),
            "callbacks_that_changed_nothing": sum(not s.changed for s in of_kind),
        }
    return {"figures": figures, "problems": run.problems[:20], "problem_count": len(run.problems)}


def summary(report: dict[str, Any]) -> None:
    opts = report["options"]
    print(
        f"\n{opts['database']} ({opts['deployment']}), {opts['rate']:g} callbacks/s for "
        f"{opts['seconds']:g} s; from the callback sent to the change seen, in ms "
        f"(poll every {opts['poll_interval_ms']:g} ms):"
    )
    print(f"  {'':<34}{'p50':>8}{'p99':>8}{'max':>8}  {'<= 100 ms':>9}  timed out")
    for kind in ("progress", "success"):
        for channel, label in (
            ("poll_ms", "GET /v1/tasks/{id}"),
            ("event_stream_ms", "event stream"),
            ("callback_answer_ms", "(callback's own answer)"),
            ("poll_after_answer_ms", "(poll, after the answer)"),
            ("event_stream_after_answer_ms", "(stream, after the answer)"),
        ):
            row = report["figures"][kind][channel]
            name = f"{kind:<9}{label}"
            if "p50" not in row:
                print(f"  {name:<34}  no sample")
                continue
            print(
                f"  {name:<34}{row['p50']:>8.1f}{row['p99']:>8.1f}{row['max']:>8.1f}  "
                f"{row['within_budget_share']:>9.1%}  {row['timed_out']}"
            )
    if report["problem_count"]:
        print(f"  problems: {report['problem_count']}, e.g. {report['problems'][0]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--deployment", choices=["serve", "split"], default="serve")
    parser.add_argument("--rate", type=float, default=20, help="callbacks a second")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=3, help="tasks created before: unmeasured")
    parser.add_argument("--poll-interval-ms", type=float, default=5)
    parser.add_argument("--waiting", type=float, default=2, help="seconds at the sandbox")
    parser.add_argument("--generating", type=float, default=2, help="seconds at the sandbox")
    parser.add_argument(
        "--change-poll-interval-s",
        type=float,
        help="REELGATE_CHANGE_POLL_INTERVAL_S: how often a process on SQLite reads the changes",
    )
    args = parser.parse_args()
    opts = Options(**vars(args))
    if opts.deployment == "split" and opts.database != "postgres":
        parser.error("--deployment split needs --database postgres")
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        sys.exit("this benchmark pins the gateway and the load to two cores (needs taskset)")
    os.sched_setaffinity(0, {CLIENT_CORE})
    signal.signal(signal.SIGTERM, raise_interrupt)
    load_average = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory() as tmp, database(opts.database, Path(tmp)) as url:
            result = asyncio.run(measure(opts, url, Path(tmp)))
    except KeyboardInterrupt:
        sys.exit("interrupted: the processes are stopped and the bench database dropped")
    report = {
        "options": vars(args) | {"server_core": SERVER_CORE, "client_core": CLIENT_CORE},
        "load_average_at_start": load_average,
        "budget_p99_ms": BUDGET_MS,
        **result,
    }
    summary(report)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    name = f"callback_latency-{opts.database}-{opts.deployment}-{time.strftime('%Y%m%dT%H%M%S')}"
    out = out_dir / f"{name}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nreport: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
