"""The fault suite: kill the gateway's processes while tasks flow through a faulty upstream,
then check that no accepted task was lost, none was created upstream twice, every video came
back, and every task was billed exactly once.

Two set-ups, each against a standalone ``reelgate sandbox`` with faults:

- postgres: one ``reelgate serve --no-engine`` and ``--engines`` ``reelgate engine`` processes
  on a fresh PostgreSQL database; a random engine is killed (SIGKILL) and restarted every
  ``--engine-kill-every`` seconds (jittered), and the API process every ``--serve-kill-every``;
- sqlite: one ``reelgate serve`` (its engine inside) on a SQLite file, killed every
  ``--serve-kill-every`` seconds and restarted in the same directory.

The sandbox answers 5 % of recordInfo calls with HTTP 503 and holds 2 % until the gateway gives
up; it answers 5 % of creates with KIE's body code 429 and holds 2 % (half of them after
making the task: an answer that never comes); it fails 10 % of tasks; of the callbacks it sends
30 % are lost, 10 % sent twice and 10 % late (``REELGATE_PUBLIC_URL`` is set, so callbacks
flow). It answers creates after 200 ms, as a distant upstream would, so that a killed API
process drops some under way.

Meanwhile clients of ``--accounts`` accounts submit ``--rate`` creates a second for
``--seconds``. Each create is a different request (it names its sequence number in
``first_frame_url``, which the sandbox ignores, so a few prompts cover every video and few
are rendered). A create whose answer was lost (a connection dropped by a killed API process,
or refused while it restarts) or that got a 503 or 429 is sent again with the same body until
it is answered, and with ``--idempotency-key`` also with the same ``Idempotency-Key`` header
(and then also after a 409: the first request under that key is still under way).

Then the kills stop and the run drains: it waits (at most ``--drain`` seconds) until every
task the gateway accepted, and every task in the database, is final. And it checks:

- every accepted task is final, in the database and as ``GET /v1/tasks/{id}`` shows it;
- no task was created upstream twice: the sandbox lists every task it made with the callback
  link it was given, which names the gateway's task; each gateway task is named at most
  once, and a task bound to an upstream task is bound to one that names it;
- every success has its video: ``GET /v1/tasks/{id}/content/0`` answers 200 with as many bytes
  as the gateway recorded and the upstream's file holds;
- each task settled once: one reservation of its cost in the ledger, then one commit (success)
  or one release (fail) of it;
- every balance equals credits - commits, and nothing is still reserved; ``reelgate audit``
  passes;
- no create was answered with a 5xx but the contract's 502 and 503.

A **retry duplicate** is a second task made by a client's own retry: the first attempt's answer
was lost, but the gateway had stored it (and maybe sent it upstream) before the connection
dropped, so the retry is a new request to it. Without an idempotency key the gateway cannot
tell the two apart; each such task is final and billed once like any other, and the count is
reported, not treated as a violation. With ``--idempotency-key`` it is one: the key exists to
make a retry return the first task.

The table shows, per database, tasks submitted, accepted, final and created upstream, the
kills, the violations and the retry duplicates; a JSON report lands in ``bench/results/``. The
script exits 1 on any violation. PostgreSQL's server and all processes share the machine's
cores; nothing is pinned (this is about correctness, not speed).

    .venv/bin/python bench/chaos.py [--database sqlite|postgres|both] [--seconds 60] [--rate 5]
        [--accounts 4] [--engines 2] [--engine-kill-every 4] [--serve-kill-every 12]
        [--drain 120] [--seed 1] [--idempotency-key] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import secrets
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from reelgate.config import Settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REELGATE = BIN / "reelgate"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
ADMIN_TOKEN = "rga_chaos-admin-token"
SANDBOX_KEY = "chaos-sandbox-key"
FINAL = ("success", "fail")
CREATE_ROUTE = "/v1/videos/generations"
PROMPTS = (
    "A lighthouse in a storm, waves breaking on the rocks.",
    "A paper boat drifting down a rainy street.",
    "A red kite over dunes at noon.",
)
"""Few prompts: the sandbox renders one video per distinct clip and reuses it."""
UPSTREAM_FAULTS: dict[str, Any] = {
    "create": {
        "latency_ms": 200,
        "body_codes": {"429": 0.05},
        "timeout": 0.01,
        "timeout_after_create": 0.01,
    },
    "record": {"http_503": 0.05, "timeout": 0.02},
}
CALLBACK_FAULTS = {"LOST": 0.3, "DUPLICATE": 0.1, "LATE": 0.1}
FAIL_SHARE = 0.1
KIE_TIMEOUT_S = 3
"""The gateway's patience with one upstream answer; the sandbox holds a faulted one longer."""


@dataclass(frozen=True, slots=True)
class Options:
    seconds: float = 60
    """How long creates are submitted (and processes killed)."""
    rate: float = 5
    """Creates a second, spread evenly."""
    accounts: int = 4
    engines: int = 2
    """``reelgate engine`` processes beside ``serve --no-engine`` (PostgreSQL only)."""
    engine_kill_every_s: float = 4
    serve_kill_every_s: float = 12
    drain_s: float = 120
    seed: int = 1
    idempotency_key: bool = False
    pending_submission_s: float = 5
    """A create unanswered this long is taken as sent without an answer (never resent)."""
    unknown_submission_s: float = 20
    """... and fails, released, if no callback finds it again within this long."""
    sandbox_stages_s: tuple[float, float, float] = (0.5, 0.5, 1.5)
    """Waiting, queuing and generating at the sandbox."""


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_environ() -> dict[str, str]:
    """This environment without REELGATE_* variables, with this checkout's sources first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    return env


class Process:
    """One process of the run, started again after each kill; its output is appended to one
    log file across restarts."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path, probe: str | None
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.probe = probe
        """A URL answering once the process serves; None: started is ready enough."""
        self.log = cwd / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"\n===== start {self.starts} at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        if self.probe is not None:
            await self._until_up(self.probe)

    async def _until_up(self, probe_url: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(timeout=1) as probe:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await probe.get(probe_url)).status_code < 500:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not come up within {seconds} s")

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, nothing finished."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            await self.kill()


@dataclass
class Cluster:
    """The sandbox and the gateway's processes of one run."""

    sandbox: Process
    serve: Process
    engines: list[Process]
    gateway_url: str
    sandbox_url: str
    gateway_env: dict[str, str]

    @property
    def everything(self) -> list[Process]:
        return [self.serve, *self.engines, self.sandbox]


def sandbox_env(opts: Options, workdir: Path) -> dict[str, str]:
    waiting, queuing, generating = opts.sandbox_stages_s
    env = {
        **clean_environ(),
        "REELGATE_SANDBOX_API_KEY": SANDBOX_KEY,
        "REELGATE_SANDBOX_WAITING_S": str(waiting),
        "REELGATE_SANDBOX_QUEUING_S": str(queuing),
        "REELGATE_SANDBOX_GENERATING_S": str(generating),
        "REELGATE_SANDBOX_FAIL_SHARE": str(FAIL_SHARE),
        "REELGATE_SANDBOX_FAULTS": json.dumps(UPSTREAM_FAULTS),
        # Longer than the gateway waits: a held request is one it gives up on.
        "REELGATE_SANDBOX_HANG_S": str(KIE_TIMEOUT_S * 3),
        "REELGATE_SANDBOX_CALLBACK_LATE_S": "3",
        "REELGATE_SANDBOX_SEED": str(opts.seed),
        "REELGATE_SANDBOX_CREDITS": "1000000000",
        "REELGATE_SANDBOX_MEDIA_DIR": str(workdir / "sandbox-media"),
    }
    for kind, share in CALLBACK_FAULTS.items():
        env[f"REELGATE_SANDBOX_CALLBACK_{kind}_SHARE"] = str(share)
    return env


def gateway_env(
    opts: Options, url: str, sandbox_url: str, port: int, workdir: Path
) -> dict[str, str]:
    gateway = f"http://127.0.0.1:{port}"
    return {
        **clean_environ(),
        "REELGATE_DATABASE_URL": url,
        "REELGATE_SECRET_KEY": secrets.token_hex(32),
        "REELGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "REELGATE_KIE_API_KEY": SANDBOX_KEY,
        "REELGATE_KIE_BASE_URL": sandbox_url,
        "REELGATE_KIE_TIMEOUT_S": str(KIE_TIMEOUT_S),
        # The sandbox's videos are on loopback: copying them needs the operator's leave.
        "REELGATE_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "REELGATE_MEDIA_DIR": str(workdir / "media"),
        "REELGATE_PUBLIC_URL": gateway,
        "REELGATE_HOST": "127.0.0.1",
        "REELGATE_PORT": str(port),
        "REELGATE_PENDING_SUBMISSION_S": str(opts.pending_submission_s),
        "REELGATE_UNKNOWN_SUBMISSION_S": str(opts.unknown_submission_s),
        # A killed engine's tasks are taken over when its leases end: longer than one check
        # (KIE_TIMEOUT_S plus a connect), short enough for the run.
        "REELGATE_ENGINE_LEASE_S": "10",
        "REELGATE_ENGINE_FIRST_POLL_S": "1",
        "REELGATE_ENGINE_POLL_MIN_S": "1",
        "REELGATE_ENGINE_POLL_MAX_S": "4",
        "REELGATE_ENGINE_REQUESTS_PER_S": "200",
    }


@contextlib.asynccontextmanager
async def cluster(opts: Options, url: str, workdir: Path) -> AsyncIterator[Cluster]:
    """The sandbox, ``serve`` and (PostgreSQL) the engines, started; all stopped at the end."""
    sandbox_port, port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = gateway_env(opts, url, sandbox_url, port, workdir)
    sqlite = url.startswith("sqlite")
    run = Cluster(
        sandbox=Process(
            "sandbox",
            [str(REELGATE), "sandbox", "--port", str(sandbox_port)],
            sandbox_env(opts, workdir),
            workdir,
            f"{sandbox_url}/api/v1/chat/credit",
        ),
        serve=Process(
            "serve",
            [str(REELGATE), "serve", *([] if sqlite else ["--no-engine"])],
            env,
            workdir,
            f"http://127.0.0.1:{port}/v1/models",
        ),
        engines=[
            Process(f"engine-{n}", [str(REELGATE), "engine"], env, workdir, None)
            for n in range(0 if sqlite else opts.engines)
        ],
        gateway_url=f"http://127.0.0.1:{port}",
        sandbox_url=sandbox_url,
        gateway_env=env,
    )
    try:
        await run.sandbox.start()
        await run.serve.start()  # migrates first: the engines start on a ready schema
        for engine in run.engines:
            await engine.start()
        yield run
    finally:
        for process in run.everything:
            await process.stop()


# ---------------------------------------------------------------- clients


@dataclass
class Create:
    """One task a client wants, sent until it is answered."""

    seq: int
    account: int
    body: dict[str, Any]
    idempotency_key: str
    attempts: int = 0
    refused_connections: int = 0
    """Attempts that never reached the gateway (it was down): safe to repeat."""
    lost_answers: int = 0
    """Attempts sent whose answer never came (a dropped connection, a timeout)."""
    statuses: list[int] = field(default_factory=list)
    task_id: str | None = None
    outcome: str = "unanswered"


@dataclass
class Tally:
    engine_kills: int = 0
    serve_kills: int = 0
    odd_5xx: list[str] = field(default_factory=list)
    """Create answers with a 5xx the contract does not name."""


def tag(run_id: str, seq: int) -> str:
    return f"https://chaos.example/{run_id}/{seq}.png"


def new_create(run_id: str, seq: int, accounts: int, rng: random.Random) -> Create:
    body = {
        "model": "seedance-2-fast",
        "prompt": PROMPTS[seq % len(PROMPTS)],
        "resolution": "480p",
        "duration": 4,
        "generate_audio": False,
        "first_frame_url": tag(run_id, seq),
    }
    return Create(seq, rng.randrange(accounts), body, str(uuid.uuid4()))


async def submit(
    client: httpx.AsyncClient, create: Create, key: str, opts: Options, tally: Tally, give_up: float
) -> None:
    """Send one create until it is answered (202, or a refusal that is final)."""
    headers = {"authorization": f"Bearer {key}"}
    if opts.idempotency_key:
        headers["idempotency-key"] = create.idempotency_key
    pause = 0.2
    while time.monotonic() < give_up:
        create.attempts += 1
        try:
            answer = await client.post(CREATE_ROUTE, json=create.body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            create.refused_connections += 1
        except httpx.TransportError:
            # Sent, and the connection dropped or timed out: the gateway may have it.
            create.lost_answers += 1
        else:
            status = answer.status_code
            create.statuses.append(status)
            if status >= 500 and not _contract_5xx(answer):
                tally.odd_5xx.append(f"create #{create.seq}: {status} {answer.text[:200]}")
            if status == 202:
                create.task_id = answer.json()["task_id"]
                create.outcome = "accepted"
                return
            if status not in retried(opts):
                create.outcome = f"refused {status}"
                return
        await asyncio.sleep(pause)
        pause = min(1.0, pause * 1.5)
    create.outcome = "gave up"


def retried(opts: Options) -> frozenset[int]:
    """Answers after which a create is sent again: the gateway cannot serve now (503), or
    asks to slow down (429); under an Idempotency-Key, its first request is still under way
    (409)."""
    return frozenset({429, 503} | ({409} if opts.idempotency_key else set()))


def _contract_5xx(answer: httpx.Response) -> bool:
    """502 (the upstream refused) and 503 (cannot serve now) in the contract's error body, or
    the HTTP server's own plain-text 503 past its connection limit."""
    if answer.status_code == 502:
        return _error_of(answer) == "upstream_error"
    if answer.status_code == 503:
        content_type = answer.headers.get("content-type", "")
        return _error_of(answer) == "unavailable" or content_type.startswith("text/plain")
    return False


def _error_of(answer: httpx.Response) -> str | None:
    try:
        body = answer.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


async def load(
    run: Cluster, opts: Options, keys: list[str], run_id: str, tally: Tally
) -> list[Create]:
    """``rate`` creates a second for ``seconds``, each sent until answered."""
    rng = random.Random(opts.seed)
    creates: list[Create] = []
    jobs: list[asyncio.Task[None]] = []
    give_up = time.monotonic() + opts.seconds + opts.drain_s / 2
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    async with httpx.AsyncClient(base_url=run.gateway_url, timeout=30, limits=limits) as client:
        start = time.monotonic()
        for seq in range(int(opts.seconds * opts.rate)):
            await asyncio.sleep(max(0.0, start + seq / opts.rate - time.monotonic()))
            create = new_create(run_id, seq, len(keys), rng)
            creates.append(create)
            jobs.append(
                asyncio.create_task(
                    submit(client, create, keys[create.account], opts, tally, give_up)
                )
            )
        await asyncio.gather(*jobs)
    return creates


async def killer(run: Cluster, opts: Options, tally: Tally, until: float) -> None:
    """Kill (SIGKILL) a random engine and now and then the API process, restarting each."""
    rng = random.Random(opts.seed + 1)

    def jittered(every: float) -> float:
        return time.monotonic() + every * rng.uniform(0.5, 1.5)

    next_engine = jittered(opts.engine_kill_every_s) if run.engines else float("inf")
    next_serve = jittered(opts.serve_kill_every_s)
    while (now := time.monotonic()) < until:
        await asyncio.sleep(max(0.0, min(next_engine, next_serve, until) - now))
        now = time.monotonic()
        if now >= until:
            break
        if now >= next_engine:
            engine = rng.choice(run.engines)
            await engine.kill()
            tally.engine_kills += 1
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            await engine.start()
            next_engine = jittered(opts.engine_kill_every_s)
        if now >= next_serve:
            await run.serve.kill()
            tally.serve_kills += 1
            await run.serve.start()
            next_serve = jittered(opts.serve_kill_every_s)


async def make_accounts(run: Cluster, count: int) -> list[tuple[str, str]]:
    """``count`` accounts with credit for any run, and a key each: (account id, key)."""
    made = []
    async with httpx.AsyncClient(
        base_url=run.gateway_url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ) as admin:
        for n in range(count):
            name = f"chaos-{n}"
            account = await admin.post("/admin/accounts", json={"name": name, "credit_usd": "1000"})
            account.raise_for_status()
            key = await admin.post(f"/admin/accounts/{name}/keys")
            key.raise_for_status()
            made.append((account.json()["id"], key.json()["key"]))
    return made


# ---------------------------------------------------------------- reading what happened


@contextlib.asynccontextmanager
async def database_reader(url: str) -> AsyncIterator[Any]:
    engine = create_async_engine(Settings(database_url=url).database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def rows(engine: Any, sql: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(sa.text(sql))]


async def drain(url: str, accepted: set[str], bound_s: float) -> tuple[float, list[dict[str, Any]]]:
    """Wait until every task in the database (the accepted ones among them) is final, at most
    ``bound_s``; the seconds it took, and the tasks still unfinished."""
    start = time.monotonic()
    async with database_reader(url) as engine:
        while True:
            tasks = await rows(engine, "SELECT id, state, submission, upstream_task_id FROM tasks")
            known = {task["id"] for task in tasks}
            open_tasks = [task for task in tasks if task["state"] not in FINAL]
            missing = accepted - known
            if not open_tasks and not missing:
                return time.monotonic() - start, []
            if time.monotonic() - start > bound_s:
                return time.monotonic() - start, open_tasks + [
                    {"id": task_id, "state": "missing from the database"} for task_id in missing
                ]
            await asyncio.sleep(0.5)


@dataclass
class Report:
    database: str
    options: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def violate(self, kind: str, detail: str) -> None:
        self.violations.append(f"{kind}: {detail}")


def task_id_named(callback_url: str | None) -> str | None:
    if not callback_url:
        return None
    named = parse_qs(urlsplit(callback_url).query).get("task_id")
    return named[0] if named else None


async def check(
    run: Cluster,
    url: str,
    creates: list[Create],
    accounts: list[tuple[str, str]],
    run_id: str,
    opts: Options,
    tally: Tally,
    report: Report,
) -> None:
    accepted = {c.task_id: c for c in creates if c.task_id is not None}
    key_of = dict(accounts)
    async with database_reader(url) as engine:
        tasks = await rows(
            engine,
            "SELECT id, account_id, state, submission, billing_status, upstream_task_id, "
            "request, error, media, origin_urls, cost_micro_usdc, created_at, completed_at "
            "FROM tasks",
        )
        ledger = await rows(
            engine,
            "SELECT task_id, kind, amount_micro_usdc, account_id FROM ledger",
        )
        balances = await rows(
            engine, "SELECT id, name, balance_micro_usdc, reserved_micro_usdc FROM accounts"
        )
    by_id = {task["id"]: task for task in tasks}

    # Every accepted task is final, in the database and to its client.
    async with httpx.AsyncClient(base_url=run.gateway_url, timeout=30) as client:
        shown = await _gather_limited(
            [
                client.get(
                    f"/v1/tasks/{task_id}",
                    headers={"authorization": f"Bearer {accounts[c.account][1]}"},
                )
                for task_id, c in accepted.items()
            ]
        )
    for (task_id, _c), answer in zip(accepted.items(), shown, strict=True):
        if task_id not in by_id:
            report.violate("accepted task lost", f"{task_id} is not in the database")
        elif by_id[task_id]["state"] not in FINAL:
            report.violate("accepted task not final", f"{task_id} is {by_id[task_id]['state']}")
        if answer.status_code != 200 or answer.json().get("state") not in FINAL:
            report.violate(
                "accepted task not final to its client",
                f"GET {task_id}: {answer.status_code} {answer.text[:200]}",
            )
    for task in tasks:
        if task["state"] not in FINAL and task["id"] not in accepted:
            report.violate("task not final", f"{task['id']} is {task['state']}")

    # No task created upstream twice.
    async with httpx.AsyncClient(
        base_url=run.sandbox_url, headers={"authorization": f"Bearer {SANDBOX_KEY}"}, timeout=30
    ) as kie:
        made = (await kie.get("/sandbox/tasks")).json()["data"]
        stats = (await kie.get("/sandbox/stats")).json()
    named = Counter(task_id_named(item["callBackUrl"]) for item in made)
    upstream_names = {item["taskId"]: task_id_named(item["callBackUrl"]) for item in made}
    for named_id, count in named.items():
        if named_id is None:
            report.violate("upstream create unchecked", f"{count} created without a callback link")
        elif count > 1:
            report.violate("created upstream twice", f"{named_id}: {count} upstream tasks")
    for task in tasks:
        bound = task["upstream_task_id"]
        if bound is not None and upstream_names.get(bound) != task["id"]:
            report.violate(
                "bound to another upstream task",
                f"{task['id']} -> {bound}, which names {upstream_names.get(bound)}",
            )

    # Every success has its video, as large as the upstream's.
    successes = [task for task in tasks if task["state"] == "success"]
    async with httpx.AsyncClient(timeout=60) as http:
        origin_sizes: dict[str, int] = {}
        for task in successes:
            for origin in orjson.loads(task["origin_urls"] or "[]"):
                if origin not in origin_sizes:
                    head = await http.head(origin)
                    origin_sizes[origin] = int(head.headers.get("content-length", -1))
        videos = await _gather_limited(
            [
                http.get(
                    f"{run.gateway_url}/v1/tasks/{task['id']}/content/0",
                    headers={"authorization": f"Bearer {key_of[task['account_id']]}"},
                )
                for task in successes
            ]
        )
    for task, video in zip(successes, videos, strict=True):
        media = orjson.loads(task["media"] or "[]")
        origins = orjson.loads(task["origin_urls"] or "[]")
        expected = {media[0]["size"] if media else None, *(origin_sizes[o] for o in origins[:1])}
        if video.status_code != 200 or expected != {len(video.content)}:
            report.violate(
                "success without its video",
                f"{task['id']}: {video.status_code}, {len(video.content)} bytes, "
                f"recorded/upstream sizes {sorted(map(str, expected))}",
            )

    # Each task settled once; balances follow from the ledger.
    per_task: dict[str, Counter[str]] = {}
    amounts: dict[str, Counter[str]] = {}
    per_account: dict[str, Counter[str]] = {}
    for entry in ledger:
        account_sums = per_account.setdefault(entry["account_id"], Counter())
        account_sums[entry["kind"]] += int(entry["amount_micro_usdc"])
        if entry["task_id"] is not None:
            per_task.setdefault(entry["task_id"], Counter())[entry["kind"]] += 1
            amounts.setdefault(entry["task_id"], Counter())[entry["kind"]] += int(
                entry["amount_micro_usdc"]
            )
    for task in tasks:
        kinds = per_task.get(task["id"], Counter())
        cost = int(task["cost_micro_usdc"])
        settle = "commit" if task["state"] == "success" else "release"
        want = Counter({"reserve": 1, settle: 1})
        if kinds != want or amounts[task["id"]] != Counter({"reserve": cost, settle: cost}):
            report.violate(
                "not settled exactly once",
                f"{task['id']} ({task['state']}, {task['billing_status']}): ledger {dict(kinds)}",
            )
    for account in balances:
        sums = per_account.get(account["id"], Counter())
        balance, reserved = int(account["balance_micro_usdc"]), int(account["reserved_micro_usdc"])
        if balance != sums["credit"] - sums["commit"]:
            report.violate(
                "balance",
                f"{account['name']}: {balance} != credits {sums['credit']} - commits "
                f"{sums['commit']}",
            )
        if reserved != 0:
            report.violate("reservation left", f"{account['name']}: {reserved} still reserved")
    audit = await asyncio.create_subprocess_exec(
        str(REELGATE),
        "audit",
        env=run.gateway_env,
        cwd=run.serve.cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    audit_out, _ = await audit.communicate()
    if audit.returncode != 0:
        report.violate("reelgate audit", audit_out.decode()[-2000:])

    for odd in tally.odd_5xx:
        report.violate("create answered an unexpected 5xx", odd)
    gave_up = [c for c in creates if c.outcome == "gave up"]
    if gave_up:
        report.violate("create never answered", f"{len(gave_up)} creates, e.g. #{gave_up[0].seq}")

    # Retry duplicates: tasks made by the client's own retry of a create whose answer was lost.
    by_tag: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        by_tag.setdefault(orjson.loads(task["request"]).get("first_frame_url"), []).append(task)
    duplicates = charged_twice = 0
    for create in creates:
        same = by_tag.get(tag(run_id, create.seq), [])
        duplicates += max(0, len(same) - 1)
        charged_twice += max(0, sum(t["state"] == "success" for t in same) - 1)
    if opts.idempotency_key and duplicates:
        report.violate(
            "retry duplicates despite Idempotency-Key", f"{duplicates} tasks made by retries"
        )
    # Each 502 answers for one stored task (failed, released); the rest had no answer.
    refused = sum(status == 502 for c in creates for status in c.statuses)
    unanswered = len(tasks) - len(accepted) - refused
    outcomes = Counter(c.outcome for c in creates)
    states = Counter(task["state"] for task in tasks)
    errors = Counter(
        orjson.loads(task["error"])["code"] for task in tasks if task["error"] is not None
    )
    lasted = sorted(
        (int(t["completed_at"]) - int(t["created_at"]), t["id"], t["state"], t["submission"])
        for t in tasks
        if t["completed_at"] is not None
    )
    report.figures |= {
        "seconds_to_final": {
            "p50": lasted[len(lasted) // 2][0] if lasted else None,
            "p99": lasted[int(len(lasted) * 0.99)][0] if lasted else None,
            "slowest": [" ".join(map(str, item)) for item in lasted[-5:]],
        },
        "creates_submitted": len(creates),
        "accepted": len(accepted),
        "create_outcomes": dict(outcomes),
        "create_statuses": dict(Counter(s for c in creates for s in c.statuses)),
        "attempts": sum(c.attempts for c in creates),
        "lost_answers": sum(c.lost_answers for c in creates),
        "refused_connections": sum(c.refused_connections for c in creates),
        "tasks_in_db": len(tasks),
        "final": sum(task["state"] in FINAL for task in tasks),
        "states": dict(states),
        "fail_codes": dict(errors),
        "refused_502": refused,
        "tasks_without_answer": unanswered,
        "created_upstream": stats["created"],
        "upstream_tasks_bound": sum(task["upstream_task_id"] is not None for task in tasks),
        "upstream_tasks_never_bound": len(
            set(upstream_names) - {t["upstream_task_id"] for t in tasks}
        ),
        "videos_checked": len(successes),
        "engine_kills": tally.engine_kills,
        "serve_kills": tally.serve_kills,
        "retry_duplicates": duplicates,
        "retry_duplicates_charged_twice": charged_twice,
        "sandbox_faults": stats["faults"],
        "callbacks": {
            name: stats[name]
            for name in (
                "callbacks_sent",
                "callbacks_lost",
                "callbacks_duplicated",
                "callbacks_late",
                "callbacks_undelivered",
            )
        },
        "overlapping_polls_at_sandbox": stats["overlapping_polls"],
    }


async def _gather_limited(calls: list[Any], limit: int = 16) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Any) -> Any:
        async with gate:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


# ---------------------------------------------------------------- one run


async def run_chaos(opts: Options, url: str, workdir: Path) -> Report:
    """One run against the database at ``url`` (a SQLite file: ``serve`` with its engine;
    PostgreSQL: ``serve --no-engine`` and ``opts.engines`` engines), in ``workdir``."""
    kind = "sqlite" if url.startswith("sqlite") else "postgres"
    report = Report(kind, dataclasses.asdict(opts))
    run_id = secrets.token_hex(4)
    tally = Tally()
    started = time.monotonic()
    async with cluster(opts, url, workdir) as run:
        accounts = await make_accounts(run, opts.accounts)
        keys = [key for _, key in accounts]
        until = time.monotonic() + opts.seconds
        kills = asyncio.create_task(killer(run, opts, tally, until))
        try:
            creates = await load(run, opts, keys, run_id, tally)
        finally:
            await kills
        load_s = time.monotonic() - started
        accepted = {c.task_id for c in creates if c.task_id is not None}
        drain_s, unfinished = await drain(url, accepted, opts.drain_s)
        for task in unfinished:
            report.violate("not final after the drain", f"{task}")
        await check(run, url, creates, accounts, run_id, opts, tally, report)
        report.figures |= {
            "load_s": round(load_s, 1),
            "drain_s": round(drain_s, 1),
            "process_starts": {process.name: process.starts for process in run.everything},
        }
    report.figures["violations"] = len(report.violations)
    return report


# ---------------------------------------------------------------- the command


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh database for one run (PostgreSQL: created, and dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'reelgate.db'}"
        return
    name = f"reelgate_chaos_{uuid.uuid4().hex[:8]}"
    psql(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def workspace(keep: Path | None, kind: str) -> Iterator[Path]:
    if keep is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)
        return
    workdir = keep / f"chaos-{kind}-{time.strftime('%Y%m%dT%H%M%S')}"
    workdir.mkdir(parents=True)
    print(f"{kind}: working in {workdir}", flush=True)
    yield workdir


def psql(sql: str) -> None:
    import subprocess

    subprocess.run(
        ["psql", f"{PG_SERVER}/postgres", "-qc", sql], check=True, timeout=60, capture_output=True
    )


ROWS = (
    ("creates submitted", "creates_submitted"),
    ("tasks accepted (202)", "accepted"),
    ("tasks in the database", "tasks_in_db"),
    ("  of them final", "final"),
    ("  refused (502)", "refused_502"),
    ("  answer lost", "tasks_without_answer"),
    ("created upstream", "created_upstream"),
    ("  bound to its task", "upstream_tasks_bound"),
    ("lost answers (retried)", "lost_answers"),
    ("engine kills", "engine_kills"),
    ("API process kills", "serve_kills"),
    ("retry duplicates", "retry_duplicates"),
    ("violations", "violations"),
)


def table(reports: list[Report]) -> str:
    lines = [f"{'':<26}" + "".join(f"{r.database:>12}" for r in reports)]
    for label, name in ROWS:
        lines.append(f"{label:<26}" + "".join(f"{r.figures.get(name, '-'):>12}" for r in reports))
    return "\n".join(lines)


def raise_interrupt(_signum: int, _frame: object) -> NoReturn:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    defaults = Options()
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=defaults.seconds)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="creates a second")
    parser.add_argument("--accounts", type=int, default=defaults.accounts)
    parser.add_argument("--engines", type=int, default=defaults.engines)
    parser.add_argument("--engine-kill-every", type=float, default=defaults.engine_kill_every_s)
    parser.add_argument("--serve-kill-every", type=float, default=defaults.serve_kill_every_s)
    parser.add_argument("--drain", type=float, default=defaults.drain_s, help="at most, seconds")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep each run's directory (logs, SQLite file, videos) under this one",
    )
    parser.add_argument(
        "--idempotency-key",
        action="store_true",
        help="send an Idempotency-Key with each create (the same on its retries)",
    )
    args = parser.parse_args()
    opts = Options(
        seconds=args.seconds,
        rate=args.rate,
        accounts=args.accounts,
        engines=args.engines,
        engine_kill_every_s=args.engine_kill_every,
        serve_kill_every_s=args.serve_kill_every,
        drain_s=args.drain,
        seed=args.seed,
        idempotency_key=args.idempotency_key,
    )
    signal.signal(signal.SIGTERM, raise_interrupt)
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    reports = []
    try:
        for kind in kinds:
            load_average = os.getloadavg()[0]
            with workspace(args.keep, kind) as workdir, database(kind, workdir) as url:
                report = asyncio.run(run_chaos(opts, url, workdir))
            report.figures["load_average_at_start"] = load_average
            reports.append(report)
            out = out_dir / f"chaos-{kind}-{time.strftime('%Y%m%dT%H%M%S')}.json"
            out.write_text(json.dumps(dataclasses.asdict(report), indent=2))
            print(f"{kind}: report {out.relative_to(ROOT)}", flush=True)
    except KeyboardInterrupt:
        sys.exit("interrupted: the processes are stopped and the bench database dropped")
    print()
    print(table(reports))
    for report in reports:
        for violation in report.violations:
            print(f"VIOLATION [{report.database}] {violation}")
    sys.exit(1 if any(report.violations for report in reports) else 0)


if __name__ == "__main__":
    main()
