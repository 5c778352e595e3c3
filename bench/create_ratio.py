"""Measure the task create route against a framework-less ASGI app and the sandbox's own
createTask, in one run.

Four figures per database, each the median over --rounds, every server started afresh for each
measurement and loaded by wrk (one thread) over loopback:

- baseline: the framework-less ASGI app (``baseline_app.py``, answering reelgate's create body)
  under uvicorn pinned to core 0, GET from core 1, as ``poll_ratio.py`` measures it;
- sandbox createTask: ``reelgate sandbox`` alone pinned to core 0, wrk POSTing from core 1 the
  createTask body reelgate itself sends; requests/s at --connections, median latency at one;
- reelgate create: ``reelgate serve --no-engine`` pinned to core 0 with the sandbox as its
  upstream on core 1, wrk POSTing README's example to ``/v1/videos/generations`` from core 1;
  requests/s at --connections, median latency at one;
- added median: reelgate's median create latency at one connection minus the sandbox's own;
- added at reelgate's pace: the same difference, with the sandbox's own median measured at the
  pace reelgate's lone connection sent it creates (wrk pausing between requests). On these
  machines a process idle between requests answers two to three times slower than one kept
  busy, the sandbox included, so the flat-out figure counts part of the sandbox's own slowdown
  as reelgate's.

The ratio and the added median reported are the medians of each round's own: the machine's
speed drifts between rounds more than within one.

The ratio reelgate / baseline holds from machine to machine; the budgets are a ratio of at
least 0.05 and at most 1.5 ms added to the median. Timings are reported, never asserted.
PostgreSQL's server is not pinned: it shares both cores.

Latencies come from wrk's own histogram (a Lua ``done`` hook prints whole microseconds; its
summary rounds to two decimals of a unit): both sides of the difference are measured by the
same C client, whose small fixed cost cancels out, where a Python client would add its own
event loop to the core the sandbox shares with it during reelgate's runs.

The sandbox answers createTask at once (no latency fault), holds enough credits for every
create, and keeps its tasks waiting: with --no-engine nothing polls, and with no
REELGATE_PUBLIC_URL the gateway sends no callBackUrl, so it only records tasks; it neither
renders nor calls back.

    .venv/bin/python bench/create_ratio.py [--database sqlite|postgres|both] [--seconds 5]
        [--warmup 2] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

# The benchmarks are scripts, not a package: run as one, this directory is on sys.path.
from engine_ratio import SANDBOX_KEY, database, raise_interrupt
from poll_ratio import ADMIN_TOKEN, BIN, EXAMPLE, ROOT, free_port, reelgate, wait_until_up, wrk

from reelgate.domain.request import parse_request
from reelgate.upstream.kie import CREATE_PATH, create_body

SERVER_CORE, LOAD_CORE = 0, 1
"""The measured server runs on one core; wrk, and during reelgate's runs the sandbox, on the
other."""
CREATE_ROUTE = "/v1/videos/generations"
RATIO_BUDGET = 0.05
ADDED_MEDIAN_BUDGET_MS = 1.5
NEVER_S = "1000000"
"""Longer than any run: sandbox tasks stay waiting, so none is ever rendered."""
WRK_LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"

-- wrk's summary rounds latencies to two decimals of its unit; these are whole microseconds.
function done(summary, latency, requests)
  io.write(string.format("latency_us p50 %d p90 %d p99 %d\\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


@dataclass(frozen=True, slots=True)
class Load:
    """What wrk reported for one POST run."""

    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class Target:
    """A POST endpoint and the wrk script that loads it."""

    url: str
    script: Path


# ---------------------------------------------------------------- processes


def clean_environ() -> dict[str, str]:
    """This environment without REELGATE_* variables: a developer's REELGATE_PUBLIC_URL would
    add a callBackUrl to every create and set the sandbox calling back, for example."""
    return {name: value for name, value in os.environ.items() if not name.startswith("REELGATE_")}


@contextlib.contextmanager
def pinned(
    core: int, command: list[str], env: dict[str, str], probe: str, log_path: Path
) -> Iterator[None]:
    """``poll_ratio.server`` on a chosen core. stdout (uvicorn's access log: the sandbox logs
    every request) is dropped; stderr goes to ``log_path`` rather than to an unread pipe, which
    could fill and stall the server, and is shown if the server does not come up."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            ["taskset", "-c", str(core), *command],
            env=env,
            cwd=env.get("BENCH_CWD"),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            try:
                wait_until_up(probe)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}:\n{log_path.read_text()[-2000:]}") from None
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def wrk_post(target: Target, seconds: int, connections: int) -> Load:
    """Requests/s and latency percentiles that wrk, on the load core, gets POSTing to
    ``target``; any non-2xx answer or socket error voids the run."""
    out = subprocess.run(
        [
            "taskset",
            "-c",
            str(LOAD_CORE),
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(target.script),
            target.url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    for problem in (r"Non-2xx or 3xx responses: \d+", r"Socket errors: .+"):
        if found := re.search(problem, out):
            raise RuntimeError(f"{target.url} under load: {found.group(0)}\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    latency = re.search(r"latency_us p50 (\d+) p90 (\d+) p99 (\d+)", out)
    if rate is None or latency is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    p50, p90, p99 = (int(value) / 1000 for value in latency.groups())
    return Load(float(rate.group(1)), p50, p90, p99)


def post_script(path: Path, body: bytes, key: str) -> Path:
    path.write_text(WRK_LUA.format(body=body.decode(), key=key))
    return path


def paced(target: Target, pause_ms: int) -> Target:
    """``target`` with each connection waiting ``pause_ms`` after an answer before its next
    request (wrk's ``delay`` hook takes whole milliseconds)."""
    script = target.script.with_name(f"{target.script.stem}-paced.lua")
    pause = f"\nfunction delay()\n  return {pause_ms}\nend\n" if pause_ms > 0 else ""
    script.write_text(target.script.read_text() + pause)
    return Target(target.url, script)


# ---------------------------------------------------------------- one database


def baseline_command(port: int) -> list[str]:
    # As poll_ratio.py runs it: the uvicorn options reelgate serve uses.
    return [
        str(BIN / "python"),
        "-m",
        "uvicorn",
        "bench.baseline_app:app",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


@dataclass(frozen=True, slots=True)
class Servers:
    """The three servers of one database's run, each started afresh when asked for."""

    workdir: Path
    gateway_env: dict[str, str]
    sandbox_env: dict[str, str]
    sandbox_port: int = dataclasses.field(default_factory=free_port)
    gateway_port: int = dataclasses.field(default_factory=free_port)
    baseline_port: int = dataclasses.field(default_factory=free_port)

    @property
    def baseline_url(self) -> str:
        return f"http://127.0.0.1:{self.baseline_port}/"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def baseline(self, body_file: Path) -> contextlib.AbstractContextManager[None]:
        # uvicorn imports bench.baseline_app from the repository root.
        env = {**self.gateway_env, "BASELINE_BODY_FILE": str(body_file), "BENCH_CWD": str(ROOT)}
        command = baseline_command(self.baseline_port)
        return pinned(SERVER_CORE, command, env, self.baseline_url, self.workdir / "baseline.log")

    def sandbox(self, core: int) -> contextlib.AbstractContextManager[None]:
        command = [str(BIN / "reelgate"), "sandbox", "--port", str(self.sandbox_port)]
        probe = f"{self.sandbox_url}/sandbox/stats"
        return pinned(core, command, self.sandbox_env, probe, self.workdir / "sandbox.log")

    @contextlib.contextmanager
    def gateway(self) -> Iterator[None]:
        """reelgate and, on the other core, the sandbox as its upstream."""
        command = [str(BIN / "reelgate"), "serve", "--no-engine", "--port", str(self.gateway_port)]
        probe = f"{self.gateway_url}/v1/models"
        with (
            self.sandbox(LOAD_CORE),
            pinned(SERVER_CORE, command, self.gateway_env, probe, self.workdir / "reelgate.log"),
        ):
            yield


def servers(url: str, workdir: Path) -> Servers:
    base = {
        **clean_environ(),
        "BENCH_CWD": str(workdir),
        # This checkout's sources first, whichever checkout the virtualenv was installed from.
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    sandbox_port = free_port()
    sandbox_env = {
        **base,
        "REELGATE_SANDBOX_API_KEY": SANDBOX_KEY,
        "REELGATE_SANDBOX_FAULTS__CREATE__LATENCY_MS": "0",
        "REELGATE_SANDBOX_CREDITS": "1000000000000",
        "REELGATE_SANDBOX_WAITING_S": NEVER_S,
        "REELGATE_SANDBOX_SEED": "1",
        "REELGATE_SANDBOX_MEDIA_DIR": str(workdir / "sandbox-media"),
    }
    gateway_env = {
        **base,
        # `accounts create` and `keys create` run before `serve`, which would make a key file.
        "REELGATE_SECRET_KEY": secrets.token_hex(32),
        "REELGATE_DATABASE_URL": url,
        "REELGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        # With a key the gateway sends its creates to this upstream instead of embedding a sandbox.
        "REELGATE_KIE_API_KEY": SANDBOX_KEY,
        "REELGATE_KIE_BASE_URL": f"http://127.0.0.1:{sandbox_port}",
        "REELGATE_MEDIA_DIR": str(workdir / "media"),
    }
    return Servers(workdir, gateway_env, sandbox_env, sandbox_port=sandbox_port)


@dataclass(frozen=True, slots=True)
class Targets:
    sandbox: Target
    gateway: Target
    body_file: Path
    """reelgate's answer to one create: the baseline serves the same bytes."""


def prepare(run: Servers) -> Targets:
    """An account with credit for every create, its key, the wrk scripts, and one create."""
    # 0.825 USD a create: ten million dollars outlast any run.
    reelgate(["accounts", "create", "bench", "--credit-usd", "10000000"], run.gateway_env)
    key = json.loads(reelgate(["keys", "create", "bench", "--json"], run.gateway_env))["key"]
    with run.gateway():
        created = httpx.post(
            run.gateway_url + CREATE_ROUTE,
            json=EXAMPLE,
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        )
        created.raise_for_status()
    body_file = run.workdir / "body.json"
    body_file.write_bytes(created.content)
    # Exactly the createTask body reelgate sends for the example (no callBackUrl).
    upstream_body = orjson.dumps(create_body(parse_request(EXAMPLE), None))
    return Targets(
        sandbox=Target(
            run.sandbox_url + CREATE_PATH,
            post_script(run.workdir / "sandbox.lua", upstream_body, SANDBOX_KEY),
        ),
        gateway=Target(
            run.gateway_url + CREATE_ROUTE,
            post_script(run.workdir / "gateway.lua", orjson.dumps(EXAMPLE), key),
        ),
        body_file=body_file,
    )


def creates(target: Target, args: argparse.Namespace) -> tuple[Load, Load]:
    """Warm up, then the rate at --connections and the latency at one connection."""
    wrk_post(target, args.warmup, args.connections)
    loaded = wrk_post(target, args.seconds, args.connections)
    single = wrk_post(target, args.seconds, 1)
    return loaded, single


def run_round(run: Servers, targets: Targets, args: argparse.Namespace) -> dict[str, Load]:
    with run.baseline(targets.body_file):
        # GET, as poll_ratio.py loads it; the baseline ignores the header.
        wrk(run.baseline_url, "unused", args.warmup, args.connections)
        baseline = wrk(run.baseline_url, "unused", args.seconds, args.connections)
    with run.sandbox(SERVER_CORE):
        sandbox, sandbox_single = creates(targets.sandbox, args)
    with run.gateway():
        gateway, gateway_single = creates(targets.gateway, args)
    # The sandbox alone at the pace reelgate's lone connection sent it creates: idle between
    # requests, a process here answers two to three times slower than flat out (see README).
    pause_ms = round(1000 / gateway_single.rps - sandbox_single.p50_ms)
    with run.sandbox(SERVER_CORE):
        sandbox_paced = wrk_post(paced(targets.sandbox, pause_ms), args.seconds, 1)
    return {
        # poll_ratio's wrk reports no latencies; the baseline's are not used.
        "baseline": Load(baseline, *(float("nan"),) * 3),
        "sandbox_create": sandbox,
        "sandbox_create_1conn": sandbox_single,
        "reelgate_create": gateway,
        "reelgate_create_1conn": gateway_single,
        "sandbox_create_1conn_paced": sandbox_paced,
    }


def measure(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    load_average = os.getloadavg()
    runs: dict[str, list[Load]] = {}
    with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp)) as url:
        run = servers(url, Path(tmp))
        targets = prepare(run)
        for round_no in range(1, args.rounds + 1):
            for name, load in run_round(run, targets, args).items():
                runs.setdefault(name, []).append(load)
                latency = "" if name == "baseline" else f"   p50 {load.p50_ms:6.3f} ms"
                print(
                    f"{kind:<8} round {round_no}  {name:<22}{load.rps:>9,.0f} req/s{latency}",
                    flush=True,
                )
    rps = {
        name: statistics.median(load.rps for load in runs[name])
        for name in ("baseline", "sandbox_create", "reelgate_create")
    }
    p50 = {
        name: statistics.median(load.p50_ms for load in runs[name])
        for name in ("sandbox_create_1conn", "sandbox_create_1conn_paced", "reelgate_create_1conn")
    }
    # Each round's own ratio and difference, their median reported: the machine's speed drifts
    # between rounds (by a third, on these machines), less within one.
    ratios = [
        gateway.rps / baseline.rps
        for gateway, baseline in zip(runs["reelgate_create"], runs["baseline"], strict=True)
    ]
    added = [
        gateway.p50_ms - sandbox.p50_ms
        for gateway, sandbox in zip(
            runs["reelgate_create_1conn"], runs["sandbox_create_1conn"], strict=True
        )
    ]
    added_paced = [
        gateway.p50_ms - sandbox.p50_ms
        for gateway, sandbox in zip(
            runs["reelgate_create_1conn"], runs["sandbox_create_1conn_paced"], strict=True
        )
    ]
    return {
        "database": kind,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "connections": args.connections,
        "cores": {"server": SERVER_CORE, "wrk": LOAD_CORE, "sandbox_under_reelgate": LOAD_CORE},
        # Anything else running skews the figures: a load well above 0 says to measure again.
        "load_average_at_start": load_average[0],
        "median_rps": rps,
        "ratio": statistics.median(ratios),
        "ratio_by_round": ratios,
        "ratio_to_sandbox": rps["reelgate_create"] / rps["sandbox_create"],
        "median_p50_ms_1conn": p50,
        "added_median_ms": statistics.median(added),
        "added_ms_by_round": added,
        "added_median_ms_paced": statistics.median(added_paced),
        "added_ms_paced_by_round": added_paced,
        "budgets": {"ratio_min": RATIO_BUDGET, "added_median_ms_max": ADDED_MEDIAN_BUDGET_MS},
        "runs": {
            name: [
                {"rps": load.rps} if name == "baseline" else dataclasses.asdict(load)
                for load in loads
            ]
            for name, loads in runs.items()
        },
    }


def summary(report: dict[str, Any]) -> None:
    rps, p50 = report["median_rps"], report["median_p50_ms_1conn"]
    print(f"\n{report['database']}: medians of {report['rounds']} rounds")
    print(f"  baseline (framework-less ASGI, GET)  {rps['baseline']:>9,.0f} req/s")
    print(
        f"  sandbox createTask alone             {rps['sandbox_create']:>9,.0f} req/s   "
        f"p50 at 1 connection {p50['sandbox_create_1conn']:.3f} ms"
    )
    print(
        f"  reelgate POST {CREATE_ROUTE}  {rps['reelgate_create']:>9,.0f} req/s   "
        f"p50 at 1 connection {p50['reelgate_create_1conn']:.3f} ms"
    )
    rounds = ", ".join(f"{ratio:.3f}" for ratio in report["ratio_by_round"])
    print(
        f"  ratio reelgate / baseline {report['ratio']:.3f} (budget >= {RATIO_BUDGET}; "
        f"rounds {rounds})   reelgate / sandbox {report['ratio_to_sandbox']:.2f}"
    )
    rounds = ", ".join(f"{added:.3f}" for added in report["added_ms_by_round"])
    print(
        f"  added median at 1 connection {report['added_median_ms']:.3f} ms "
        f"(budget <= {ADDED_MEDIAN_BUDGET_MS}; rounds {rounds})"
    )
    rounds = ", ".join(f"{added:.3f}" for added in report["added_ms_paced_by_round"])
    print(
        f"  added to the sandbox at reelgate's pace ({p50['sandbox_create_1conn_paced']:.3f} ms) "
        f"{report['added_median_ms_paced']:.3f} ms (rounds {rounds})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=int, default=5, help="length of each measurement")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured load before each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get update && apt-get install -y wrk util-linux")
    if (os.cpu_count() or 1) < 2:
        sys.exit("this benchmark pins the servers and the load to two different cores")
    # Ctrl-C and SIGTERM alike stop the servers and drop the bench database.
    signal.signal(signal.SIGTERM, raise_interrupt)

    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    reports = []
    try:
        for kind in kinds:
            report = measure(kind, args)
            out = out_dir / f"create_ratio-{kind}-{time.strftime('%Y%m%dT%H%M%S')}.json"
            out.write_text(json.dumps(report, indent=2))
            reports.append((report, out))
    except KeyboardInterrupt:
        sys.exit("interrupted: the servers are stopped and the bench database dropped")
    for report, out in reports:
        summary(report)
        print(f"  report: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
