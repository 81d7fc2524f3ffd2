"""The console a command prints its tables to."""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


def table_console(width: int = 160) -> Console:
    """stdout for tables: a terminal's own width, else (piped, in CI) ``width`` columns,
    so a table is not folded to rich's 80-column default where no terminal says otherwise
    (``COLUMNS`` still wins)."""
    console = Console(highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(highlight=False, width=width)
    return console


class Steps:
    """Progress through ``total`` long steps on ``console`` (stderr).

    In a terminal: a rich bar (the current step, done of total, elapsed time), each finished
    step's line printed above it. Elsewhere (CI logs, pipes): one plain line when a step
    starts and one when it ends, so that a log never sits silent for minutes.
    """

    def __init__(self, console: Console, total: int):
        self.console = console
        self.bar: Progress | None = None
        if console.is_terminal:
            self.bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            )
            self.task = self.bar.add_task("starting", total=total)

    def __enter__(self) -> Steps:
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()

    def start(self, text: str) -> None:
        """A step begins: the bar's description, or a plain line."""
        if self.bar:
            self.bar.update(self.task, description=text)
        else:
            self.console.print(text, soft_wrap=True, highlight=False)

    def done(self, line: str) -> None:
        """A step ended: its line (above the bar in a terminal), and the bar advances."""
        self.console.print(line, soft_wrap=True, highlight=False)
        if self.bar:
            self.bar.advance(self.task)
