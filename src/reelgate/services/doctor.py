"""``reelgate doctor``: a deployment's configuration checked end to end, without changing
anything and without spending money.

Each check says what it found and, when something is wrong, how to fix it. Nothing is made on
the way: no database file, no migration, no key file, no admin token, no upstream task (the
upstream is asked for the credits left, which costs nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ssl
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import aiohttp
import orjson
import sqlalchemy as sa

from reelgate.config import Settings
from reelgate.domain.health import gateway_id
from reelgate.domain.secret_key import SecretKey
from reelgate.errors import ReelgateError, UpstreamError
from reelgate.services.secret_key import key_source, load_secret_key
from reelgate.store import meta
from reelgate.store.database import Database
from reelgate.store.migrate import current_revision, head_revision
from reelgate.upstream.kie import KieProvider
from reelgate.upstream.wiring import provider_for

TIMEOUT_S: Final = 10.0
"""The longest any one check waits for an answer."""


class Status(StrEnum):
    OK = "ok"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str | None = None


def _ok(check: str, detail: str) -> Finding:
    return Finding(check, Status.OK, detail)


def _fail(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, Status.FAIL, detail, fix)


def _skip(check: str, detail: str) -> Finding:
    return Finding(check, Status.SKIP, detail)


async def diagnose(settings: Settings) -> list[Finding]:
    """Every check, in the order an operator would fix them."""
    key, key_found = _secret_key(settings)
    findings = [key_found]
    findings += await _database(settings, key)
    findings += await _upstreams(settings)
    findings.append(_media_dir(settings.media_dir))
    findings.append(await _public_url(settings, key))
    findings.append(await _redis(settings))
    return findings


def _secret_key(settings: Settings) -> tuple[SecretKey | None, Finding]:
    try:
        key = load_secret_key(settings)
    except ReelgateError as exc:
        fix = (
            "set REELGATE_SECRET_KEY (`openssl rand -hex 32`), or REELGATE_SECRET_KEY_FILE to the "
            "key file `reelgate serve` made; every process of one gateway needs the same key"
        )
        return None, _fail("secret key", exc.message, fix)
    return key, _ok("secret key", f"read from {key_source(settings)}")


def _missing_sqlite_file(database_url: str) -> Finding | None:
    """Opening a SQLite file that is not there would make it: said instead."""
    url = sa.make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database or "")
    if path.exists():
        return None
    fix = "check REELGATE_DATABASE_URL; `reelgate migrate` (or `reelgate serve`) makes it"
    return _fail("database", f"no database at {path.absolute()}", fix)


async def _database(settings: Settings, key: SecretKey | None) -> list[Finding]:
    missing = _missing_sqlite_file(settings.database_url)
    if missing is not None:
        return [missing]
    db = Database(settings.database_url)
    try:
        return await _database_checks(settings, db, key)
    finally:
        await db.dispose()


async def _database_checks(
    settings: Settings, db: Database, key: SecretKey | None
) -> list[Finding]:
    where = sa.make_url(settings.database_url).render_as_string(hide_password=True)
    try:
        async with asyncio.timeout(TIMEOUT_S):
            current = await current_revision(db)
    except (ReelgateError, TimeoutError) as exc:
        reason = exc.message if isinstance(exc, ReelgateError) else "no answer in time"
        fix = "check REELGATE_DATABASE_URL, and that the database server runs and is reachable"
        return [_fail("database", f"{where} does not answer: {reason}", fix)]
    findings = [_ok("database", f"{where} answers")]
    head = head_revision()
    if current != head:
        found = "never migrated" if current is None else f"at {current}"
        findings.append(
            _fail("schema", f"{found}; this reelgate needs {head}", "run `reelgate migrate`")
        )
        return findings
    findings.append(_ok("schema", f"at {head}, the newest"))
    findings.append(await _key_matches(db, key))
    findings.append(await _admin_token(settings, db))
    return findings


async def _key_matches(db: Database, key: SecretKey | None) -> Finding:
    if key is None:
        return _skip("key matches database", "no secret key to compare")
    kept = await meta.get(db, meta.SECRET_KEY_FINGERPRINT)
    if kept is None:
        return _ok("key matches database", "the database records the key at the first start")
    if not hmac.compare_digest(kept, key.fingerprint()):
        return _fail(
            "key matches database",
            "the database's secrets are sealed under another secret key",
            "give this process the key the gateway was first started with; if it is lost, "
            "see `reelgate secret-key reset`",
        )
    return _ok("key matches database", "the database's secrets are sealed under this key")


async def _admin_token(settings: Settings, db: Database) -> Finding:
    if settings.admin_token:
        return _ok("admin token", "REELGATE_ADMIN_TOKEN is set")
    if await meta.get(db, meta.ADMIN_TOKEN_HASH) is not None:
        return _ok("admin token", "a generated token is kept (as its hash)")
    return _fail(
        "admin token",
        "none: the admin API and /metrics refuse everyone",
        "set REELGATE_ADMIN_TOKEN, or start `reelgate serve` once (it makes one and prints it)",
    )


async def _upstreams(settings: Settings) -> list[Finding]:
    """The one KIE account, or each configured channel, asked a question that costs nothing."""
    try:
        configured = settings.channel_settings()
    except ValueError as exc:
        return [_fail("channels", str(exc), "fix REELGATE_CHANNELS or REELGATE_CHANNELS_FILE")]
    if configured is None:
        return [await _upstream(settings)]
    findings = []
    for channel in configured:
        name = f"channel {channel.id}"
        if not channel.enabled:
            findings.append(_skip(name, "disabled"))
            continue
        provider = provider_for(settings.channel_config(channel), settings)
        try:
            async with asyncio.timeout(TIMEOUT_S * 2):
                await provider.probe()
        except (UpstreamError, TimeoutError) as exc:
            message = exc.message if isinstance(exc, UpstreamError) else "no answer in time"
            findings.append(
                _fail(
                    name,
                    f"{channel.base_url}: {message}",
                    f"check channel {channel.id}'s base_url and api_key, and its account",
                )
            )
        else:
            findings.append(_ok(name, f"{channel.base_url} takes the key"))
        finally:
            await provider.aclose()
    return findings


async def _upstream(settings: Settings) -> Finding:
    if settings.kie_api_key is None:
        return _skip(
            "upstream", "no REELGATE_KIE_API_KEY: `reelgate serve` runs the embedded sandbox"
        )
    provider = KieProvider(
        settings.kie_base_url,
        settings.kie_api_key.get_secret_value(),
        connect_timeout_s=min(settings.kie_connect_timeout_s, TIMEOUT_S),
        timeout_s=min(settings.kie_timeout_s, TIMEOUT_S),
    )
    try:
        credits = await provider.credits()
    except UpstreamError as exc:
        return _fail("upstream", f"{settings.kie_base_url}: {exc.message}", _upstream_fix(exc))
    finally:
        await provider.aclose()
    if credits <= 0:
        return _fail(
            "upstream",
            f"{settings.kie_base_url}: the account has no credits left",
            "top up the upstream account: every create would be refused",
        )
    return _ok("upstream", f"{settings.kie_base_url} takes the key: {credits:g} credits left")


def _upstream_fix(exc: UpstreamError) -> str:
    if exc.code == "upstream_auth":
        return "check REELGATE_KIE_API_KEY"
    if exc.code in ("upstream_unreachable", "upstream_bad_answer", "upstream_not_found"):
        return "check REELGATE_KIE_BASE_URL, and that this machine can reach it"
    if exc.fault == "operator":
        return "check the upstream account (its key, credits and limits)"
    return "the upstream is failing: try again later"


def _media_dir(path: Path) -> Finding:
    where = path.absolute()
    fix = "set REELGATE_MEDIA_DIR to a directory this user can write (shared by API and engines)"
    existing = where
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return _fail("media directory", f"{existing} is not a directory", fix)
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".reelgate-doctor-"):
            pass
    except OSError as exc:
        return _fail("media directory", f"cannot write in {existing}: {exc.strerror}", fix)
    if existing != where:
        return _ok("media directory", f"{where} is made when the first video is kept")
    return _ok("media directory", f"{where} is writable")


async def _public_url(settings: Settings, key: SecretKey | None) -> Finding:
    if settings.public_url is None:
        return _skip(
            "public url", "REELGATE_PUBLIC_URL is not set: upstreams get no callback address"
        )
    url = settings.public_url.rstrip("/") + "/healthz"
    fix = (
        "set REELGATE_PUBLIC_URL to the address the upstream and clients reach this gateway at, "
        "and make sure it routes /healthz to it"
    )
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as client,
            client.get(url, allow_redirects=False) as answer,
        ):
            status, body = answer.status, await answer.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return _fail("public url", f"{url} cannot be reached ({type(exc).__name__})", fix)
    if status != 200:
        return _fail("public url", f"{url} answered {status}", fix)
    answered = _gateway_of(body)
    if key is not None and answered != gateway_id(key.fingerprint()):
        return _fail("public url", f"{url} is answered by another gateway", fix)
    return _ok("public url", f"{url} reaches this gateway")


def _gateway_of(body: bytes) -> str | None:
    with contextlib.suppress(orjson.JSONDecodeError):
        decoded = orjson.loads(body)
        if isinstance(decoded, dict) and isinstance(decoded.get("gateway"), str):
            gateway: str = decoded["gateway"]
            return gateway
    return None


async def _redis(settings: Settings) -> Finding:
    # REELGATE_REDIS_URL belongs to the features that use Redis; until one is configured
    # there is nothing to check.
    url = getattr(settings, "redis_url", None)
    if not url:
        return _skip("redis", "REELGATE_REDIS_URL is not set")
    shown = urlsplit(str(url))._replace(netloc=urlsplit(str(url)).hostname or "").geturl()
    fix = "check REELGATE_REDIS_URL, and that the Redis server runs and is reachable"
    try:
        async with asyncio.timeout(TIMEOUT_S):
            answer = await _redis_ping(str(url))
    except (OSError, TimeoutError, ValueError) as exc:
        return _fail("redis", f"{shown} cannot be reached ({type(exc).__name__})", fix)
    if answer != b"+PONG":
        return _fail("redis", f"{shown} answered {answer[:60]!r} to PING", fix)
    return _ok("redis", f"{shown} answers")


async def _redis_ping(url: str) -> bytes:
    """PING in Redis's own protocol (after AUTH, when the URL carries credentials): the whole
    of what is asked of it here needs no client library."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"not a redis:// URL: {parts.scheme}")
    reader, writer = await asyncio.open_connection(
        parts.hostname or "127.0.0.1",
        parts.port or 6379,
        ssl=ssl.create_default_context() if parts.scheme == "rediss" else None,
    )
    try:
        commands: list[tuple[str, ...]] = []
        if parts.password:
            commands.append(("AUTH", parts.username or "default", parts.password))
        commands.append(("PING",))
        answer = b""
        for command in commands:
            writer.write(_resp(command))
            await writer.drain()
            answer = (await reader.readline()).rstrip(b"\r\n")
            if answer.startswith(b"-"):
                return answer
        return answer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _resp(command: tuple[str, ...]) -> bytes:
    parts = [f"*{len(command)}\r\n".encode()]
    for word in command:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)
