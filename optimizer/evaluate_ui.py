"""What `optimizer evaluate` shows while it runs: a rich bar on a terminal, plain lines else.

The bar shows done/total, failed (by the harness), running, the ETA and the cost so far; the
plain lines (CI logs, files) give each job's outcome as it finishes, with a count and time.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from optimizer.evaluate import Job


class _Counts:
    def __init__(self) -> None:
        self.total = self.done = self.failed = self.running = 0
        self.cost = 0.0
        self.started_at = time.monotonic()

    def eta(self) -> str:
        if not self.done or self.done >= self.total:
            return "-"
        per = (time.monotonic() - self.started_at) / self.done
        left = per * (self.total - self.done)
        return f"{left / 60:.0f} min" if left >= 90 else f"{left:.0f} s"


class PlainProgress:
    """One line per finished job: ``[3/20] spans#0  ok 14.1x, SR 0.98  (35 s)``."""

    def __init__(self, console: Console) -> None:
        self.console, self.c = console, _Counts()
        self.t0: dict[Job, float] = {}

    def say(self, text: str) -> None:
        self.console.print(escape(text), soft_wrap=True)

    def begin(self, total: int, recorded: int) -> None:
        self.c.total = total
        already = f"; {recorded} sample(s) already recorded, skipped" if recorded else ""
        self.say(f"{total} job(s) to run{already}")

    def started(self, job: Job) -> None:
        self.c.running += 1
        self.t0[job] = time.monotonic()

    def finished(self, job: Job, line: str, failed: bool, cost: float) -> None:
        c = self.c
        c.running, c.done, c.failed, c.cost = (
            c.running - 1,
            c.done + 1,
            c.failed + failed,
            c.cost + cost,
        )
        took = time.monotonic() - self.t0.pop(job, time.monotonic())
        money = f", ${c.cost:.2f} so far" if c.cost else ""
        self.say(f"[{c.done}/{c.total}] {job.label}  {line}  ({took:.0f} s; ETA {c.eta()}{money})")

    def close(self) -> None:
        pass


class RichProgress(PlainProgress):
    """A live bar; each finished job also prints its line above the bar."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.bar = Progress(
            TextColumn("[bold]evaluate[/]"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("[red]{task.fields[failed]} failed[/]"),
            TextColumn("{task.fields[running]} running"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("${task.fields[cost]:.2f}"),
            console=console,
            transient=True,
        )
        self.task = self.bar.add_task("evaluate", total=1, failed=0, running=0, cost=0.0)
        self.bar.start()

    def begin(self, total: int, recorded: int) -> None:
        super().begin(total, recorded)
        self.bar.update(self.task, total=max(total, 1))

    def started(self, job: Job) -> None:
        super().started(job)
        self.bar.update(self.task, running=self.c.running)

    def finished(self, job: Job, line: str, failed: bool, cost: float) -> None:
        super().finished(job, line, failed, cost)
        c = self.c
        self.bar.update(
            self.task, completed=c.done, failed=c.failed, running=c.running, cost=c.cost
        )

    def close(self) -> None:
        self.bar.stop()


def progress_for(console: Console) -> PlainProgress:
    return RichProgress(console) if console.is_terminal else PlainProgress(console)
