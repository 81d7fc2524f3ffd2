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

#: The user's mistakes (every layer raises the one UserError): one line, never a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (UserError,)


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


from optimizer import (  # noqa: E402
    bench_cmd,
    ci_cmd,
    evaluate_cmd,
    export_cmd,
    grade_cmd,
    run_cmd,
    sandbox_cmd,
    score_cmd,
    show_cmd,
    tasks_cmd,
)

run_cmd.register(app)
show_cmd.register(app)
run_cmd.register_demo(app)
sandbox_cmd.register(sandbox_app)
score_cmd.register(app)
bench_cmd.register(app)
tasks_cmd.register(app)
grade_cmd.register(app)
evaluate_cmd.register(app)
export_cmd.register(app)
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
