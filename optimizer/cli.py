"""The ``optimizer`` command line: typer commands that call the orchestration layer.

Every user mistake surfaces as one line, ``error: <problem>. Fix: <fix>``, with exit code 2
(3 for `optimizer ci`, whose exit code 2 means "inconclusive").
"""

from __future__ import annotations

import signal
import sys

import typer
from rich.console import Console

from optimizer import __version__
from optimizer.errors import UserError
from sandbox.errors import SandboxError
from tasks.model import TaskError

app = typer.Typer(
    name="optimizer",
    help="Make code faster with LLM agents, and measure speed honestly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sandbox_app = typer.Typer(
    help="Build, inspect and check the execution sandbox.", no_args_is_help=True
)
app.add_typer(sandbox_app, name="sandbox")

err = Console(stderr=True, highlight=False)

#: Exceptions that are the user's to fix: printed as one line, never as a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (UserError, SandboxError, TaskError)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"optimizer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Make code faster with LLM agents, and measure speed honestly."""


from optimizer import bench_cmd, ci_cmd, sandbox_cmd, score_cmd, tasks_cmd  # noqa: E402

sandbox_cmd.register(sandbox_app)
score_cmd.register(app)
bench_cmd.register(app)
tasks_cmd.register(app)
ci_cmd.register(app, USER_ERRORS)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so `finally` blocks remove containers on SIGTERM too


def main() -> None:
    """Console-script entry point: run the app, turning user errors into one line."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        app()
    except USER_ERRORS as exc:
        err.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        sys.exit(2)
