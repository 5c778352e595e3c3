"""``reelgate doctor`` as operators run it, against a real sandbox and real databases: it passes a
good deployment, and names each thing that is wrong, with how to fix it, exiting 1. It changes
nothing on the way."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from reelgate.config import Settings
from reelgate.services.doctor import Status, diagnose
from reelgate.store.migrate import upgrade
from tests.conftest import (
    ADMIN_TOKEN,
    REQUIRE_SERVICES,
    SANDBOX_KEY,
    GatewayFactory,
    SandboxFactory,
)
from tests.integration.cli_runner import CliResult, run_cli, sql

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database of the test's own (where the database does not matter)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'doctor.db'}"
    upgrade(url)
    return url


def _settings(sandbox: str, media: Path, **more: str | None) -> dict[str, str | None]:
    return {
        "REELGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "REELGATE_KIE_API_KEY": SANDBOX_KEY,
        "REELGATE_KIE_BASE_URL": sandbox,
        "REELGATE_MEDIA_DIR": str(media),
        **more,
    }


def _checks(result: CliResult) -> dict[str, dict[str, Any]]:
    shown = json.loads(result.stdout)
    assert shown["ok"] is (result.code == 0), result
    return {check["check"]: check for check in shown["checks"]}


def _failed(result: CliResult) -> dict[str, dict[str, Any]]:
    assert result.code == 1, result
    return {name: c for name, c in _checks(result).items() if c["status"] == "fail"}


async def test_doctor_passes_a_deployment_whose_every_part_works(
    start_gateway: GatewayFactory,
    start_sandbox: SandboxFactory,
    database_url: str,
    tmp_path: Path,
) -> None:
    gateway = start_gateway()  # opens the database with the key, as serve does
    result = await run_cli(
        database_url,
        "doctor",
        "--json",
        settings=_settings(
            start_sandbox(), tmp_path / "media", REELGATE_PUBLIC_URL=gateway.base_url
        ),
    )
    assert result.code == 0, result
    statuses = {name: check["status"] for name, check in _checks(result).items()}
    assert statuses == {
        "secret key": "ok",
        "database": "ok",
        "schema": "ok",
        "key matches database": "ok",
        "admin token": "ok",
        "upstream": "ok",
        "media directory": "ok",
        "public url": "ok",
        "redis": "skip",
    }


async def test_doctor_prints_a_table_naming_each_check(
    start_sandbox: SandboxFactory, sqlite_url: str, tmp_path: Path
) -> None:
    result = await run_cli(
        sqlite_url, "doctor", settings=_settings(start_sandbox(), tmp_path / "media")
    )
    assert result.code == 0, result
    assert result.stdout.splitlines()[0].split()[:3] == ["secret", "key", "OK"]
    assert "credits left" in result.stdout
    assert result.stdout.rstrip().endswith("all checks passed")


async def test_doctor_names_a_wrong_upstream_key(
    start_sandbox: SandboxFactory, sqlite_url: str, tmp_path: Path
) -> None:
    settings = _settings(start_sandbox(), tmp_path / "media", REELGATE_KIE_API_KEY="wrong-key")
    failed = _failed(await run_cli(sqlite_url, "doctor", "--json", settings=settings))
    assert set(failed) == {"upstream"}
    assert "REELGATE_KIE_API_KEY" in failed["upstream"]["fix"]
    assert "wrong-key" not in json.dumps(failed)


async def test_doctor_names_an_unreachable_upstream_and_public_url(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = _settings(
        "http://127.0.0.1:9", tmp_path / "media", REELGATE_PUBLIC_URL="http://127.0.0.1:9"
    )
    failed = _failed(await run_cli(sqlite_url, "doctor", "--json", settings=settings))
    assert set(failed) == {"upstream", "public url"}
    assert "REELGATE_KIE_BASE_URL" in failed["upstream"]["fix"]
    assert "REELGATE_PUBLIC_URL" in failed["public url"]["fix"]


async def test_doctor_names_a_media_directory_it_cannot_write(
    start_sandbox: SandboxFactory, sqlite_url: str, tmp_path: Path
) -> None:
    # Not a permission (tests may run as root, who writes anywhere): a file stands in the way.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings = _settings(start_sandbox(), blocker / "media")
    failed = _failed(await run_cli(sqlite_url, "doctor", "--json", settings=settings))
    assert set(failed) == {"media directory"}
    assert "REELGATE_MEDIA_DIR" in failed["media directory"]["fix"]
    assert blocker.is_file()


async def test_doctor_names_a_missing_secret_key_and_admin_token_and_makes_neither(
    start_sandbox: SandboxFactory, sqlite_url: str, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    settings = _settings(
        start_sandbox(),
        tmp_path / "media",
        REELGATE_SECRET_KEY=None,
        REELGATE_ADMIN_TOKEN=None,
    )
    result = await run_cli(sqlite_url, "doctor", "--json", cwd=workdir, settings=settings)
    failed = _failed(result)
    assert set(failed) == {"secret key", "admin token"}
    assert "REELGATE_SECRET_KEY" in failed["secret key"]["fix"]
    assert "REELGATE_ADMIN_TOKEN" in failed["admin token"]["fix"]
    assert list(workdir.iterdir()) == [], "doctor made nothing"


async def test_doctor_names_a_database_that_is_not_there_without_making_it(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "missing.db"
    result = await run_cli(f"sqlite:///{missing}", "doctor", "--json")
    failed = _failed(result)
    assert "database" in failed
    assert "reelgate migrate" in failed["database"]["fix"]
    assert not missing.exists()


async def test_doctor_names_a_schema_behind_this_reelgate(sqlite_url: str) -> None:
    url = sqlite_url
    await sql(url, "UPDATE alembic_version SET version_num = '0006'")
    failed = _failed(await run_cli(url, "doctor", "--json"))
    assert "schema" in failed
    assert failed["schema"]["fix"] == "run `reelgate migrate`"


class _WithRedis(Settings):
    """Settings as they will be once a feature that uses Redis adds REELGATE_REDIS_URL."""

    redis_url: str | None = None


async def test_doctor_checks_redis_when_a_redis_url_is_set(tmp_path: Path) -> None:
    if not await _redis_answers():
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis is required under CI at {REDIS_URL}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    database = f"sqlite:///{tmp_path / 'none.db'}"
    found = {
        url: next(
            f
            for f in await diagnose(_WithRedis(database_url=database, redis_url=url))
            if f.check == "redis"
        )
        for url in (REDIS_URL, "redis://127.0.0.1:9/0")
    }
    assert found[REDIS_URL].status is Status.OK, found
    assert found["redis://127.0.0.1:9/0"].status is Status.FAIL
    assert "REELGATE_REDIS_URL" in (found["redis://127.0.0.1:9/0"].fix or "")


async def _redis_answers() -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", 6379), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def test_doctor_asks_each_configured_channel_and_names_the_one_that_fails(
    start_sandbox: SandboxFactory, sqlite_url: str, tmp_path: Path
) -> None:
    channels = [
        {"id": "main", "base_url": start_sandbox(), "api_key": SANDBOX_KEY},
        {
            "id": "ark",
            "provider": "modelark",
            "base_url": start_sandbox(protocol="modelark") + "/api/v3",
            "api_key": "wrong-key",
        },
        {"id": "off", "base_url": "http://127.0.0.1:9", "api_key": "k", "enabled": False},
    ]
    settings = _settings(
        "http://127.0.0.1:9", tmp_path / "media", REELGATE_CHANNELS=json.dumps(channels)
    )
    checks = _checks(await run_cli(sqlite_url, "doctor", "--json", settings=settings))
    assert checks["channel main"]["status"] == "ok"
    assert checks["channel ark"]["status"] == "fail"
    assert "channel ark" in checks["channel ark"]["fix"]
    assert checks["channel off"]["status"] == "skip"
    assert "wrong-key" not in json.dumps(checks)
