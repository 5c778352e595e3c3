"""``reel``: generate videos through a reelgate gateway from the command line.

Exit status: 0 done, 1 the task failed, 2 a usage error (a bad option, no API key, a price
not confirmed), 3 an error of the API or of reaching it, with its message; 130 on Ctrl-C."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, ParamSpec, TypeVar

import typer
from rich.console import Console

from reelgate_client.cli import display
from reelgate_client.client import Reelgate
from reelgate_client.errors import ReelgateError, TaskFailed
from reelgate_client.pricing import usd
from reelgate_client.types import Task

EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_API: Final = 3
EXIT_INTERRUPTED: Final = 130

app = typer.Typer(
    help="Generate videos through a reelgate gateway.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
tasks_app = typer.Typer(help="Your tasks: list, show, watch, download.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON and nothing else.")
]


@dataclass
class Options:
    base_url: str | None
    api_key: str | None


P = ParamSpec("P")
R = TypeVar("R")


def _out() -> Console:
    return Console(highlight=False)


def _err() -> Console:
    # Messages are not wrapped: they are read by people and by scripts alike.
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _client(ctx: typer.Context) -> Reelgate:
    options: Options = ctx.obj
    try:
        return Reelgate(base_url=options.base_url, api_key=options.api_key)
    except ValueError as exc:
        _err().print(f"error: {exc}")
        raise typer.Exit(EXIT_USAGE) from None


def _needs_key(ctx: typer.Context) -> None:
    options: Options = ctx.obj
    if not options.api_key:
        _err().print("error: no API key: set REELGATE_API_KEY or pass --api-key")
        raise typer.Exit(EXIT_USAGE)


def handled(as_json_arg: str = "as_json") -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Errors become an exit status and their message (a JSON error body under --json)."""

    def wrap(command: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(command)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            as_json = bool(kwargs.get(as_json_arg, False))
            try:
                return command(*args, **kwargs)
            except TaskFailed as failed:
                if as_json:
                    display.print_json(_out(), failed.task.raw)
                else:
                    _err().print(f"task {failed.task_id} failed: {failed.code}: {failed.message}")
                raise typer.Exit(EXIT_FAILED) from None
            except ReelgateError as exc:
                if as_json:
                    display.print_json(_out(), _error_body(exc))
                else:
                    _err().print(f"error: {exc}")
                raise typer.Exit(EXIT_API) from None
            except ValueError as exc:
                _err().print(f"error: {exc}")
                raise typer.Exit(EXIT_USAGE) from None
            except KeyboardInterrupt:
                # A task already created goes on (and is charged if it succeeds).
                _err().print("interrupted: a task already created goes on at the gateway")
                raise typer.Exit(EXIT_INTERRUPTED) from None

        return run

    return wrap


def _error_body(exc: ReelgateError) -> dict[str, Any]:
    return {
        "error": exc.error,
        "message": exc.message,
        "type": exc.type,
        "code": exc.code,
        "param": exc.param,
        "status": exc.status,
    }


@app.callback()
def main_options(
    ctx: typer.Context,
    base_url: Annotated[
        str | None,
        typer.Option(envvar="REELGATE_BASE_URL", help="The gateway (default 127.0.0.1:8000)."),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="REELGATE_API_KEY", help="Your API key.", show_default=False),
    ] = None,
) -> None:
    ctx.obj = Options(base_url, api_key)


def _follow(rg: Reelgate, task: Task, timeout: float, as_json: bool) -> Task:
    # The first event of the task's stream is shown, not the create's envelope: it has the
    # billing too.
    view = display.task_view(_out(), as_json)
    try:
        return rg.tasks.wait(task.task_id, timeout=timeout, on_update=view.update)
    finally:
        view.close()


def _download(rg: Reelgate, task_id: str, out: Path, index: int, as_json: bool) -> Path:
    view = display.download_view(_out(), as_json)
    try:
        return rg.tasks.download(task_id, out, index=index, on_progress=view.update)
    finally:
        view.close()


@app.command()
@handled()
def generate(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="What the video shows (3 characters or more).")],
    model: Annotated[str, typer.Option(help="seedance-2 or seedance-2-fast.")] = "seedance-2-fast",
    resolution: Annotated[
        str | None, typer.Option(help="480p, 720p or 1080p (the model's default: 720p).")
    ] = None,
    ratio: Annotated[
        str | None, typer.Option(help="Aspect ratio: 16:9, 9:16, 1:1, 4:3, 3:4, 21:9, adaptive.")
    ] = None,
    duration: Annotated[int | None, typer.Option(min=1, help="Seconds, 4 to 15 (5).")] = None,
    audio: Annotated[
        bool | None, typer.Option("--audio/--no-audio", help="Generate sound.")
    ] = None,
    first_frame: Annotated[str | None, typer.Option(metavar="URL")] = None,
    last_frame: Annotated[str | None, typer.Option(metavar="URL")] = None,
    image: Annotated[list[str] | None, typer.Option(metavar="URL", help="Reference image.")] = None,
    video: Annotated[list[str] | None, typer.Option(metavar="URL", help="Reference video.")] = None,
    audio_ref: Annotated[
        list[str] | None, typer.Option(metavar="URL", help="Reference audio.")
    ] = None,
    channel: Annotated[str | None, typer.Option(help="Pin a channel (its id).")] = None,
    out: Annotated[Path | None, typer.Option(help="Save the video to this file.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask to confirm.")] = False,
    confirm_over_usd: Annotated[
        float, typer.Option(min=0, help="Ask before spending more than this.")
    ] = 5.0,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for the video.")] = 900,
    as_json: JsonFlag = False,
) -> None:
    """Create a video task, follow it to its end and download the video."""
    _needs_key(ctx)
    fields: dict[str, Any] = {}
    for name, value in {
        "resolution": resolution,
        "aspect_ratio": ratio,
        "duration": duration,
        "generate_audio": audio,
        "first_frame_url": first_frame,
        "last_frame_url": last_frame,
        "reference_image_urls": image,
        "reference_video_urls": video,
        "reference_audio_urls": audio_ref,
    }.items():
        if value is not None and value != []:
            fields[name] = value
    out_console = _out()
    with _client(ctx) as rg:
        price = rg.models.price(
            model,
            resolution=resolution,
            duration=duration,
            video_input=bool(video),
            channel_id=channel,
        )
        if not as_json:
            out_console.print(f"price: {usd(price)} USD ({price} micro-USDC)")
        if price > confirm_over_usd * 1_000_000 and not yes:
            if as_json or not sys.stdin.isatty():
                _err().print(
                    f"error: {usd(price)} USD is over --confirm-over-usd {confirm_over_usd:g}; "
                    "pass --yes to go ahead"
                )
                raise typer.Exit(EXIT_USAGE)
            if not typer.confirm(f"Spend up to {usd(price)} USD?"):
                raise typer.Exit(EXIT_USAGE)
        task = rg.videos.create(model=model, prompt=prompt, channel_id=channel, **fields)
        task = _follow(rg, task, timeout, as_json)
        if task.state == "fail":
            raise TaskFailed(task)
        path = None if out is None else _download(rg, task.task_id, out, 0, as_json)
    if as_json:
        display.print_json(
            out_console, {"task": task.raw, "path": None if path is None else str(path)}
        )
        return
    if path is not None:
        out_console.print(f"saved {path}")
    else:
        out_console.print(f"video: {task.urls[0] if task.urls else '(none)'}")
    out_console.print(f"{task.task_id}: {display.cost_text(task)}")


@tasks_app.command("list")
@handled()
def tasks_list(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(help="waiting, queuing, generating, ...")] = None,
    model: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many tasks, newest first.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Your tasks, newest first."""
    _needs_key(ctx)
    tasks: list[Task] = []
    with _client(ctx) as rg:
        for task in rg.tasks.list(state=state, model=model, limit=min(limit, 100)):
            tasks.append(task)
            if len(tasks) >= limit:
                break
    console = _out()
    if as_json:
        display.print_json(console, [t.raw for t in tasks])
        return
    rows = [
        [
            t.task_id,
            t.state,
            t.model,
            f"{t.progress}",
            display.cost_usd(t),
            _when(t.created_at),
        ]
        for t in tasks
    ]
    columns = ["task", "state", "model", "%", "cost USD", "created (UTC)"]
    console.print(display.table(None, columns, rows))


def _when(unix_s: int | None) -> str:
    if not unix_s:
        return ""
    return datetime.fromtimestamp(unix_s, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@tasks_app.command("show")
@handled()
def tasks_show(ctx: typer.Context, task_id: str, as_json: JsonFlag = False) -> None:
    """One task."""
    _needs_key(ctx)
    with _client(ctx) as rg:
        task = rg.tasks.retrieve(task_id)
    console = _out()
    if as_json:
        display.print_json(console, task.raw)
        return
    lines = {
        "task": task.task_id,
        "state": task.state,
        "model": task.model,
        "progress": f"{task.progress}%",
        "prompt": str(task.request.get("prompt", "")),
        "cost": display.cost_text(task),
        "created": _when(task.created_at),
        "completed": _when(task.completed_at),
        "error": f"{task.error.get('code')}: {task.error.get('message')}" if task.error else "",
        "video": "\n".join(task.urls),
    }
    for name, value in lines.items():
        if value:
            console.print(f"[bold]{name:>9}[/bold]  {value}")


@tasks_app.command("watch")
@handled()
def tasks_watch(
    ctx: typer.Context,
    task_id: str,
    timeout: Annotated[float, typer.Option(min=1)] = 900,
    as_json: JsonFlag = False,
) -> None:
    """Follow a task to its end (exit 1 if it fails)."""
    _needs_key(ctx)
    with _client(ctx) as rg:
        task = _follow(rg, rg.tasks.retrieve(task_id), timeout, as_json)
    if task.state == "fail":
        raise TaskFailed(task)
    if as_json:
        display.print_json(_out(), task.raw)
    else:
        _out().print(f"{task.task_id}: {task.state}, {display.cost_text(task)}")


@tasks_app.command("download")
@handled()
def tasks_download(
    ctx: typer.Context,
    task_id: str,
    out: Annotated[Path | None, typer.Option(help="The file (default TASK_ID.mp4).")] = None,
    index: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Download a task's video."""
    _needs_key(ctx)
    target = out or Path(f"{task_id}.mp4" if index == 0 else f"{task_id}-{index}.mp4")
    with _client(ctx) as rg:
        path = _download(rg, task_id, target, index, as_json)
    if as_json:
        display.print_json(_out(), {"task_id": task_id, "path": str(path)})
    else:
        _out().print(f"saved {path}")


@app.command()
@handled()
def models(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The models and their per-second prices."""
    with _client(ctx) as rg:
        listed = rg.models.list()
    console = _out()
    if as_json:
        display.print_json(console, [m.raw for m in listed])
        return
    rows = [
        [
            m.id,
            t.resolution,
            "yes" if t.video_input else "no",
            usd(t.price_micro_usdc),
            usd(t.price_micro_usdc * 5),
        ]
        for m in listed
        for t in m.tiers
    ]
    console.print(
        display.table(
            "Prices", ["model", "resolution", "video input", "per second USD", "5 s USD"], rows
        )
    )


def _moment(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither a date (2026-12-01) nor Unix seconds", param_hint=option
        ) from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


@app.command()
@handled()
def usage(
    ctx: typer.Context,
    from_: Annotated[
        str | None, typer.Option("--from", help="A date (UTC) or Unix seconds, inclusive.")
    ] = None,
    to: Annotated[str | None, typer.Option(help="A date (UTC) or Unix seconds, exclusive.")] = None,
    group_by: Annotated[str, typer.Option(help="day, model or key.")] = "day",
    as_json: JsonFlag = False,
) -> None:
    """What you used: tasks, seconds and money, by day, model or key."""
    _needs_key(ctx)
    with _client(ctx) as rg:
        report = rg.account.usage(
            from_=_moment(from_, "--from"), to=_moment(to, "--to"), group_by=group_by
        )
    console = _out()
    if as_json:
        display.print_json(console, report.raw)
        return
    rows = [
        [
            str(r.group),
            str(r.tasks_success),
            str(r.tasks_fail),
            str(r.generated_seconds),
            usd(r.committed_micro_usdc),
        ]
        for r in report.data
    ]
    total = report.total
    rows.append(
        [
            "total",
            str(total.tasks_success),
            str(total.tasks_fail),
            str(total.generated_seconds),
            usd(total.committed_micro_usdc),
        ]
    )
    console.print(
        display.table(
            None, [report.group_by, "succeeded", "failed", "seconds", "charged USD"], rows
        )
    )


@app.command()
@handled()
def account(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Your balance: what is reserved for running tasks and what is available."""
    _needs_key(ctx)
    with _client(ctx) as rg:
        current = rg.account.retrieve()
    console = _out()
    if as_json:
        display.print_json(console, current.raw)
        return
    console.print(f"[bold]account[/bold]    {current.name}")
    console.print(f"[bold]balance[/bold]    {usd(current.balance_micro_usdc)} USD")
    console.print(f"[bold]reserved[/bold]   {usd(current.reserved_micro_usdc)} USD")
    console.print(f"[bold]available[/bold]  {usd(current.available_micro_usdc)} USD")


def main() -> None:
    app(prog_name="reel")
