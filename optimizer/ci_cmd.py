"""`optimizer ci`: a regression gate for pull requests (no LLM involved)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from optimizer.ci import EXIT, CIConfig, run_ci
from optimizer.ci_benchmarks import MetricChoice, parse_threshold
from optimizer.ci_report import write_outputs
from optimizer.errors import UserError
from sandbox import Backend


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
        budget: float = typer.Option(60.0, "--budget", help="Seconds per benchmark and metric."),
        timeout: float = typer.Option(120.0, "--timeout", help="Wall-clock limit of one run (s)."),
        json_path: Path | None = typer.Option(None, "--json", help="Write the full record here."),
        junit_path: Path | None = typer.Option(None, "--junit", help="Write JUnit XML here."),
        fail_on_inconclusive: bool = typer.Option(
            False, "--fail-on-inconclusive", help="Exit 1 (not 2) when noise hides the answer."
        ),
        no_confirm: bool = typer.Option(
            False, "--no-confirm", help="Do not re-run flagged regressions to confirm them."
        ),
        sandbox: Backend = typer.Option("auto", "--sandbox", help="Sandbox backend."),
    ) -> None:
        """Compare the repo's benchmarks at two revisions; exit 1 on a confirmed regression.

        Exit codes: 0 no regression, 1 confirmed regression, 2 inconclusive (too noisy to
        tell), 3 harness, build or benchmark error.
        """
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
            )  # fmt: skip
            with err.status("measuring...") as status:
                record = run_ci(cfg, progress=lambda msg: status.update(escape(msg)))
            text = write_outputs(record, json_path, junit_path)
        except user_errors as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(EXIT["error"]) from None
        sys.stdout.write(text)
        raise typer.Exit(record.exit_code)
