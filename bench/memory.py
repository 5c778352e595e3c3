"""Measure the resident memory (RSS) of ``reelgate serve`` and of one ``reelgate engine`` with
100,000 tasks in flight, against the budget of 300 MB each (DESIGN.md).

The backlog is made as ``engine_ratio.py`` makes it: ``reelgate sandbox`` (pinned to core 0)
holds ``--tasks`` tasks that never finish, and a task row for each (accepted upstream, money
reserved) is inserted into a fresh database, owned by an account made with the command line
so that its key can read them. Then, with the gateway's processes on core 1:

1. ``reelgate serve --no-engine`` starts: its RSS idle;
2. a client reads every task once (``GET /v1/tasks/{id}``, ``--concurrency`` at a time), which
   fills the poll cache (at most ``REELGATE_TASK_CACHE_MB``, 96 MiB by default); then
   once more, from the cache: serve's RSS after each pass;
3. ``reelgate engine`` starts with every task due at once and no request budget (so that it
   checks as fast as it can: several thousand a second) and runs ``--seconds``; its RSS is
   sampled every half second, and serve's too, whose cache each check's change notice
   touches.

The poll cache is bounded by bytes (its bodies' largest part is the request as accepted: a
prompt may have 20,000 characters); ``--prompt-chars`` sets the prompts' length. RSS is read
from ``/proc/<pid>/status`` (``VmRSS``; ``VmHWM`` is the peak). Figures are reported, never
asserted; a JSON report lands in ``bench/results/``. PostgreSQL's server is not pinned and its
memory is not counted.

    .venv/bin/python bench/memory.py [--database sqlite|postgres] [--tasks 100000]
        [--seconds 30] [--concurrency 32] [--prompt-chars N]
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import sqlalchemy as sa

# engine_ratio is a script beside this one: run as one, this directory is on sys.path.
from engine_ratio import (
    COST,
    GATEWAY_REQUEST,
    INSERT_CHUNK,
    SANDBOX_KEY,
    Options,
    create_upstream,
    database,
    free_port,
    raise_interrupt,
    sandbox,
    task_row,
)

from reelgate.domain.ids import new_id
from reelgate.store.database import Database
from reelgate.store.schema import accounts, tasks

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GATEWAY_CORE = 1
BUDGET_MB = 300
NEVER_S = "1000000"


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of a process, in MB (10^6 bytes)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024 / 1e6
    return fields["VmRSS"], fields["VmHWM"]


@contextlib.contextmanager
def gateway_process(
    name: str, args: list[str], env: dict[str, str], workdir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    log = (workdir / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        ["taskset", "-c", str(GATEWAY_CORE), str(BIN / "reelgate"), *args],
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


def until_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within 60 s")


def cli(args: list[str], env: dict[str, str], workdir: Path) -> dict[str, Any]:
    out = subprocess.run(
        [str(BIN / "reelgate"), *args, "--json"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    answer: dict[str, Any] = json.loads(out)
    return answer


async def insert_tasks(
    url: str, account_id: str, key_id: str, upstream_ids: list[str], prompt_chars: int | None
) -> list[str]:
    """A task row per upstream task, owned by the account, money reserved, none due yet; with
    ``prompt_chars``, each with a prompt that long (the poll cache keeps every body whole)."""
    now_ms = int(time.time() * 1000)
    rows = [
        task_row(new_id("task"), account_id, key_id, upstream, "generating", now_ms)
        for upstream in upstream_ids
    ]
    if prompt_chars is not None:
        request = {
            **GATEWAY_REQUEST,
            "prompt": ("a paper boat on a pond " * prompt_chars)[:prompt_chars],
        }
        for row in rows:
            row["request"] = orjson.dumps(request).decode()
    db = Database(url)
    try:
        async with db.write() as conn:
            await conn.execute(
                accounts.update()
                .where(accounts.c.id == account_id)
                .values(
                    balance_micro_usdc=2 * COST * len(rows),
                    reserved_micro_usdc=COST * len(rows),
                )
            )
        for start in range(0, len(rows), INSERT_CHUNK):
            async with db.write() as conn:
                await conn.execute(tasks.insert(), rows[start : start + INSERT_CHUNK])
    finally:
        await db.dispose()
    return [row["id"] for row in rows]


async def all_due(url: str) -> None:
    db = Database(url)
    try:
        async with db.write() as conn:
            await conn.execute(tasks.update().values(next_poll_at_ms=int(time.time() * 1000)))
    finally:
        await db.dispose()


async def checks_done(url: str) -> int:
    db = Database(url)
    try:
        async with db.read() as conn:
            return int(await conn.scalar(sa.select(sa.func.sum(tasks.c.polls))) or 0)
    finally:
        await db.dispose()


async def read_every_task(base: str, key: str, task_ids: list[str], concurrency: int) -> float:
    """GET every task once, ``concurrency`` at a time; requests per second."""
    headers = {"authorization": f"Bearer {key}"}
    queue = iter(task_ids)
    started = time.perf_counter()
    async with aiohttp.ClientSession(
        headers=headers, connector=aiohttp.TCPConnector(limit=concurrency)
    ) as session:

        async def worker() -> None:
            for task_id in queue:
                async with session.get(f"{base}/v1/tasks/{task_id}") as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(f"GET {task_id} answered {answer.status}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(task_ids) / (time.perf_counter() - started)


async def measure(args: argparse.Namespace, url: str, base: str, workdir: Path) -> dict[str, Any]:
    port = free_port()
    gateway = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")},
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "REELGATE_DATABASE_URL": url,
        "REELGATE_SECRET_KEY": secrets.token_hex(32),
        "REELGATE_ADMIN_TOKEN": "rga_bench-admin-token",
        "REELGATE_KIE_API_KEY": SANDBOX_KEY,
        "REELGATE_KIE_BASE_URL": base,
        "REELGATE_MEDIA_DIR": str(workdir / "media"),
        "REELGATE_PORT": str(port),
        # As engine_ratio.py runs it: the engine itself is measured, not the production budget.
        "REELGATE_ENGINE_REQUESTS_PER_S": "1000000",
        "REELGATE_ENGINE_POLL_MIN_S": NEVER_S,
        "REELGATE_ENGINE_POLL_MAX_S": NEVER_S,
    }
    account = cli(["accounts", "create", "bench"], env, workdir)
    issued = cli(["keys", "create", "bench"], env, workdir)
    started = time.perf_counter()
    upstream_ids = await create_upstream(base, args.tasks)
    task_ids = await insert_tasks(url, account["id"], issued["id"], upstream_ids, args.prompt_chars)
    print(f"backlog of {args.tasks:,} tasks ready in {time.perf_counter() - started:.1f} s")
    report: dict[str, Any] = {"budget_mb": BUDGET_MB}
    with gateway_process("serve", ["serve", "--no-engine"], env, workdir) as serve:
        until_up(f"{gateway}/v1/models", serve, workdir / "serve.log")
        await asyncio.sleep(1)
        report["serve_idle_mb"] = rss_mb(serve.pid)[0]
        show("serve, idle", report["serve_idle_mb"])
        rate = await read_every_task(gateway, issued["key"], task_ids, args.concurrency)
        report["serve_after_reading_every_task_mb"] = rss_mb(serve.pid)[0]
        show(
            f"serve, every task read once ({rate:,.0f}/s)",
            report["serve_after_reading_every_task_mb"],
        )
        rate = await read_every_task(gateway, issued["key"], task_ids, args.concurrency)
        report["serve_after_reading_again_mb"] = rss_mb(serve.pid)[0]
        show(
            f"serve, every task read again ({rate:,.0f}/s)", report["serve_after_reading_again_mb"]
        )
        await all_due(url)
        before = await checks_done(url)
        with gateway_process("engine", ["engine"], env, workdir) as engine:
            samples: list[tuple[float, float, float]] = []
            t0 = time.perf_counter()
            while (elapsed := time.perf_counter() - t0) < args.seconds:
                if engine.poll() is not None:
                    raise RuntimeError((workdir / "engine.log").read_text()[-3000:])
                samples.append((elapsed, rss_mb(engine.pid)[0], rss_mb(serve.pid)[0]))
                await asyncio.sleep(0.5)
            engine_peak = rss_mb(engine.pid)[1]
        checks = await checks_done(url) - before
        serve_peak = rss_mb(serve.pid)[1]
    report |= {
        "engine_checks": checks,
        "engine_checks_per_s": checks / args.seconds,
        "engine_rss_mb": {
            "last": samples[-1][1],
            "max_sampled": max(s[1] for s in samples),
            "peak_vmhwm": engine_peak,
        },
        "serve_rss_mb": {
            "while_the_engine_ran_max": max(s[2] for s in samples),
            "peak_vmhwm": serve_peak,
        },
        "samples": [[round(a, 1), round(b, 1), round(c, 1)] for a, b, c in samples],
    }
    show(f"engine, {checks:,} checks in {args.seconds:g} s (peak)", engine_peak)
    show("serve, while the engine ran (peak)", serve_peak)
    return report


def show(label: str, mb: float) -> None:
    print(f"  {label:<52}{mb:>7.0f} MB   (budget {BUDGET_MB} MB)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=30, help="how long the engine runs")
    parser.add_argument("--concurrency", type=int, default=32, help="reads at once")
    parser.add_argument(
        "--prompt-chars",
        type=int,
        help="each task's prompt this long (default: engine_ratio's, 22 characters)",
    )
    args = parser.parse_args()
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        sys.exit("this benchmark pins the sandbox and the gateway to two cores (needs taskset)")
    signal.signal(signal.SIGTERM, raise_interrupt)
    load_average = os.getloadavg()[0]
    sandbox_opts = Options(
        database=args.database,
        tasks=args.tasks,
        seconds=args.seconds,
        warmup=0,
        concurrency=64,
        batch=200,
        rate=0,
        state="generating",
        loop="asyncio",
        upstream_latency_ms=0,
    )
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            sandbox(sandbox_opts, Path(tmp)) as base,
            database(args.database, Path(tmp)) as url,
        ):
            report = asyncio.run(measure(args, url, base, Path(tmp)))
    except KeyboardInterrupt:
        sys.exit("interrupted: the processes are stopped and the bench database dropped")
    report = {"options": vars(args), "load_average_at_start": load_average, **report}
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"memory-{args.database}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nreport: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
