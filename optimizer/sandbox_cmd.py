"""`optimizer sandbox build|doctor|run`: build the images, check the machine, try a command."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from optimizer import options
from optimizer.errors import UserError
from sandbox import Backend, Limits, Source, Status, open_sandbox
from sandbox.doctor import checks
from sandbox.images import SUITE, SUITES, EnvRecipe, build_base, image_for, suite_for

out = Console(highlight=False)


def build(
    force: bool = typer.Option(False, "--force", help="Rebuild even if the image exists."),
    python: str | None = typer.Option(
        None,
        "--python",
        help=f"The base image's Python (a task's setup.python): {', '.join(SUITES.values())}; "
        f"default {SUITES[SUITE]}.",
    ),
) -> None:
    """Build the sandbox base image offline (mmdebstrap + docker import)."""
    suite = suite_for(python)
    tag = build_base(suite=suite, force=force, log=lambda msg: out.print(f"[dim]{msg}[/]"))
    out.print(f"[green]ok[/] base image {tag} (Debian {suite}, Python {SUITES[suite]})")


def doctor() -> None:
    """Report what is available, and the exact command that fixes each missing piece."""
    table = Table(title="optimizer sandbox doctor")
    for col in ("piece", "status", "detail", "fix"):
        table.add_column(col, overflow="fold")
    failed = False
    for check in checks():
        if check.ok:
            status = "[green]OK[/]"
        elif check.required:
            status, failed = "[red]MISSING[/]", True
        else:
            status = "[yellow]optional[/]"
        table.add_row(check.name, status, escape(check.detail), escape(check.fix))
    out.print(table)
    if failed:
        raise typer.Exit(1)


def run(
    repo: Path = typer.Argument(..., help="A git repository."),
    command: list[str] = typer.Argument(..., help="The command, after --."),
    rev: str = typer.Option("HEAD", "--rev", help="The revision to copy."),
    patch: Path | None = typer.Option(None, "--patch", help="A diff to apply on top."),
    sandbox: Backend = options.SANDBOX,
    timeout: float = options.timeout(60.0),
    memory: int = typer.Option(2048, "--memory", min=16, help="Memory limit in MB."),
    pip: list[str] = options.PIP,
) -> None:
    """Run one command in a sandboxed copy of REPO at --rev, and show how it ended."""
    diff = None
    if patch is not None:
        if not patch.is_file():
            raise UserError(f"no such patch file: {patch}", "pass the path of a diff file")
        diff = patch.read_text()
    source = Source(repo=repo, rev=rev, patch=diff)
    say = Console(stderr=True, highlight=False).print
    image = image_for(EnvRecipe(pip=list(pip)), sandbox, log=say) if pip else None
    limits = Limits(wall_s=timeout, memory_mb=memory)
    with open_sandbox(source, sandbox, limits=limits, image=image) as sb:
        result = sb.run(command if len(command) > 1 else command[0])
    if result.stdout:
        out.out(result.stdout, end="")
    if result.stderr:
        Console(stderr=True).out(result.stderr, end="")
    color = "green" if result.status is Status.OK else "red"
    out.print(
        f"[{color}]{result.status.value}[/] in {sb.backend} sandbox at {sb.sha[:12]}: "
        f"exit {result.exit_code}, {result.duration_s:.3f} s"
        + (f" ({result.reason})" if result.reason else ""),
        soft_wrap=True,
    )
    missing = re.search(r"No module named '?([A-Za-z0-9_]+)", result.stderr or "")
    if result.status is not Status.OK and missing and missing[1] not in pip:
        out.print(f"hint: {missing[1]} is not installed in the {sb.backend} sandbox: add "
                  f"--pip {missing[1]}", soft_wrap=True)  # fmt: skip
    if result.status is not Status.OK:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the sandbox commands to the `sandbox` sub-app."""
    logging.basicConfig(format="warning: %(message)s", level=logging.WARNING)
    app.command()(build)
    app.command()(doctor)
    app.command()(run)
