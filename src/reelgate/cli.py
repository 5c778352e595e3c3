"""The command line. Thin: every command calls the same services as the admin API."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import orjson
import sqlalchemy as sa
import typer
from pydantic import BaseModel, SecretStr, ValidationError

from reelgate import logs
from reelgate.api import exports, resources, schemas
from reelgate.config import Settings
from reelgate.domain.listing import MAX_UNIX_S
from reelgate.domain.money import micro_to_usd
from reelgate.domain.numbers import plain_int
from reelgate.domain.usage import GroupBy, UsageQuery, UsageReport, day_start
from reelgate.errors import ReelgateError
from reelgate.services.accounts import AccountService
from reelgate.services.admin_token import ensure_admin_token, rotate_admin_token
from reelgate.services.database import open_database, start_over_with_key
from reelgate.services.doctor import Status, diagnose
from reelgate.services.secret_key import ensure_secret_key, key_source, load_secret_key
from reelgate.services.usage import UsageService
from reelgate.store.database import Database
from reelgate.store.migrate import upgrade

T = TypeVar("T")

app = typer.Typer(
    help="reelgate: a self-hosted gateway for Seedance 2.0 video generation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
accounts_app = typer.Typer(help="Accounts and their balances.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
admin_token_app = typer.Typer(help="The admin API's token.", no_args_is_help=True)
secret_key_app = typer.Typer(
    help="The secret key that seals the secrets the database keeps.", no_args_is_help=True
)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(admin_token_app, name="admin-token")
app.add_typer(secret_key_app, name="secret-key")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        typer.echo(f"error: invalid REELGATE_* setting:\n{exc}", err=True)
        raise typer.Exit(2) from None


def _run(work: Callable[[Database], Awaitable[T]]) -> T:
    """Migrate, then run one piece of async work against the database, opened with the secret
    key; errors become messages."""
    settings = _settings()

    async def main() -> T:
        db = await open_database(settings, load_secret_key(settings))
        try:
            return await work(db)
        finally:
            await db.dispose()

    try:
        upgrade(settings.database_url)
        return asyncio.run(main())
    except ReelgateError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


def _configure_logging(settings: Settings) -> None:
    """Every log line in the format the settings name (see :mod:`reelgate.logs`), none of them
    carrying the secrets this process knows."""
    logs.configure(settings.log_format)
    url = sa.make_url(settings.database_url)
    logs.never_show(
        settings.admin_token,
        *(secret.get_secret_value() for secret in _secrets(settings) if secret is not None),
        url.password if isinstance(url.password, str) else None,
    )


def _secrets(settings: Settings) -> tuple[SecretStr | None, ...]:
    return (
        settings.secret_key,
        settings.kie_api_key,
        settings.kie_webhook_hmac_key,
        settings.media_signing_key,
    )


def _print_json(model: BaseModel) -> None:
    typer.echo(model.model_dump_json(indent=2))


def _print_account(out: schemas.AccountOut) -> None:
    typer.echo(f"account   {out.name} ({out.id})")
    typer.echo(f"balance   {out.balance_usd} USD ({out.balance_micro_usdc} micro-USDC)")
    typer.echo(
        f"reserved  {micro_to_usd(out.reserved_micro_usdc)} USD  available {out.available_usd} USD"
    )
    for key in out.keys or []:
        state = "active" if key.active else "revoked"
        typer.echo(f"key       {key.id}  {key.prefix}...  {state}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    access_log: Annotated[
        bool, typer.Option(help="Log every request: route template, status, duration.")
    ] = False,
    engine: Annotated[
        bool, typer.Option(help="Run the task engine in this process (--no-engine: API only).")
    ] = True,
    console: Annotated[
        bool, typer.Option(help="Serve the web console at /console (--no-console: off).")
    ] = True,
) -> None:
    """Apply migrations and start the gateway (the API and, by default, the task engine)."""
    import uvicorn

    from reelgate.api.server import GatewayServer, server_options
    from reelgate.app import create_app

    settings = _settings()
    # The embedded sandbox is reached at the gateway's own address, so it must be the real one.
    settings = settings.model_copy(
        update={
            "host": host or settings.host,
            "port": port or settings.port,
            "run_engine": settings.run_engine and engine,
            "console": settings.console and console,
            "access_log": settings.access_log or access_log,
        }
    )
    try:
        made = ensure_secret_key(settings)
    except ReelgateError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    if made:
        typer.echo(
            f"\n  Secret key generated in {made} (readable by you only). It seals the secrets the"
            "\n  database keeps: back it up apart from the database, and give every process of"
            "\n  this gateway the same key.\n"
        )
    token = _run(lambda db: ensure_admin_token(db, settings))
    if token:
        typer.echo(
            f"\n  Admin token (shown once; keep it, it is stored only as a hash):\n  {token}\n"
        )
    _configure_logging(settings)
    if settings.console:
        typer.echo(f"console: {settings.loopback_url()}/console (sign in with the admin token)")
    typer.echo(
        "upstream: KIE at " + settings.kie_base_url
        if settings.kie_api_key
        else "upstream: the embedded sandbox (set REELGATE_KIE_API_KEY to create tasks at KIE)"
    )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        # reelgate writes the access log (route templates, never paths with their tokens), and
        # uvicorn's lines go through reelgate's log format.
        access_log=False,
        log_config=None,
        log_level="info",
        **server_options(settings),
    )
    GatewayServer(config, settings.shutdown_drain_s).run()


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8100,
) -> None:
    """Run the KIE-compatible sandbox alone (timings and faults from REELGATE_SANDBOX_*)."""
    import uvicorn

    from reelgate.upstream.sandbox import SandboxSettings, create_sandbox_app

    try:
        settings = SandboxSettings()
    except ValidationError as exc:
        typer.echo(f"error: invalid REELGATE_SANDBOX_* setting:\n{exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(create_sandbox_app(settings), host=host, port=port, log_level="info")


@app.command("engine")
def engine_command(
    once: Annotated[
        bool, typer.Option("--once", help="Do the work that is due now, then exit.")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve /metrics, /healthz and /readyz on this port (REELGATE_HOST)."),
    ] = None,
) -> None:
    """Run only the task engine, for deployments that split it from the API (PostgreSQL)."""
    from reelgate.app import run_engine

    settings = _settings()
    if settings.kie_api_key is None:
        typer.echo(
            "error: a separate engine needs an upstream it can reach: set REELGATE_KIE_API_KEY "
            "(and REELGATE_KIE_BASE_URL for a `reelgate sandbox`); the embedded sandbox lives "
            "inside `reelgate serve`",
            err=True,
        )
        raise typer.Exit(2)
    _configure_logging(settings)

    async def main(_db: Database) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_engine(settings, stop, once=once, metrics_port=metrics_port)

    _run(main)


@app.command()
def doctor(as_json: JsonFlag = False) -> None:
    """Check this deployment's configuration end to end, changing nothing and spending nothing:
    exit 1 naming what is wrong and how to fix it."""
    settings = _settings()
    findings = asyncio.run(diagnose(settings))
    failed = [f for f in findings if f.status is Status.FAIL]
    if as_json:
        shown = {"ok": not failed, "checks": [dataclasses.asdict(f) for f in findings]}
        typer.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
    else:
        width = max(len(f.check) for f in findings)
        for f in findings:
            typer.echo(f"{f.check:<{width}}  {f.status.upper():<4}  {f.detail}")
            if f.fix:
                typer.echo(f"{'':<{width}}        fix: {f.fix}")
        typer.echo(f"\n{len(failed)} problems" if failed else "\nall checks passed")
    if failed:
        raise typer.Exit(1)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = _settings()
    upgrade(settings.database_url)
    typer.echo("database is up to date")


@accounts_app.command("create")
def accounts_create(
    name: str,
    credit_usd: Annotated[str, typer.Option("--credit-usd", help="Opening credit in USD.")] = "0",
    as_json: JsonFlag = False,
) -> None:
    """Create an account, optionally with an opening credit."""
    out = resources.account_out(
        _run(lambda db: AccountService(db).create(name, credit_usd)), keys=[]
    )
    _print_json(out) if as_json else _print_account(out)


@accounts_app.command("credit")
def accounts_credit(
    name: str,
    usd: Annotated[str, typer.Option("--usd", help="USD to add.")],
    note: Annotated[str | None, typer.Option(help="Why, for the ledger.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add credit to an account."""
    out = resources.account_out(_run(lambda db: AccountService(db).credit(name, usd, note)))
    _print_json(out) if as_json else _print_account(out)


@accounts_app.command("show")
def accounts_show(name: str, as_json: JsonFlag = False) -> None:
    """Show an account's balance, reservations and keys."""
    out = resources.account_view_out(_run(lambda db: AccountService(db).show(name)))
    _print_json(out) if as_json else _print_account(out)


@keys_app.command("create")
def keys_create(account: str, as_json: JsonFlag = False) -> None:
    """Create an API key for an account. The key is shown once."""
    out = resources.issued_key_out(_run(lambda db: AccountService(db).create_key(account)))
    if as_json:
        _print_json(out)
    else:
        typer.echo(f"key id  {out.id}")
        typer.echo(f"key     {out.key}")
        typer.echo("This is the only time the key is shown; only its hash is stored.")


@keys_app.command("revoke")
def keys_revoke(key_id: str, as_json: JsonFlag = False) -> None:
    """Revoke an API key. Requests with it are refused from then on."""
    out = resources.key_out(_run(lambda db: AccountService(db).revoke_key(key_id)))
    _print_json(out) if as_json else typer.echo(f"revoked {out.id}")


@app.command()
def audit(as_json: JsonFlag = False) -> None:
    """Check the ledger's invariants; exit 1 naming each violation."""
    violations = _run(lambda db: AccountService(db).audit())
    if as_json:
        _print_json(schemas.AuditOut(ok=not violations, violations=violations))
    elif violations:
        for violation in violations:
            typer.echo(f"VIOLATION {violation}", err=True)
    else:
        typer.echo("ledger ok: balances, reservations and settlements all agree")
    if violations:
        raise typer.Exit(1)


def _when(text: str | None, option: str) -> int | None:
    """A time given on the command line: Unix seconds, or a date (00:00 UTC)."""
    if text is None:
        return None
    seconds = plain_int(text)
    if seconds is None:
        try:
            seconds = day_start(text)
        except ValueError:
            seconds = None
    if seconds is None or not 0 <= seconds <= MAX_UNIX_S:
        raise typer.BadParameter(
            f"{text!r} is neither Unix seconds (0 to {MAX_UNIX_S}) nor a date YYYY-MM-DD",
            param_hint=option,
        )
    return seconds


def _print_usage(report: UsageReport) -> None:
    name = report.query.group_by.value
    width = max([len(name), len("total"), *(len(row.group) for row in report.rows)])
    typer.echo(
        f"{name:<{width}}  {'success':>7}  {'fail':>7}  {'seconds':>9}"
        f"  {'committed USD':>16}  {'released USD':>16}"
    )
    for group, f in [*((row.group, row.figures) for row in report.rows), ("total", report.total)]:
        typer.echo(
            f"{group:<{width}}  {f.tasks_success:>7}  {f.tasks_fail:>7}  {f.generated_seconds:>9}"
            f"  {micro_to_usd(f.committed_micro_usdc):>16}"
            f"  {micro_to_usd(f.released_micro_usdc):>16}"
        )


@app.command()
def usage(
    account: Annotated[
        str | None, typer.Argument(help="The account's name; every account when left out.")
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option("--from", help="Start, inclusive: Unix seconds or a UTC date YYYY-MM-DD."),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="End, exclusive: Unix seconds or a UTC date YYYY-MM-DD."),
    ] = None,
    group_by: Annotated[
        GroupBy, typer.Option("--group-by", help="One row per UTC day, model, API key or account.")
    ] = GroupBy.DAY,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print CSV with a header row (amounts in micro-USDC).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Usage in a period: tasks by final state, seconds generated, money committed and released.
    Each task counts once, when it ended, from the ledger entry that settled it."""
    from_s, to_s = _when(from_, "--from"), _when(to, "--to")

    async def work(db: Database) -> UsageReport:
        service = UsageService(db)
        account_id = None if account is None else await service.account_id(account)
        return await service.usage(UsageQuery(account_id, group_by, from_s or 0, to_s))

    report = _run(work)
    if as_json:
        _print_json(resources.usage_out(report))
    elif as_csv:
        pending, write = exports.writer()
        write([exports.usage_header(report), *exports.usage_rows(report)])
        typer.echo(pending.take().decode(), nl=False)
    else:
        _print_usage(report)


@admin_token_app.command("rotate")
def admin_token_rotate() -> None:
    """Replace the generated admin token; restart the gateway to use the new one."""
    token = _run(rotate_admin_token)
    typer.echo(token)


@secret_key_app.command("reset")
def secret_key_reset(
    yes: Annotated[
        bool, typer.Option("--yes", help="Yes: replace every account's webhook secret.")
    ] = False,
) -> None:
    """After losing the secret key: seal under the key this command is given from now on (a new
    key file is made when there is neither key nor file).

    Every account gets a new webhook secret (its receivers need it), and video links and
    upstream callback links made before stop working. Balances, the ledger, API keys and tasks
    are kept. Stop the gateway first; give every process the new key.
    """
    if not yes:
        typer.echo(
            "error: this replaces every account's webhook secret: run it again with --yes",
            err=True,
        )
        raise typer.Exit(2)
    settings = _settings()
    try:
        upgrade(settings.database_url)
        made = ensure_secret_key(settings)
        key = load_secret_key(settings)
        replaced = asyncio.run(start_over_with_key(settings, key))
    except ReelgateError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    if made:
        typer.echo(f"secret key generated in {made}: back it up apart from the database")
    typer.echo(
        f"the database's secrets are sealed under {key_source(settings)} from now on: "
        f"{replaced} accounts have new webhook secrets"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
