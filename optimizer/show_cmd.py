"""`optimizer show RUN_DIR`: what a run did, rebuilt from its event log.

Prints the candidates table and the outcome; ``--markdown`` prints the markdown report
instead, ``--html FILE`` also writes the self-contained HTML page. It reads the log only,
so it works on a finished run, a running one and one that was killed. Exit codes: 0 shown,
2 a user error (no such run directory, an unwritable --html path).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from optimizer import run_report
from optimizer.errors import UserError
from optimizer.results import write_text_atomic
from optimizer.rundir import RunDir, RunState

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def show(run_dir: Path, as_markdown: bool, html_path: Path | None) -> None:
    """Load the run and render it; a UserError names the problem and the fix."""
    if html_path is not None and not html_path.expanduser().parent.is_dir():
        raise UserError(
            f"--html {html_path}: the folder does not exist", "create it, or pick another path"
        )
    state = RunState.from_records(RunDir.open(run_dir).records())
    if as_markdown:
        out.print(run_report.markdown(state), markup=False, end="", soft_wrap=True)
    else:
        run_report.print_show(state, out)
    if html_path is not None:
        write_text_atomic(html_path.expanduser(), run_report.html(state))
        out.print(f"wrote {escape(str(html_path))}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the `show` command to the app."""

    @app.command("show")
    def show_command(
        run_dir: Path = typer.Argument(..., help="A run directory that `optimizer run` made."),
        as_markdown: bool = typer.Option(
            False, "--markdown", help="Print the markdown report instead of the table."
        ),
        html_path: Path | None = typer.Option(
            None, "--html", help="Also write the report as a self-contained HTML page here."
        ),
    ) -> None:
        """Show a run: its candidates, their grades, the winner and the outcome.

        Exit 0 when shown, 2 for a user error.
        """
        try:
            show(run_dir, as_markdown, html_path)
        except UserError as exc:  # one line, as the CLI prints it, wherever this is mounted
            err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(2) from None
