"""Fuzz the OpenAPI document at length: what tests/integration/test_schemathesis.py runs with
25 examples per operation, run with thousands, and every failure reported.

``reelgate serve`` starts on a fresh database (a SQLite file, or PostgreSQL) with its embedded
sandbox, every network allowed for a ``callBackUrl`` (which networks a callback may reach is
the operator's choice, not the document's), and no engine: no task is ever followed, so the
sandbox renders no video whatever prompts are sent. Then, for each operation the test covers
(the public API with an account's key; the admin API, health and metrics with the admin
token), schemathesis generates ``--examples`` requests the document calls valid, sends each
over loopback and holds the answer to the test's checks: never a 5xx, a documented status,
content type and body, and no valid request refused with a 400. Integers written with a
fraction (``5.0``) are made whole first, as in the test: the contract refuses them, the
document cannot say so.

One operation's failure does not stop the others: each failure is reported with the request
that caused it (as schemathesis reproduces it), shrunk to a small one unless ``--no-shrink``.
Runs are random; ``--seed`` repeats one. A JSON report lands in ``bench/results/``; the script
exits 1 when anything failed.

    .venv/bin/python bench/fuzz.py [--database sqlite|postgres] [--examples 2000]
        [--operations PATH ...] [--seed N] [--no-shrink]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
# The operations, checks and adjustments are the test's own, from this checkout.
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import schemathesis  # noqa: E402
from engine_ratio import database, free_port, raise_interrupt  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from schemathesis.generation.case import Case  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402

from tests.integration.test_schemathesis import (  # noqa: E402
    ADMIN,
    CHECKS,
    OPERATIONS,
    PUBLIC,
    _as_the_contract_reads,
)

BIN = Path(sys.executable).parent
ADMIN_TOKEN = "rga_fuzz-admin-token"


@dataclass
class Outcome:
    path: str
    method: str
    examples: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    failure: str | None = None


@contextlib.contextmanager
def gateway(url: str, workdir: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")},
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "REELGATE_DATABASE_URL": url,
        "REELGATE_SECRET_KEY": secrets.token_hex(32),
        "REELGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "REELGATE_ALLOWED_NETWORKS": '["0.0.0.0/0", "::/0"]',
        "REELGATE_MEDIA_DIR": str(workdir / "media"),
        # The embedded sandbox's tasks never reach the point where a video is rendered, and its
        # account never runs out of credit (a 502 is a 5xx to the checks).
        "REELGATE_SANDBOX_WAITING_S": "1000000",
        "REELGATE_SANDBOX_CREDITS": "1000000000000",
        "REELGATE_SANDBOX_MEDIA_DIR": str(workdir / "sandbox-media"),
    }
    log = (workdir / "serve.log").open("ab")
    proc = subprocess.Popen(
        [str(BIN / "reelgate"), "serve", "--no-engine", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start:\n{(workdir / 'serve.log').read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/v1/models", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def api_key(base: str) -> str:
    with httpx.Client(
        base_url=base, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ) as admin:
        # As much credit as an account may hold: thousands of creates never run it out.
        created = admin.post("/admin/accounts", json={"name": "fuzz", "credit_usd": "1000000000"})
        created.raise_for_status()
        issued = admin.post("/admin/accounts/fuzz/keys")
        issued.raise_for_status()
        key: str = issued.json()["key"]
        return key


def fuzz_one(
    operation: Any, token: str, base: str, args: argparse.Namespace, outcome: Outcome
) -> None:
    headers = {"authorization": f"Bearer {token}"}
    strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE, headers=headers)
    phases = [Phase.explicit, Phase.generate] + ([] if args.no_shrink else [Phase.shrink])

    @seed(args.seed)
    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(case=strategy)
    def check(case: Case[Any]) -> None:
        _as_the_contract_reads(case)
        response = case.call(base_url=base, headers=headers, timeout=30)
        outcome.examples += 1
        outcome.statuses[response.status_code] = outcome.statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    started = time.perf_counter()
    try:
        check()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # schemathesis reports a BaseExceptionGroup of its failures
        outcome.failure = "".join(traceback.format_exception_only(exc)).strip()
    outcome.seconds = time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--examples", type=int, default=2000, help="per operation")
    parser.add_argument(
        "--operations", nargs="*", help="only these paths (as the document spells them)"
    )
    parser.add_argument("--seed", type=int, default=None, help="repeat a run (default: random)")
    parser.add_argument("--no-shrink", action="store_true", help="report failures unshrunk")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = secrets.randbelow(2**32)
    signal.signal(signal.SIGTERM, raise_interrupt)
    load_average = os.getloadavg()[0]
    outcomes: list[Outcome] = []
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            database(args.database, Path(tmp)) as url,
            gateway(url, Path(tmp)) as base,
        ):
            key = api_key(base)
            schema = schemathesis.openapi.from_url(f"{base}/openapi.json", timeout=30)
            groups = ((PUBLIC, key), (ADMIN, ADMIN_TOKEN), (OPERATIONS, ADMIN_TOKEN))
            for operations, token in groups:
                for path, method in operations:
                    if args.operations and path not in args.operations:
                        continue
                    outcome = Outcome(path, method)
                    fuzz_one(schema[path][method], token, base, args, outcome)
                    outcomes.append(outcome)
                    verdict = "ok" if outcome.failure is None else "FAILED"
                    print(
                        f"{method:<5}{path:<36}{outcome.examples:>7} examples "
                        f"{outcome.seconds:>7.1f} s  {verdict}",
                        flush=True,
                    )
    except KeyboardInterrupt:
        sys.exit("interrupted: the gateway is stopped and the bench database dropped")
    failed = [o for o in outcomes if o.failure is not None]
    for outcome in failed:
        print(f"\nFAILED {outcome.method} {outcome.path}:\n{outcome.failure}")
    report = {
        "options": vars(args),
        "load_average_at_start": load_average,
        "examples": sum(o.examples for o in outcomes),
        "failures": len(failed),
        "operations": [asdict(o) for o in outcomes],
    }
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"fuzz-{args.database}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(
        f"\n{report['examples']:,} examples, {len(failed)} operation(s) failed (seed {args.seed})"
        f"\nreport: {out.relative_to(ROOT)}"
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
