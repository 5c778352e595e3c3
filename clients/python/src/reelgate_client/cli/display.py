"""How ``reel`` shows what goes on: rich progress bars on a terminal, plain lines elsewhere
(a pipe, a log, CI), nothing at all under ``--json``."""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from reelgate_client.pricing import usd
from reelgate_client.types import Task


def cost_usd(task: Task) -> str:
    """The money of a task in a table cell: charged, else reserved, else nothing."""
    billing = task.billing
    if billing is None or billing.status == "released":
        return "0.00"
    if billing.status == "committed":
        return usd(billing.actual_amount_micro_usdc)
    return usd(billing.reserve_amount_micro_usdc)


def cost_text(task: Task) -> str:
    billing = task.billing
    if billing is None:
        return ""
    if billing.status == "committed":
        return f"charged {usd(billing.actual_amount_micro_usdc)} USD"
    if billing.status == "released":
        return "nothing charged"
    return f"reserved {usd(billing.reserve_amount_micro_usdc)} USD"


class TaskView(Protocol):
    def update(self, task: Task) -> None: ...
    def close(self) -> None: ...


class DownloadView(Protocol):
    def update(self, done: int, total: int | None) -> None: ...
    def close(self) -> None: ...


class Quiet:
    """Under --json: the result is the only output."""

    def update(self, *args: Any) -> None:
        pass

    def close(self) -> None:
        pass


class PlainTask:
    """One line per change, for logs and pipes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()

    def update(self, task: Task) -> None:
        elapsed = time.monotonic() - self.started
        self.console.print(
            f"{task.task_id} {task.state} {task.progress}% {elapsed:.0f}s {cost_text(task)}",
            highlight=False,
        )

    def close(self) -> None:
        pass


class RichTask:
    """A live bar: state, progress, elapsed time and cost."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.fields[state]:<10}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[cost]}"),
            console=console,
            transient=False,
        )
        self.bar: TaskID | None = None
        self.progress.start()

    def update(self, task: Task) -> None:
        if self.bar is None:
            # The id first, above the bar: what `reel tasks watch` needs after a Ctrl-C.
            self.progress.console.print(f"task {task.task_id}", highlight=False)
            self.bar = self.progress.add_task(task.task_id, total=100, state="", cost="")
        self.progress.update(
            self.bar, completed=task.progress, state=task.state, cost=cost_text(task)
        )

    def close(self) -> None:
        self.progress.stop()


class PlainDownload:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.done = 0
        self.total: int | None = None

    def update(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total

    def close(self) -> None:
        self.console.print(f"downloaded {self.done} bytes", highlight=False)


class RichDownload:
    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]download  "),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
        )
        self.bar = self.progress.add_task("download", total=None)
        self.progress.start()

    def update(self, done: int, total: int | None) -> None:
        self.progress.update(self.bar, completed=done, total=total)

    def close(self) -> None:
        self.progress.stop()


def task_view(console: Console, as_json: bool) -> TaskView:
    if as_json:
        return Quiet()
    return RichTask(console) if console.is_terminal else PlainTask(console)


def download_view(console: Console, as_json: bool) -> DownloadView:
    if as_json:
        return Quiet()
    return RichDownload(console) if console.is_terminal else PlainDownload(console)


def print_json(console: Console, value: Any) -> None:
    # Written straight out: rich would wrap long lines and colour them.
    console.file.write(json.dumps(value, indent=2, sort_keys=False) + "\n")
    console.file.flush()


def table(title: str | None, columns: list[str], rows: list[list[str]]) -> Table:
    out = Table(title=title)
    for index, column in enumerate(columns):
        # The first column is an id to copy: never wrapped, whatever the width.
        out.add_column(
            column,
            justify="right" if column.endswith(("USD", "s", "%")) else "left",
            no_wrap=index == 0,
        )
    for row in rows:
        out.add_row(*row)
    return out
