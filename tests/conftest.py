"""Shared fixtures: real databases (a SQLite file, a fresh PostgreSQL database) and a real
gateway served over loopback HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import socket
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
import uvicorn

from reelgate.api.server import server_options
from reelgate.app import create_app
from reelgate.config import Settings
from reelgate.domain.secret_key import SecretKey
from reelgate.store.database import Database
from reelgate.store.migrate import upgrade
from reelgate.store.schema import metadata
from reelgate.store.sealing import Sealer
from reelgate.upstream.provider import Provider
from reelgate.upstream.sandbox import SandboxSettings, create_sandbox_app

PG_ADMIN_DSN = os.environ.get("REELGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_TOKEN = "rga_test-admin-token"
# Every gateway, command and engine a test starts gets this key, so that none writes a key file
# into the working directory (the repository) and processes sharing a database share the key.
TEST_SECRET_KEY = "7e57" * 16
SANDBOX_KEY = "sandbox-test-key"
# Under CI a missing PostgreSQL is a failure, not a skip.
REQUIRE_SERVICES = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _settings_only_from_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's REELGATE_* variables must not change what a test runs against."""
    for name in list(os.environ):
        if name.startswith("REELGATE_") and name != "REELGATE_TEST_PG":
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True, scope="session")
def _no_key_file_left_in_the_working_directory() -> Iterator[None]:
    """Every process a test starts has a key or works in a directory of its own: none may make
    the default key file in the working directory (the repository)."""
    default = Path("reelgate.key").absolute()
    existed = default.exists()
    yield
    assert existed or not default.exists(), f"a test made {default}"


def _postgres_unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"PostgreSQL is required under CI: {reason}")
    pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_DSN}: {reason}")


async def _pg_admin(sql: str, database: str | None = None) -> None:
    dsn = PG_ADMIN_DSN if database is None else f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{database}"
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_url(name: str) -> str:
    return Settings(database_url=f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}").database_url


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this run, migrated once and emptied before each test: much faster
    than creating and migrating a database per test."""
    name = f"reelgate_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        _postgres_unavailable(str(exc))
    try:
        upgrade(_pg_url(name))
        yield name
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per worker, its write-ahead log folded in: each test gets a
    copy, the same bytes a migration of its own would leave, without running one per test."""
    path = tmp_path_factory.mktemp("template") / "reelgate.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a new SQLite file, or the run's PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "reelgate.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    name = request.getfixturevalue("pg_database")
    # TRUNCATE fires no row triggers, so it also empties the append-only ledger.
    asyncio.run(_pg_admin(f"TRUNCATE {', '.join(metadata.tables)} RESTART IDENTITY CASCADE", name))
    yield _pg_url(name)


def open_database(url: str) -> Database:
    """The database as the test's gateways open it: with the test's secret key."""
    return Database(url, Sealer(SecretKey.parse(TEST_SECRET_KEY)))


# Each pytest-xdist worker takes its ports from a block of its own below the kernel's ephemeral
# range (32768 and up), so no other worker's server and no client connection's local port can
# take a port between the moment a test picks it and the moment its server binds it.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_PORT_BLOCK = 2000
_FIRST_PORT = 20000 + _WORKER * _PORT_BLOCK
_ports = itertools.count()


def free_port() -> int:
    """A loopback port nothing listens on now, from this worker's block."""
    for _ in range(_PORT_BLOCK):
        port = _FIRST_PORT + next(_ports) % _PORT_BLOCK
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port in this worker's block")


@dataclass
class RunningGateway:
    base_url: str
    settings: Settings

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30, **kwargs)

    def admin(self) -> httpx.AsyncClient:
        return self.client(ADMIN_TOKEN)

    async def account_with_key(self, name: str, credit_usd: str = "100") -> str:
        """Create an account through the admin API and return a new key's secret."""
        async with self.admin() as admin:
            created = await admin.post(
                "/admin/accounts", json={"name": name, "credit_usd": credit_usd}
            )
            assert created.status_code == 201, created.text
            issued = await admin.post(f"/admin/accounts/{name}/keys")
            assert issued.status_code == 201, issued.text
            key: str = issued.json()["key"]
            return key


class _ServerThread:
    """uvicorn serving the app on a loopback port, in a thread with its own event loop."""

    def __init__(self, app: Any, port: int, **options: Any) -> None:
        # A request a test left held (a sandbox told to hang) is cut off at the test's end
        # rather than waited for.
        options.setdefault("timeout_graceful_shutdown", 2)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _ServerThread:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            if not self.thread.is_alive():
                raise RuntimeError("the gateway did not start")
            threading.Event().wait(0.01)
        raise RuntimeError("the gateway did not start within 5 s")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


GatewayFactory = Callable[..., RunningGateway]


@pytest.fixture
def start_gateway(database_url: str, tmp_path: Path) -> Iterator[GatewayFactory]:
    """Start gateways on the test's database; each is stopped when the test ends."""
    servers: list[_ServerThread] = []

    def start(provider: Provider | None = None, **overrides: Any) -> RunningGateway:
        """Without a provider, the gateway runs its embedded sandbox, as ``reelgate serve`` does.
        The task engine is off unless ``run_engine=True``: tasks stay where the test put them."""
        port = overrides.pop("port", None) or free_port()
        settings = Settings(
            port=port,
            **{
                "database_url": database_url,
                "admin_token": ADMIN_TOKEN,
                "secret_key": TEST_SECRET_KEY,
                "change_poll_interval_s": 0.02,
                "run_engine": False,
                "media_dir": tmp_path / "gateway-media",
                **overrides,
            },
        )
        # Served as `reelgate serve` serves it: the same server limits.
        server = _ServerThread(
            create_app(settings, provider), port, **server_options(settings)
        ).__enter__()
        servers.append(server)
        return RunningGateway(f"http://127.0.0.1:{port}", settings)

    yield start
    for server in servers:
        server.__exit__()


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> RunningGateway:
    return start_gateway()


@pytest.fixture
async def api_key(gateway: RunningGateway) -> str:
    return await gateway.account_with_key("alice")


SandboxFactory = Callable[..., str]


@pytest.fixture
def start_sandbox(tmp_path: Path) -> Iterator[SandboxFactory]:
    """Serve KIE-compatible sandboxes on loopback ports; returns each one's base URL. Settings
    default to short timings, API key ``SANDBOX_KEY`` and a per-test media directory."""
    servers: list[_ServerThread] = []

    def start(**overrides: Any) -> str:
        settings = SandboxSettings(
            **{
                "api_key": SANDBOX_KEY,
                "waiting_s": 0.2,
                "queuing_s": 0.2,
                "generating_s": 0.4,
                "media_dir": tmp_path / "sandbox-media",
                "seed": 7,
                **overrides,
            }
        )
        port = free_port()
        servers.append(_ServerThread(create_sandbox_app(settings), port).__enter__())
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.__exit__()


@pytest.fixture
def quick_sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Short stage timings for the sandbox embedded in gateways the test starts; returns the
    directory it renders into."""
    media = tmp_path / "sandbox-media"
    for name, value in {
        "WAITING_S": "0.2",
        "QUEUING_S": "0.2",
        "GENERATING_S": "0.6",
        "MEDIA_DIR": str(media),
    }.items():
        monkeypatch.setenv(f"REELGATE_SANDBOX_{name}", value)
    return media
