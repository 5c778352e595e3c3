"""The command line. Thin: every command calls the same services as the admin API."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import orjson
import sqlalchemy as sa
import typer
from pydantic import BaseModel, SecretStr, ValidationError

from reelgate import logs
from reelgate.api import resources, schemas
from reelgate.config import Settings
from reelgate.domain.listing import MAX_UNIX_S
from reelgate.domain.money import micro_to_usd
from reelgate.domain.numbers import plain_int
from reelgate.domain.usage import GroupBy, UsageQuery, UsageReport, day_start
from reelgate.errors import ReelgateError
from reelgate.services.accounts import AccountService
from reelgate.services.admin_token import ensure_admin_token, rotate_admin_token
from reelgate.services.database import open_database, start_over_with_key
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
    try:
        configured = settings.channel_settings()
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if configured is not None:
        typer.echo(
            "upstream channels: "
            + ", ".join(f"{c.id} ({c.provider} at {c.base_url})" for c in configured)
        )
    else:
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
    protocol: Annotated[
        str | None,
        typer.Option(
            help="Which upstream API to speak: kie (KIE's Market API, the default) or modelark "
            "(ModelArk's task API, under /api/v3); else REELGATE_SANDBOX_PROTOCOL."
        ),
    ] = None,
) -> None:
    """Run the sandbox alone (timings and faults from REELGATE_SANDBOX_*)."""
    import uvicorn

    from reelgate.upstream.sandbox import SandboxSettings, create_sandbox_app

    if protocol not in (None, "kie", "modelark"):
        typer.echo(f"error: --protocol must be kie or modelark, not {protocol!r}", err=True)
        raise typer.Exit(2)
    try:
        settings = SandboxSettings()
        if protocol is not None:
            settings = settings.model_copy(update={"protocol": protocol})
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
    if settings.kie_api_key is None and settings.channels is None and not settings.channels_file:
        typer.echo(
            "error: a separate engine needs an upstream it can reach: set REELGATE_CHANNELS or "
            "REELGATE_KIE_API_KEY "
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
    from reelgate.services.doctor import Status, diagnose

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


RateOption = Annotated[
    str | None,
    typer.Option(
        "--rate", help="Requests per s, min or h, creates and reads each: 5/s. 'none' removes it."
    ),
]
BurstOption = Annotated[
    int | None,
    typer.Option(
        "--burst", help="Requests at once after a quiet spell (default: the rate's count)."
    ),
]
InFlightOption = Annotated[
    str | None,
    typer.Option("--max-in-flight", help="Tasks not yet final, at most. 'none' removes it."),
]
ModelsOption = Annotated[
    str | None,
    typer.Option(
        "--models", help="Models the key may use: seedance-2-fast,seedance-2. 'none' removes it."
    ),
]
BudgetOption = Annotated[
    str | None,
    typer.Option(
        "--budget-usd", help="Spending cap per UTC day, month or total: 50/day. 'none' removes it."
    ),
]
ExpiresOption = Annotated[
    str | None,
    typer.Option(
        "--expires-in", help="Refuse the key after this long: 30d, 12h, 90m. 'none' removes it."
    ),
]
NameOption = Annotated[str | None, typer.Option("--name", help="A name to know the key by.")]


def _key_settings(
    name: str | None,
    rate: str | None,
    burst: int | None,
    max_in_flight: str | None,
    models: str | None,
    budget_usd: str | None,
    expires_in: str | None,
) -> dict[str, object]:
    """The flags given, as the settings the accounts service takes ('none' removes a limit)."""
    given: dict[str, object] = {}
    for field, value in (
        ("name", name),
        ("rate", rate),
        ("models", models),
        ("budget_usd", budget_usd),
        ("expires_in", expires_in),
    ):
        if value is not None:
            given[field] = None if value.lower() == "none" else value
    if burst is not None:
        given["burst"] = burst
    if max_in_flight is not None:
        if max_in_flight.lower() == "none":
            given["max_in_flight"] = None
        else:
            count = plain_int(max_in_flight)
            if count is None:
                raise typer.BadParameter("an integer, or 'none'", param_hint="--max-in-flight")
            given["max_in_flight"] = count
    return given


def _print_key(out: schemas.KeyOut) -> None:
    state = "active" if out.active else "revoked"
    typer.echo(
        f"key id     {out.id}  {out.prefix}...  {state}" + (f"  {out.name}" if out.name else "")
    )
    limits = out.limits
    if limits is None:
        return
    shown = [
        ("rate", None if limits.rate is None else f"{limits.rate} (burst {limits.burst})"),
        ("in flight", limits.max_in_flight),
        ("models", None if limits.models is None else ",".join(limits.models)),
        ("budget", None if limits.budget_usd is None else limits.budget_usd.replace("/", " USD/")),
        ("expires", limits.expires_at),
    ]
    for label, value in shown:
        if value is not None:
            typer.echo(f"  {label:<9} {value}")


@keys_app.command("create")
def keys_create(
    account: str,
    rate: RateOption = None,
    burst: BurstOption = None,
    max_in_flight: InFlightOption = None,
    models: ModelsOption = None,
    budget_usd: BudgetOption = None,
    expires_in: ExpiresOption = None,
    name: NameOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key for an account, with optional limits. The key is shown once."""
    given = _key_settings(name, rate, burst, max_in_flight, models, budget_usd, expires_in)
    out = resources.issued_key_out(_run(lambda db: AccountService(db).create_key(account, given)))
    if as_json:
        _print_json(out)
    else:
        _print_key(out)
        typer.echo(f"key        {out.key}")
        typer.echo("This is the only time the key is shown; only its hash is stored.")


@keys_app.command("update")
def keys_update(
    key_id: str,
    rate: RateOption = None,
    burst: BurstOption = None,
    max_in_flight: InFlightOption = None,
    models: ModelsOption = None,
    budget_usd: BudgetOption = None,
    expires_in: ExpiresOption = None,
    name: NameOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Change an API key's name or limits; what is not given stays. Running gateways apply it
    at once."""
    given = _key_settings(name, rate, burst, max_in_flight, models, budget_usd, expires_in)
    out = resources.key_out(_run(lambda db: AccountService(db).update_key(key_id, given)))
    _print_json(out) if as_json else _print_key(out)


@keys_app.command("list")
def keys_list(account: str, as_json: JsonFlag = False) -> None:
    """List an account's API keys and their limits."""
    keys = _run(lambda db: AccountService(db).list_keys(account))
    out = schemas.KeyList(data=[resources.key_out(key) for key in keys])
    if as_json:
        _print_json(out)
    else:
        for key in out.data:
            _print_key(key)


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


@app.command()
def task(
    task_id: Annotated[str, typer.Argument(help="The task's id, of any account.")],
    as_json: JsonFlag = False,
) -> None:
    """A task of any account, as GET /admin/tasks/{task_id} shows it: its state, the states it
    went through and for how long, its webhook's delivery attempts and its ledger entries."""
    from reelgate.services.history import TaskHistory
    from reelgate.services.signing import media_signing_key

    settings = _settings()

    async def work(db: Database) -> schemas.AdminTaskDetail:
        record, history = await TaskHistory(db).task(task_id)
        view = resources.TaskView.of(settings, await media_signing_key(db, settings))
        return resources.admin_task_detail(view, record, history, int(time.time()))

    detail = _run(work)
    if as_json:
        _print_json(detail)
    else:
        _print_task(detail)


def _print_task(detail: schemas.AdminTaskDetail) -> None:
    billing = detail.billing
    typer.echo(f"{detail.task_id}  {detail.model}  {detail.state}  {detail.progress} %")
    typer.echo(f"account {detail.account_id}  key {detail.key_id}")
    typer.echo(
        f"billing {billing.status}  reserved {micro_to_usd(billing.reserve_amount_micro_usdc)} "
        f"USD  charged {micro_to_usd(billing.actual_amount_micro_usdc)} USD"
    )
    if detail.error:
        typer.echo(f"error {detail.error.get('code')}: {detail.error.get('message')}")
    typer.echo("\nSTATE        ENTERED (UTC)             FOR       DETAIL")
    for step in detail.timeline:
        stayed = "-" if step.duration_ms is None else f"{step.duration_ms / 1000:.1f} s"
        mark = " (now)" if step.current else ""
        typer.echo(
            f"{step.state:<12} {_utc_ms(step.entered_at_ms):<25} {stayed:>8}  "
            f"{step.detail or ''}{mark}"
        )
    if detail.webhook_attempts:
        typer.echo("\nATTEMPT  SENT (UTC)                    TOOK  ANSWER")
        for attempt in detail.webhook_attempts:
            answer = f"HTTP {attempt.response_code}" if attempt.response_code else ""
            answer = "; ".join(part for part in (answer, attempt.error) if part)
            typer.echo(
                f"{attempt.attempt:>7}  {_utc_ms(attempt.at_ms):<25} "
                f"{attempt.duration_ms:>6} ms  {answer}"
            )
    typer.echo("\nLEDGER   USD           AT (UTC)")
    for entry in detail.ledger:
        typer.echo(
            f"{entry.kind:<8} {micro_to_usd(entry.amount_micro_usdc):>12}  {_utc(entry.created_at)}"
        )


def _utc(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def _utc_ms(ms: int) -> str:
    return f"{_utc(ms // 1000)}.{ms % 1000:03d}"


@app.command()
def channels(as_json: JsonFlag = False) -> None:
    """The upstream channels with their live health (circuit, in flight, error rate, last
    error), as every process of this deployment sees it."""
    from reelgate.api.resources import channel_list
    from reelgate.services.channels import channel_statuses
    from reelgate.upstream.wiring import channel_configs

    settings = _settings()
    try:
        configs = channel_configs(settings)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    listed = channel_list(_run(lambda db: channel_statuses(db, configs)))
    if as_json:
        _print_json(listed)
        return
    typer.echo(
        f"{'CHANNEL':<16} {'PROVIDER':<9} {'PRIO':>4} {'WEIGHT':>6} {'MARGIN':>7} "
        f"{'CIRCUIT':<9} {'IN FLIGHT':>9} {'ERRORS':>7}  LAST ERROR"
    )
    for c in listed.data:
        state = c.circuit if c.enabled else "disabled"
        flight = f"{c.in_flight}" + (f"/{c.max_in_flight}" if c.max_in_flight else "")
        typer.echo(
            f"{c.id:<16} {c.provider:<9} {c.priority:>4} {c.weight:>6} {c.margin:>7g} "
            f"{state:<9} {flight:>9} {c.error_rate:>7.0%}  {c.last_error or '-'}"
        )


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
        from reelgate.api import exports

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
