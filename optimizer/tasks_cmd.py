"""`optimizer tasks list|show|validate SUITE_OR_FILE`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from optimizer.errors import UserError
from sandbox import Backend
from tasks.grade import GradeOptions
from tasks.model import Task
from tasks.suite import find_task, load_suite
from tasks.validate import validate_task

out = Console(highlight=False)
SUITE_HELP = "`builtin`, a task directory, a folder of tasks, or a SWE-fficiency/GSO/PIE file."
CASES_HELP = "PIE test cases: a folder of <problem_id>/input.<i>.txt and output.<i>.txt."


def _load(suite: str, cases: Path | None) -> list[Task]:
    tasks = load_suite(suite, cases_dir=cases)
    if not tasks:
        raise UserError(f"suite {suite!r} holds no tasks", f"pass {SUITE_HELP}")
    return tasks


def list_tasks(
    suite: str = typer.Argument(..., help=SUITE_HELP),
    cases: Path | None = typer.Option(None, "--cases", help=CASES_HELP),
) -> None:
    """List a suite's tasks."""
    table = Table(title=f"tasks in {suite}")
    for col in ("id", "kind", "title", "checks (hidden)", "expert"):
        table.add_column(col, overflow="fold")
    for task in _load(suite, cases):
        hidden = len(task.hidden_checks())
        expert = "patch" if task.expert.patch else ("commit" if task.expert.commit else "-")
        table.add_row(
            task.id, task.kind.value, escape(task.title), f"{len(task.checks)} ({hidden})", expert
        )
    out.print(table)


def show(
    suite: str = typer.Argument(..., help=SUITE_HELP),
    task_id: str = typer.Argument(..., help="The task's id."),
    cases: Path | None = typer.Option(None, "--cases", help=CASES_HELP),
) -> None:
    """Show one task as an agent sees it (hidden inputs are named, never shown)."""
    task = find_task(_load(suite, cases), task_id)
    w = task.workload
    lines = [
        f"[bold]{task.id}[/] ({task.kind.value}) {escape(task.title)}",
        f"directory: {task.root}",
        f"source: {task.source.model_dump(exclude_none=True)}",
        f"workload: {escape(w.command or w.file or w.script or '')}",
        f"tests: {escape(task.tests.command) if task.tests else '-'}",
        f"protected: {', '.join(task.protected_paths())}",
        f"checks: {', '.join(_check_label(c) for c in task.checks) or '-'}",
        f"expert: {task.expert.patch or task.expert.commit or '-'}"
        + (f", published speedup {task.expert.speedup}x" if task.expert.speedup else ""),
        "",
        escape(task.prompt.strip()),
    ]
    out.print("\n".join(lines))


def _check_label(check) -> str:
    return f"{check.name} (hidden)" if check.hidden else check.name


def validate(
    suite: str = typer.Argument(..., help=SUITE_HELP),
    sandbox: Backend = typer.Option("auto", "--sandbox", help="docker, local or auto."),
    only: list[str] = typer.Option([], "--task", help="Validate only these task ids."),
    repeats: int = typer.Option(10, "--repeats", help="Interleaved pairs to start with."),
    cases: Path | None = typer.Option(None, "--cases", help=CASES_HELP),
) -> None:
    """Check that each base passes its tests and each expert is significantly faster."""
    tasks = _load(suite, cases)
    if only:
        tasks = [find_task(tasks, t) for t in only]
    opts = GradeOptions(backend=sandbox, repeats=repeats)
    table = Table(title=f"optimizer tasks validate {suite}")
    for col in ("task", "kind", "tests base/expert", "expert speedup (95% CI)", "status"):
        table.add_column(col, overflow="fold")
    failed = 0
    for task in tasks:
        with out.status(f"validating {task.id}"):
            v = validate_task(task, opts)
        runs = [g.tests.summary() for g in (v.base, v.expert) if g and g.tests]
        tests = " · ".join(runs) or "-"
        speed = "-"
        m = v.expert.measurement if v.expert else None
        if m:
            speed = f"{m.speedup:.2f}x ({m.ci[0]:.2f}-{m.ci[1]:.2f}), {m.verdict}, {m.pairs} pairs"
        color = {"ok": "green", "failed": "red", "skipped": "yellow"}[v.status]
        status = f"[{color}]{v.status}[/]" + (f": {escape(v.reason)}" if v.reason else "")
        table.add_row(v.task_id, v.kind, tests, speed, status)
        failed += v.status == "failed"
    out.print(table)
    if failed:
        out.print(f"[red]{failed} task(s) failed validation[/]")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `optimizer tasks ...`."""
    tasks_app = typer.Typer(help="List, show and validate task suites.", no_args_is_help=True)
    tasks_app.command("list")(list_tasks)
    tasks_app.command()(show)
    tasks_app.command()(validate)
    app.add_typer(tasks_app, name="tasks")
