"""Measure the task engine's upstream polls per second, and how late its polls are, against a
database-free aiohttp loop doing the same recordInfo GETs, in one run.

The KIE-compatible sandbox (``reelgate sandbox``) runs pinned to core 0 and holds N tasks that
never finish. This process, pinned to core 1, then measures in turn (C = --concurrency):

1. baseline: C workers GETting recordInfo through one aiohttp session (the client library the
   KIE adaptor uses), no database: the most the sandbox and the HTTP client give;
2. provider: the same through ``KieProvider.fetch_status`` (its client settings and parsing);
3. sandbox ceiling: the same from a minimal HTTP/1.1 client, to show what limits the baseline;
4. engine throughput: ``Engine`` (in this process, as ``reelgate engine`` runs it) over N
   unfinished tasks that are all due at once;
5. engine lag: R x S tasks falling due evenly over S seconds (R polls/s offered, the rest of the
   N tasks in flight but not due); a poll's lateness is when its recordInfo was sent minus the
   task's ``next_poll_at_ms``.

The ratio engine / baseline holds from machine to machine. The DESIGN.md budget: at least
1,000 upstream polls/s per engine process, each poll within 1 s of when it is due. Timings are
reported, never asserted. PostgreSQL's server is not pinned: it shares both cores.

    .venv/bin/python bench/engine_ratio.py [--database sqlite|postgres] [--tasks 20000]
        [--seconds 10] [--warmup 6] [--concurrency 64] [--rate 1000]
        [--state generating|waiting] [--loop asyncio|uvloop] [--upstream-latency-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import httpx
import orjson
import sqlalchemy as sa

from reelgate.config import Settings
from reelgate.domain.ids import new_id
from reelgate.domain.upstream import UpstreamStatus
from reelgate.engine.process import EngineProcess
from reelgate.services.destinations import Reach
from reelgate.store.database import Database
from reelgate.store.migrate import upgrade
from reelgate.store.schema import accounts, api_keys, tasks
from reelgate.upstream.kie import CREATE_PATH, RECORD_PATH, KieProvider

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
SANDBOX_KEY = "bench-sandbox-key"
SANDBOX_CORE, BENCH_CORE = 0, 1
NEVER_S = 1_000_000
"""Longer than any run: sandbox tasks never finish, and a polled task is not due again."""
HTTP_TIMEOUT = httpx.Timeout(10, connect=5)
LAG_GRACE_S = 5.0
"""How long the lag phase runs past the last due time, so that late polls are still seen."""
INSERT_CHUNK = 5_000
PARKED_MS = 10**15
"""Far beyond any real time (the year 33658), where due times wait to be moved into place."""

# The cheapest upstream request (4 s at 480p, seedance-2-fast) and its row as the gateway keeps it.
UPSTREAM_BODY = {
    "model": "bytedance/seedance-2-fast",
    "input": {"prompt": "a paper boat on a pond", "resolution": "480p", "duration": 4},
}
GATEWAY_REQUEST = {
    "model": "seedance-2-fast",
    "prompt": "a paper boat on a pond",
    "resolution": "480p",
    "aspect_ratio": "16:9",
    "duration": 4,
    "generate_audio": False,
}
PRICE_PER_SECOND = 77_500  # 15.5 KIE credits x 0.005 USD, in micro-USDC
COST = PRICE_PER_SECOND * 4


@dataclass(frozen=True, slots=True)
class Options:
    database: str
    tasks: int
    seconds: float
    warmup: float
    concurrency: int
    batch: int
    rate: float
    state: str
    loop: str
    upstream_latency_ms: int


# ---------------------------------------------------------------- processes and databases


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sandbox_env(state: str, latency_ms: int) -> dict[str, str]:
    """Tasks that stay in ``state`` for longer than any run; credits for any number of them;
    recordInfo answered after ``latency_ms``, as a distant upstream would."""
    stages = {"waiting": ("1000000", "0", "0"), "generating": ("0", "0", "1000000")}[state]
    waiting, queuing, generating = stages
    return {
        **os.environ,
        "REELGATE_SANDBOX_API_KEY": SANDBOX_KEY,
        "REELGATE_SANDBOX_WAITING_S": waiting,
        "REELGATE_SANDBOX_QUEUING_S": queuing,
        "REELGATE_SANDBOX_GENERATING_S": generating,
        "REELGATE_SANDBOX_CREDITS": "1000000000000",
        "REELGATE_SANDBOX_SEED": "1",
        "REELGATE_SANDBOX_FAULTS__RECORD__LATENCY_MS": str(latency_ms),
    }


@contextlib.contextmanager
def sandbox(opts: Options, workdir: Path) -> Iterator[str]:
    """``reelgate sandbox`` pinned to its core, stopped however the block ends; yields its URL."""
    port = free_port()
    log = (workdir / "sandbox.log").open("wb")
    process = subprocess.Popen(
        ["taskset", "-c", str(SANDBOX_CORE), str(BIN / "reelgate"), "sandbox", "--port", str(port)],
        env={
            **sandbox_env(opts.state, opts.upstream_latency_ms),
            "REELGATE_SANDBOX_MEDIA_DIR": str(workdir / "sandbox-media"),
        },
        cwd=workdir,
        # uvicorn logs every request at info; the log is only read when the sandbox fails.
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process, workdir / "sandbox.log")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def wait_until_up(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the sandbox exited:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{base}/sandbox/stats", headers=auth(), timeout=1).raise_for_status()
            return
        time.sleep(0.1)
    raise RuntimeError(f"the sandbox at {base} did not come up within 30 s")


def auth() -> dict[str, str]:
    return {"authorization": f"Bearer {SANDBOX_KEY}"}


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh, migrated database for this run (dropped afterwards); yields its async URL."""
    if kind == "sqlite":
        url = Settings(database_url=f"sqlite:///{workdir / 'bench.db'}").database_url
        upgrade(url)
        yield url
        return
    name = f"reelgate_bench_{uuid.uuid4().hex[:8]}"
    psql(f'CREATE DATABASE "{name}"')
    try:
        url = Settings(database_url=f"{PG_SERVER}/{name}").database_url
        upgrade(url)
        yield url
    finally:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', check=False)


def psql(sql: str, *, check: bool = True) -> None:
    subprocess.run(
        ["psql", f"{PG_SERVER}/postgres", "-qc", sql], check=check, timeout=60, capture_output=True
    )


def raise_interrupt(_signum: int, _frame: object) -> NoReturn:
    """SIGTERM cleans up as Ctrl-C does: processes stopped, the database dropped."""
    raise KeyboardInterrupt


# ---------------------------------------------------------------- the backlog


class LoopbackHttp:
    """A minimal HTTP/1.1 client: ``size`` keep-alive connections to one loopback server and no
    pool logic. It builds the backlog (httpx creates only a few hundred tasks a second here) and
    shows what the sandbox itself can answer."""

    def __init__(self, base: str) -> None:
        self.url = httpx.URL(base)
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )

    async def open(self, size: int) -> None:
        for _ in range(size):
            self.idle.put_nowait(await asyncio.open_connection(self.url.host, self.url.port))

    async def request(self, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
        """The status and body of one answer (within the read timeout)."""
        reader, writer = await self.idle.get()
        writer.write(
            f"{method} {target} HTTP/1.1\r\nHost: {self.url.host}\r\n"
            f"Authorization: Bearer {SANDBOX_KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HTTP_TIMEOUT.read)
        lines = head.lower().split(b"\r\n")
        length = next(int(line[15:]) for line in lines if line.startswith(b"content-length:"))
        answer = await asyncio.wait_for(reader.readexactly(length), HTTP_TIMEOUT.read)
        self.idle.put_nowait((reader, writer))
        return int(lines[0].split()[1]), answer

    async def aclose(self) -> None:
        while not self.idle.empty():
            self.idle.get_nowait()[1].close()


async def create_upstream(base: str, count: int) -> list[str]:
    """Create ``count`` tasks at the sandbox, so that every poll reads a real task."""
    ids: list[str] = []
    http, concurrency = LoopbackHttp(base), 16
    body = orjson.dumps(UPSTREAM_BODY)

    async def worker(share: int) -> None:
        for _ in range(share):
            status, answer = await http.request("POST", CREATE_PATH, body)
            data = orjson.loads(answer)
            if status != 200 or data.get("code") != 200:
                raise RuntimeError(f"the sandbox refused a create: {data}")
            ids.append(data["data"]["taskId"])

    try:
        await http.open(concurrency)
        shares = [count // concurrency + (i < count % concurrency) for i in range(concurrency)]
        await asyncio.gather(*(worker(share) for share in shares))
    finally:
        await http.aclose()
    return ids


async def insert_backlog(db: Database, upstream_ids: list[str], state: str) -> list[str]:
    """One account, one key, and a task row per upstream task as the gateway leaves it after a
    create: accepted upstream, money reserved, not due yet. Returns the task ids."""
    now_ms = int(time.time() * 1000)
    now = now_ms // 1000
    account_id, key_id = new_id("acct"), new_id("key")
    rows = [task_row(new_id("task"), account_id, key_id, up, state, now_ms) for up in upstream_ids]
    async with db.write() as conn:
        await conn.execute(
            accounts.insert().values(
                id=account_id,
                name="bench",
                balance_micro_usdc=2 * COST * len(rows),
                reserved_micro_usdc=COST * len(rows),
                created_at=now,
                webhook_secret="whsec_" + "0" * 32,
            )
        )
        await conn.execute(
            api_keys.insert().values(
                id=key_id,
                account_id=account_id,
                key_hash=hashlib.sha256(key_id.encode()).hexdigest(),
                prefix="rg_bench",
                created_at=now,
            )
        )
    for start in range(0, len(rows), INSERT_CHUNK):
        async with db.write() as conn:
            await conn.execute(tasks.insert(), rows[start : start + INSERT_CHUNK])
    return [row["id"] for row in rows]


def task_row(
    task_id: str, account_id: str, key_id: str, upstream_id: str, state: str, now_ms: int
) -> dict[str, Any]:
    return {
        "id": task_id,
        "account_id": account_id,
        "key_id": key_id,
        "model": GATEWAY_REQUEST["model"],
        "state": state,
        "progress": 15 if state == "generating" else 0,
        "request": orjson.dumps(GATEWAY_REQUEST).decode(),
        "channel": "kie",
        "upstream_task_id": upstream_id,
        "submission": "accepted",
        "billing_status": "reserved",
        "tier": "480p_no_video",
        "price_per_second_micro_usdc": PRICE_PER_SECOND,
        "duration": 4,
        "margin_ppm": 1_000_000,
        "cost_micro_usdc": COST,
        "created_at": now_ms // 1000,
        "updated_at": now_ms // 1000,
        "next_poll_at_ms": now_ms + NEVER_S * 1000,
        "polls": 0,
        "deadline_at_ms": now_ms + NEVER_S * 1000,
        "state_since_ms": now_ms,
    }


async def schedule(db: Database, offsets_ms: Mapping[str, int]) -> int:
    """Make the tasks in ``offsets_ms`` due that long after a start a second from now, every
    other one not due, no lease held; return the start (Unix ms).

    Writing thousands of due times takes a while, so they are first parked beyond
    PARKED_MS and then moved to the start in one statement: none falls due before the
    engine runs."""
    async with db.write() as conn:
        await conn.execute(
            tasks.update().values(
                next_poll_at_ms=int(time.time() * 1000) + NEVER_S * 1000,
                lease_owner=None,
                lease_until_ms=None,
            )
        )
        if offsets_ms:
            await conn.execute(
                tasks.update()
                .where(tasks.c.id == sa.bindparam("task_id"))
                .values(next_poll_at_ms=PARKED_MS + sa.bindparam("offset", type_=sa.BigInteger)),
                [{"task_id": task_id, "offset": off} for task_id, off in offsets_ms.items()],
            )
    start_ms = int(time.time() * 1000) + 1000  # the engine is up by then
    async with db.write() as conn:
        await conn.execute(
            tasks.update()
            .where(tasks.c.next_poll_at_ms >= PARKED_MS)
            .values(next_poll_at_ms=tasks.c.next_poll_at_ms - PARKED_MS + start_ms)
        )
    return start_ms


async def make_all_due(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(
            tasks.update().values(
                next_poll_at_ms=int(time.time() * 1000), lease_owner=None, lease_until_ms=None
            )
        )


async def checks_done(db: Database) -> int:
    """Checks the engine finished (each reschedule counts one), as the database saw them."""
    async with db.read() as conn:
        done = await conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(tasks.c.polls), 0)))
        return int(done or 0)


async def sandbox_stats(base: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
        answer = await client.get(f"{base}/sandbox/stats", headers=auth())
        answer.raise_for_status()
        stats: dict[str, Any] = answer.json()
        return stats


async def prime_render(base: str, upstream_id: str) -> None:
    """A generating sandbox task starts its (shared, cached) ffmpeg render when first seen; let
    it finish before anything is measured, so it takes no time from the sandbox's core."""
    async with httpx.AsyncClient(base_url=base, headers=auth(), timeout=HTTP_TIMEOUT) as client:
        (await client.get(RECORD_PATH, params={"taskId": upstream_id})).raise_for_status()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            detail = (await client.get(f"/sandbox/tasks/{upstream_id}")).json()["data"]["sandbox"]
            if detail["renderReady"] or detail["renderError"]:
                return
            await asyncio.sleep(0.1)
    raise RuntimeError("the sandbox's render did not finish within 60 s")


# ---------------------------------------------------------------- the references


@dataclass(frozen=True, slots=True)
class Rate:
    polls_per_s: float
    cpu_share: float
    """CPU time of this process (all its threads) over wall time: near 1.0, its core was the
    limit; well below, it waited (for the sandbox, the database, or a timer)."""


class Stopwatch:
    """Wall and CPU time from its creation."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.wall

    def cpu_share(self) -> float:
        return (time.process_time() - self.cpu) / self.elapsed_s()


async def closed_loop(
    call: Callable[[str], Awaitable[object]],
    upstream_ids: list[str],
    concurrency: int,
    warmup: float,
    seconds: float,
) -> Rate:
    """Calls per second that ``concurrency`` workers, each calling as soon as its last call
    answered, get over ``seconds`` after ``warmup``."""
    done = 0
    stop = asyncio.Event()

    async def worker(offset: int) -> None:
        nonlocal done
        i = offset
        while not stop.is_set():
            await call(upstream_ids[i % len(upstream_ids)])
            done += 1
            i += concurrency

    workers = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    try:
        await asyncio.sleep(warmup)
        watch, start_done = Stopwatch(), done
        await asyncio.sleep(seconds)
        rate = Rate((done - start_done) / watch.elapsed_s(), watch.cpu_share())
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*workers), timeout=30)
    return rate


async def baseline(base: str, upstream_ids: list[str], opts: Options) -> Rate:
    """Bare recordInfo GETs from one aiohttp session, as the adaptor's client but without its
    parsing or anything else."""
    async with aiohttp.ClientSession(
        headers=auth(), connector=aiohttp.TCPConnector(limit=max(200, opts.concurrency))
    ) as session:

        async def get(upstream_id: str) -> None:
            async with session.get(base + RECORD_PATH, params={"taskId": upstream_id}) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"recordInfo answered {answer.status}")

        return await closed_loop(get, upstream_ids, opts.concurrency, opts.warmup, opts.seconds)


async def provider_only(base: str, upstream_ids: list[str], opts: Options) -> Rate:
    """The same through the KIE adaptor's fetch_status: its client settings and its parsing."""
    provider = KieProvider(base, SANDBOX_KEY)
    try:
        return await closed_loop(
            provider.fetch_status, upstream_ids, opts.concurrency, opts.warmup, opts.seconds
        )
    finally:
        await provider.aclose()


async def sandbox_ceiling(base: str, upstream_ids: list[str], opts: Options) -> Rate:
    """The same GETs from the minimal client: what the sandbox itself answers, to tell whether
    it or the HTTP client limits the baseline."""
    http = LoopbackHttp(base)

    async def get(upstream_id: str) -> None:
        status, _ = await http.request("GET", f"{RECORD_PATH}?taskId={upstream_id}")
        if status != 200:
            raise RuntimeError(f"recordInfo answered {status}")

    try:
        await http.open(opts.concurrency)
        return await closed_loop(get, upstream_ids, opts.concurrency, opts.warmup, opts.seconds)
    finally:
        await http.aclose()


# ---------------------------------------------------------------- the engine


class TimedProvider:
    """The KIE adaptor, noting when each status check is sent (Unix ms) and for which task."""

    def __init__(self, inner: KieProvider) -> None:
        self.inner = inner
        self.channel = inner.channel
        self.sent: list[tuple[float, str]] = []
        self.submit = inner.submit
        self.read_callback = inner.read_callback
        self.find_created = inner.find_created
        self.probe = inner.probe

    async def fetch_status(self, upstream_task_id: str) -> UpstreamStatus:
        self.sent.append((time.time() * 1000, upstream_task_id))
        return await self.inner.fetch_status(upstream_task_id)

    async def aclose(self) -> None:
        await self.inner.aclose()


def engine_settings(url: str, base: str, opts: Options, workdir: Path) -> Settings:
    return Settings(
        database_url=url,
        kie_base_url=base,
        kie_api_key=SANDBOX_KEY,
        # The default budget (50/s) is a production safety net; here the engine itself is measured.
        engine_requests_per_s=1_000_000,
        engine_concurrency=opts.concurrency,
        engine_batch=opts.batch,
        # A checked task is not due again within the run, so every poll is of a task made due
        # by the benchmark and its lateness is known.
        engine_poll_min_s=NEVER_S,
        engine_poll_max_s=NEVER_S,
        media_dir=workdir / "media",
    )


@dataclass(frozen=True, slots=True)
class EngineRun:
    sent: list[tuple[float, str]]
    """Each status check the engine sent: Unix ms, upstream task id."""
    rate: Rate
    """Over the measured window, after the warmup."""


async def run_engine(db: Database, settings: Settings, warmup: float, seconds: float) -> EngineRun:
    """Run one engine for ``warmup`` and then ``seconds`` more, measured."""
    key = settings.kie_api_key
    assert key is not None
    provider = TimedProvider(KieProvider(settings.kie_base_url, key.get_secret_value()))
    # The whole engine as `reelgate engine` runs it; no task ends, so no webhook is sent.
    engine = EngineProcess(db, settings, provider, lambda _task: b"", Reach())
    stop = asyncio.Event()
    job = asyncio.create_task(engine.run(stop))
    try:
        await asyncio.sleep(warmup)
        watch, start_ms = Stopwatch(), time.time() * 1000
        await asyncio.sleep(seconds)
        end_ms, cpu_share = time.time() * 1000, watch.cpu_share()
    finally:
        stop.set()
        await asyncio.wait_for(job, timeout=30)
        await provider.aclose()
    polls = sum(1 for at, _ in provider.sent if start_ms <= at < end_ms)
    return EngineRun(provider.sent, Rate(polls * 1000 / (end_ms - start_ms), cpu_share))


async def engine_throughput(
    db: Database, settings: Settings, base: str, task_ids: list[str], opts: Options
) -> dict[str, Any]:
    """Every task due now; polls per second over ``seconds`` after ``warmup``."""
    await make_all_due(db)
    before_db, before_up = await checks_done(db), (await sandbox_stats(base))["record_calls"]
    run = await run_engine(db, settings, opts.warmup, opts.seconds)
    stats = await sandbox_stats(base)
    return {
        "polls_per_s": run.rate.polls_per_s,
        "cpu_share": run.rate.cpu_share,
        "polls_sent": len(run.sent),
        "recordinfo_calls_at_sandbox": stats["record_calls"] - before_up,
        "checks_finished_in_db": await checks_done(db) - before_db,
        "overlapping_polls_at_sandbox": stats["overlapping_polls"],
        # Then the engine idled within the window and polls_per_s understates it.
        "backlog_drained": len(run.sent) >= len(task_ids),
    }


async def engine_lag(
    db: Database, settings: Settings, upstream_of: dict[str, str], opts: Options
) -> dict[str, Any]:
    """``rate`` tasks a second fall due, evenly, for ``seconds``; how late each is polled."""
    due_count = int(opts.rate * opts.seconds)
    offsets = {
        task_id: int(i * 1000 / opts.rate)
        for i, task_id in enumerate(list(upstream_of)[:due_count])
    }
    start_ms = await schedule(db, offsets)
    due_by_upstream = {upstream_of[task_id]: start_ms + off for task_id, off in offsets.items()}
    run_s = (start_ms - time.time() * 1000) / 1000 + opts.seconds + LAG_GRACE_S
    run = await run_engine(db, settings, 0, run_s)
    sent, ended_ms = run.sent, time.time() * 1000
    first: dict[str, float] = {}
    for at, upstream_id in sent:
        first.setdefault(upstream_id, at)
    lags = [(first.get(up, ended_ms) - due) / 1000 for up, due in due_by_upstream.items()]
    unpolled = sum(1 for up in due_by_upstream if up not in first)
    return {
        "offered_polls_per_s": opts.rate,
        "cpu_share": run.rate.cpu_share,
        "due_tasks": due_count,
        "polled": due_count - unpolled,
        "unpolled_at_end": unpolled,
        # An unpolled task counts as late as the run was long: the figures are then lower bounds.
        "lag_s": percentiles(lags),
        "lag_is_lower_bound": unpolled > 0,
        "within_1s_share": sum(1 for lag in lags if lag <= 1) / len(lags),
        "polls_of_not_due_tasks": sum(1 for _, up in sent if up not in due_by_upstream),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def rank(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return {
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": ordered[-1],
    }


# ---------------------------------------------------------------- the run


async def measure(opts: Options, url: str, base: str, workdir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    upstream_ids = await create_upstream(base, opts.tasks)
    if opts.state == "generating":
        await prime_render(base, upstream_ids[0])
    db = Database(url)
    try:
        task_ids = await insert_backlog(db, upstream_ids, opts.state)
        print(f"backlog of {opts.tasks:,} tasks ready in {time.perf_counter() - started:.1f} s")
        references = {
            "baseline": await baseline(base, upstream_ids, opts),
            "provider": await provider_only(base, upstream_ids, opts),
            "sandbox_ceiling": await sandbox_ceiling(base, upstream_ids, opts),
        }
        for name, rate in references.items():
            show(name, rate)
        settings = engine_settings(url, base, opts, workdir)
        throughput = await engine_throughput(db, settings, base, task_ids, opts)
        show("engine", Rate(throughput["polls_per_s"], throughput["cpu_share"]))
        lag = await engine_lag(db, settings, dict(zip(task_ids, upstream_ids, strict=True)), opts)
    finally:
        await db.dispose()
    return {
        **{name: dataclasses.asdict(rate) for name, rate in references.items()},
        "engine": throughput,
        "lag": lag,
        "ratio": throughput["polls_per_s"] / references["baseline"].polls_per_s,
        "ratio_to_provider": throughput["polls_per_s"] / references["provider"].polls_per_s,
    }


LABELS = {
    "baseline": "baseline  (aiohttp loop, no database)",
    "provider": "provider  (KieProvider, no database)",
    "sandbox_ceiling": "sandbox   (minimal HTTP/1.1 client)",
    "engine": "engine    (all tasks due)",
}


def show(name: str, rate: Rate) -> None:
    print(
        f"{LABELS[name]:<38}{rate.polls_per_s:>8,.0f} polls/s   this core busy "
        f"{rate.cpu_share:.0%}",
        flush=True,
    )


def run_async(opts: Options, work: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """On the loop asked for: ``reelgate engine`` runs asyncio's, ``reelgate serve`` uvloop."""
    factory = None
    if opts.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(work)


def summary(opts: Options, report: dict[str, Any]) -> None:
    lag, engine = report["lag"], report["engine"]
    pct = lag["lag_s"]
    bound = "  (lower bounds: some never polled)" if lag["lag_is_lower_bound"] else ""
    print()
    print(f"engine / baseline   {report['ratio']:.2f}    engine / provider  ", end="")
    print(f"{report['ratio_to_provider']:.2f}    (budget: >= 1,000 polls/s per process)")
    print(
        f"checks: {engine['polls_sent']:,} sent, {engine['recordinfo_calls_at_sandbox']:,} seen "
        f"by the sandbox, {engine['checks_finished_in_db']:,} finished in the database; "
        f"{engine['overlapping_polls_at_sandbox']} overlapping"
    )
    print(
        f"lag at {opts.rate:,.0f} polls/s offered over {opts.seconds:g} s "
        f"({lag['due_tasks']:,} due, {opts.tasks:,} in flight): p50 {pct['p50']:.3f} s  "
        f"p95 {pct['p95']:.3f} s  p99 {pct['p99']:.3f} s  max {pct['max']:.3f} s{bound}"
    )
    print(
        f"  polled within 1 s: {lag['within_1s_share']:.1%}   unpolled after "
        f"{LAG_GRACE_S:g} s grace: {lag['unpolled_at_end']:,}   (budget: all within 1 s)"
    )


def parse_options() -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    # Fewer would run out: the engine checks several thousand a second.
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks in flight")
    parser.add_argument("--seconds", type=float, default=10, help="length of each measurement")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured time before each")
    parser.add_argument("--concurrency", type=int, default=Settings().engine_concurrency)
    parser.add_argument("--batch", type=int, default=Settings().engine_batch)
    parser.add_argument("--rate", type=float, default=1000, help="polls/s offered in the lag run")
    parser.add_argument("--state", choices=["generating", "waiting"], default="generating")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument(
        "--upstream-latency-ms", type=int, default=0, help="the sandbox's recordInfo delay"
    )
    args = parser.parse_args()
    opts = Options(**vars(args))
    if opts.rate * opts.seconds > opts.tasks:
        parser.error("--rate x --seconds tasks fall due in the lag run: raise --tasks")
    return opts


def main() -> None:
    opts = parse_options()
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        sys.exit("this benchmark pins the sandbox and the engine to two cores (needs taskset)")
    # The engine, the references and (on SQLite) the database all run on this process's core.
    os.sched_setaffinity(0, {BENCH_CORE})
    signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            sandbox(opts, Path(tmp)) as base,
            database(opts.database, Path(tmp)) as url,
        ):
            report = run_async(opts, measure(opts, url, base, Path(tmp)))
    except KeyboardInterrupt:
        sys.exit("interrupted: the sandbox is stopped and the bench database dropped")
    options = dataclasses.asdict(opts) | {"sandbox_core": SANDBOX_CORE, "bench_core": BENCH_CORE}
    report = {"options": options, **report}
    summary(opts, report)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"engine_ratio-{opts.database}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nreport: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
