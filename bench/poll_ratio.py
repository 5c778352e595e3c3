"""Measure the task poll route against a framework-less ASGI app, in one run.

Both servers run under uvicorn with the same options, pinned to core 0; wrk loads them from
core 1 over loopback. The figure that matters is the ratio, which holds from machine to machine:
the budget is reelgate >= 0.5 x baseline. Timings are reported, never asserted.

    .venv/bin/python bench/poll_ratio.py [--database sqlite|postgres] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADMIN_TOKEN = "rga_bench-admin-token"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
EXAMPLE = {
    "model": "seedance-2-fast",
    "prompt": "A cinematic beach at sunset, gentle waves, palm trees, and orange sky.",
    "resolution": "720p",
    "aspect_ratio": "16:9",
    "duration": 5,
    "generate_audio": False,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {seconds} s")


@contextlib.contextmanager
def server(command: list[str], env: dict[str, str], probe: str) -> Iterator[None]:
    """A server pinned to core 0, stopped however the block ends."""
    process = subprocess.Popen(
        ["taskset", "-c", "0", *command],
        env=env,
        cwd=env.get("BENCH_CWD"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_up(probe)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def wrk(url: str, key: str, seconds: int, connections: int) -> float:
    """Requests per second that wrk, on core 1, gets from ``url``."""
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-H",
            f"Authorization: Bearer {key}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url} answered {errors.group(1)} errors under load:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return float(match.group(1))


def reelgate(args: list[str], env: dict[str, str]) -> str:
    return subprocess.run(
        [str(BIN / "reelgate"), *args],
        env=env,
        cwd=env["BENCH_CWD"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    name = f"reelgate_bench_{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["psql", f"{PG_SERVER}/postgres", "-qc", f'CREATE DATABASE "{name}"'], check=True
    )
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        subprocess.run(
            ["psql", f"{PG_SERVER}/postgres", "-qc", f'DROP DATABASE "{name}" WITH (FORCE)'],
            check=False,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=int, default=5, help="length of each measurement")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured load before each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get update && apt-get install -y wrk util-linux")
    if (os.cpu_count() or 1) < 2:
        sys.exit("this benchmark pins the server and the load to two different cores")

    with tempfile.TemporaryDirectory() as tmp, database(args.database, Path(tmp)) as url:
        env = {
            **os.environ,
            "BENCH_CWD": tmp,
            "REELGATE_DATABASE_URL": url,
            "REELGATE_ADMIN_TOKEN": ADMIN_TOKEN,
            # The commands run before `serve` would make a key file: they share this one.
            "REELGATE_SECRET_KEY": secrets.token_hex(32),
            # This checkout's sources first, whichever checkout the virtualenv was installed from.
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        }
        reelgate(["migrate"], env)
        reelgate(["accounts", "create", "bench", "--credit-usd", "1000"], env)
        key = json.loads(reelgate(["keys", "create", "bench", "--json"], env))["key"]

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        serve = [str(BIN / "reelgate"), "serve", "--port", str(port)]
        with server(serve, env, f"{base}/v1/models"):
            created = httpx.post(
                f"{base}/v1/videos/generations",
                json=EXAMPLE,
                headers={"authorization": f"Bearer {key}"},
                timeout=30,
            )
            created.raise_for_status()
            task_url = base + created.json()["poll_url"]
            body = httpx.get(task_url, headers={"authorization": f"Bearer {key}"}).content
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)

        baseline_port = free_port()
        variants = {
            "baseline": (
                [
                    str(BIN / "python"),
                    "-m",
                    "uvicorn",
                    "bench.baseline_app:app",
                    "--port",
                    str(baseline_port),
                    "--loop",
                    "uvloop",
                    "--http",
                    "httptools",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                {**env, "BASELINE_BODY_FILE": str(body_file), "BENCH_CWD": str(ROOT)},
                f"http://127.0.0.1:{baseline_port}/v1/tasks/x",
            ),
            "reelgate": (serve, env, task_url),
            "reelgate_no_task_cache": (
                serve,
                {**env, "REELGATE_TASK_CACHE_MB": "0"},
                task_url,
            ),
        }
        results: dict[str, list[float]] = {name: [] for name in variants}
        for round_no in range(1, args.rounds + 1):
            for name, (command, variant_env, target) in variants.items():
                with server(command, variant_env, target):
                    wrk(target, key, args.warmup, args.connections)
                    rps = wrk(target, key, args.seconds, args.connections)
                results[name].append(rps)
                print(f"round {round_no}  {name:<24} {rps:>10,.0f} req/s", flush=True)

    medians = {name: statistics.median(values) for name, values in results.items()}
    report = {
        "database": args.database,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "connections": args.connections,
        "body_bytes": len(body),
        "median_rps": medians,
        "ratio": medians["reelgate"] / medians["baseline"],
        "ratio_without_task_cache": medians["reelgate_no_task_cache"] / medians["baseline"],
        "runs": results,
    }
    print()
    print(f"baseline (framework-less ASGI)  {medians['baseline']:>10,.0f} req/s")
    print(
        f"reelgate GET /v1/tasks/{{id}}     {medians['reelgate']:>10,.0f} req/s  "
        f"ratio {report['ratio']:.2f}  (budget >= 0.50)"
    )
    print(
        f"  without the task cache        {medians['reelgate_no_task_cache']:>10,.0f} req/s  "
        f"ratio {report['ratio_without_task_cache']:.2f}"
    )
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"poll_ratio-{args.database}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nreport: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
