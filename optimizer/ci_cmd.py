"""`optimizer ci`: a regression gate for pull requests (no LLM involved).

stdout carries the markdown report only (``--list``: the table of benchmarks). Progress goes
to stderr: in a terminal a progress bar (done/total, elapsed, ETA) with each finished
benchmark's line scrolling above it; elsewhere (CI logs) plain lines, flushed as they come,
a message as ``[  12s] message`` and a finished benchmark as ``[3/32] name  ...``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import TracebackType

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from optimizer import options
from optimizer.ci import EXIT, BenchmarkDone, CIConfig, run_ci
from optimizer.ci_benchmarks import Discovery, MetricChoice, parse_threshold
from optimizer.ci_report import write_outputs
from optimizer.console import table_console
from optimizer.errors import UserError
from sandbox import Backend


def _is_terminal(console: Console) -> bool:
    """A real terminal on stderr: FORCE_COLOR alone (set in some CI) gets no live bar."""
    try:
        return sys.stderr.isatty() and not console.is_dumb_terminal
    except ValueError:  # closed
        return False


class _TimeRemaining(TimeRemainingColumn):
    """rich's ETA column, estimated from the finished benchmarks' own seconds: known from
    the first one (rich's own speed needs two within its window) and counting down between
    them; rich's estimate where there is none yet."""

    def render(self, task: Task) -> Text:
        per = task.fields.get("per_benchmark")
        if per is None or task.total is None or task.finished:
            return super().render(task)
        since = time.monotonic() - task.fields["last_tick"]
        left = int(max(0.0, per * (task.total - task.completed) - since))
        hours, rest = divmod(left, 3600)
        return Text(f"{hours:d}:{rest // 60:02d}:{rest % 60:02d}", style="progress.remaining")


class CIProgress:
    """``say`` (a message) and ``tick`` (a benchmark is done), shown on stderr.

    With ``bar`` (stderr is a terminal): a rich progress bar whose description is the latest
    message, advanced by ticks (the first tells the total), each tick's line printed above
    it. Without: one plain line per message (prefixed with the elapsed seconds) and per tick,
    written to ``sys.stderr`` directly (no ANSI codes, no folding at 80 columns).
    """

    def __init__(self, console: Console, *, bar: bool, started: float | None = None):
        self.console = console
        self.started = time.monotonic() if started is None else started
        self.bar: Progress | None = None
        self.measured = 0.0  # the finished benchmarks' seconds
        if bar:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                _TimeRemaining(),
                console=console,
            )
            self.task = self.bar.add_task("starting", total=None)

    def __enter__(self) -> CIProgress:
        if self.bar:
            self.bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.bar:
            self.bar.stop()

    def say(self, message: str) -> None:
        if self.bar:
            width = max(20, self.console.width - 60)
            short = message if len(message) <= width else message[: width - 1] + "…"
            self.bar.update(self.task, description=escape(short))
        else:
            stamp = f"[{time.monotonic() - self.started:4.0f}s]"
            for line in message.splitlines() or [""]:
                self._line(f"{stamp} {line}")

    def tick(self, done: BenchmarkDone) -> None:
        if self.bar:
            self.measured += done.seconds
            self.bar.update(
                self.task, total=done.total, completed=done.index,
                per_benchmark=self.measured / max(done.index, 1), last_tick=time.monotonic(),
            )  # fmt: skip
            self.bar.console.print(Text(done.line()), soft_wrap=True)
        else:
            self._line(done.line())

    @staticmethod
    def _line(text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def print_discovery(found: Discovery, default: MetricChoice) -> None:
    """``--list``: the benchmarks that would run, then what was skipped and why (stdout)."""
    out = table_console()
    table = Table(title=f"{len(found.benchmarks)} benchmarks would run", title_justify="left")
    for column in ("Benchmark", "Origin", "Metric"):
        table.add_column(column, overflow="fold")
    for b in found.benchmarks:
        metric = b.metric or f"{default} (default)"
        table.add_row(Text(b.name), Text(b.origin), Text(metric))
    out.print(table)
    if found.skipped:
        out.print(f"\nDiscovered but not run ({len(found.skipped)}):")
        for line in found.skipped:
            out.print(Text(f"- {line}"), soft_wrap=True)


def register(app: typer.Typer, user_errors: tuple[type[Exception], ...]) -> None:
    """Add the `ci` command to the app."""

    @app.command("ci")
    def ci(
        repo: Path = typer.Argument(Path("."), help="The git repository (default: here)."),
        base: str | None = typer.Option(
            None, "--base", help="Base revision (default: merge-base with the default branch)."
        ),
        head: str = typer.Option("HEAD", "--head", help="Head revision."),
        metric: MetricChoice = typer.Option(
            "both", "--metric", "-m", help="Instructions gate, wall clock confirms (both)."
        ),
        threshold: str = typer.Option("2%", "--threshold", help="Smallest change that counts."),
        bench: str | None = typer.Option(
            None, "--bench", "-b", help="Only benchmarks whose name matches this regex."
        ),
        budget: float = options.budget(
            CIConfig.model_fields["budget_s"].default, "benchmark and metric"
        ),
        timeout: float = options.timeout(
            CIConfig.model_fields["timeout_s"].default,
            " (native; under valgrind each step gets 30x this)",
        ),
        json_path: Path | None = options.json_out("the full record"),
        junit_path: Path | None = typer.Option(None, "--junit", help="Write JUnit XML here."),
        fail_on_inconclusive: bool = typer.Option(
            False, "--fail-on-inconclusive", help="Exit 1 (not 2) when noise hides the answer."
        ),
        no_confirm: bool = typer.Option(
            False, "--no-confirm", help="Do not re-run flagged regressions to confirm them."
        ),
        sandbox: Backend = options.SANDBOX,
        pip: list[str] = options.PIP,
        build: str | None = typer.Option(
            None, "--build", help="A build command for both sides (overrides the config's)."
        ),
        list_only: bool = typer.Option(
            False, "--list", help="List the benchmarks that would run, and what is skipped."
        ),
    ) -> None:
        """Compare the repo's benchmarks at two revisions; exit 1 on a confirmed regression.

        Exit codes: 0 no regression, 1 confirmed regression, 2 inconclusive (too noisy to
        tell), 3 harness, build or benchmark error.
        """
        started = time.monotonic()
        err = Console(stderr=True, highlight=False)
        try:
            try:
                fraction = parse_threshold(threshold)
            except ValueError as exc:
                raise UserError(f"--threshold {threshold!r}: {exc}", "pass e.g. 5%") from None
            cfg = CIConfig(
                repo=repo, base=base, head=head, metric=metric, threshold=fraction,
                select=bench, budget_s=budget, timeout_s=timeout, sandbox=sandbox,
                fail_on_inconclusive=fail_on_inconclusive, confirm=not no_confirm,
                pip=list(pip or []), build=build,
            )  # fmt: skip
            if list_only:  # quick (no sandbox): plain lines, no bar
                from optimizer.ci import list_benchmarks

                with CIProgress(err, bar=False, started=started) as shown:
                    found = list_benchmarks(cfg, progress=shown.say)
                print_discovery(found, cfg.metric)
                raise typer.Exit(0)
            with CIProgress(err, bar=_is_terminal(err), started=started) as shown:
                record = run_ci(cfg, progress=shown.say, tick=shown.tick)
            text = write_outputs(record, json_path, junit_path)
        except user_errors as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(EXIT["error"]) from None
        sys.stdout.write(text)
        raise typer.Exit(record.exit_code)
