"""`optimizer tasks list|show|validate SUITE_OR_FILE` and `optimizer tasks new REPO`."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from optimizer import options
from optimizer.console import Steps, table_console
from optimizer.errors import UserError
from optimizer.results import write_text_atomic
from profilers.models import ProtocolName
from sandbox import Backend
from tasks.grade import GradeOptions
from tasks.model import Task, load_task
from tasks.new import new_task
from tasks.source import with_repo
from tasks.suite import find_task, load_suite
from tasks.validate import Validation, ValidationReport, validate_task

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
SUITE_HELP = "`builtin`, a task directory, a folder of tasks, or a SWE-fficiency/GSO/PIE file."
CASES_HELP = "PIE test cases: a folder of <problem_id>/input.<i>.txt and output.<i>.txt."
REPO_HELP = (
    "A git clone to use as the task's source (at the task's commit), instead of its "
    "[source]: a local copy of a `git = URL` source, or a clone on another machine."
)


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
    table_console().print(table)


def show(
    suite: str = typer.Argument(..., help=SUITE_HELP),
    task_id: str | None = typer.Argument(None, help="The task's id (not needed for one task)."),
    cases: Path | None = typer.Option(None, "--cases", help=CASES_HELP),
) -> None:
    """Show one task as an agent sees it (hidden inputs are named, never shown)."""
    tasks = _load(suite, cases)
    if task_id is None and len(tasks) != 1:
        raise UserError(
            f"{suite!r} holds {len(tasks)} tasks", f"name one: optimizer tasks show {suite} ID"
        )
    task = tasks[0] if task_id is None else find_task(tasks, task_id)
    w = task.workload
    lines = [
        f"[bold]{task.id}[/] ({task.kind.value}) {escape(task.title)}",
        f"directory: {task.root}",
        f"source: {task.source.model_dump(exclude_none=True)}",
        f"workload: {escape(w.command or w.file or w.script or '')}, timed "
        + (w.timing().label() if not w.command else "cold (a command)"),
        f"tests: {escape(task.tests.command) if task.tests else '-'}",
        f"protected: {', '.join(task.protected_paths())}",
        f"checks: {', '.join(_check_label(c) for c in task.checks) or '-'}",
        f"expert: {task.expert.patch or task.expert.commit or '-'}"
        + (f", published speedup {task.expert.speedup}x" if task.expert.speedup else ""),
        "",
        escape(_reflow(task.prompt)),
    ]
    out.print("\n".join(lines))


def _reflow(text: str) -> str:
    """A prompt's paragraphs as single lines, for the terminal to wrap at its own width (its
    hard line breaks at ~90 columns broke twice on an 80-column screen). Lines that start
    with a list marker or indentation keep their breaks."""
    paragraphs = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        if any(ln.startswith(("  ", "\t", "- ", "* ", "```")) for ln in lines):
            paragraphs.append(block)
        else:
            paragraphs.append(" ".join(ln.strip() for ln in lines))
    return "\n\n".join(paragraphs)


def _check_label(check) -> str:
    return f"{check.name} (hidden)" if check.hidden else check.name


def validate(
    suite: str = typer.Argument(..., help=SUITE_HELP),
    sandbox: Backend = options.SANDBOX,
    only: list[str] = typer.Option([], "--task", help="Validate only these task ids."),
    repeats: int = options.repeats(),
    protocol: ProtocolName | None = options.PROTOCOL,
    cases: Path | None = typer.Option(None, "--cases", help=CASES_HELP),
    repo: Path | None = typer.Option(None, "--repo", help=REPO_HELP),
    json_path: Path | None = options.json_out("every task's validation (tests, speedup, CI, time)"),
) -> None:
    """Check that each base passes its tests and each expert is significantly faster."""
    started = time.monotonic()
    if json_path is not None and not json_path.resolve().parent.is_dir():
        raise UserError(
            f"cannot write {json_path}: its folder does not exist", "create it, or pick another"
        )
    tasks = _load(suite, cases)
    if only:
        tasks = [find_task(tasks, t) for t in only]
    if repo is not None:
        if len(tasks) != 1:
            raise UserError(
                f"--repo replaces one task's source, and {suite!r} holds {len(tasks)} tasks",
                "pick the task with --task ID",
            )
        tasks = [with_repo(tasks[0], repo)]
    opts = GradeOptions(backend=sandbox, repeats=repeats, protocol=protocol)
    table = Table(title=f"optimizer tasks validate {suite}")
    columns = ("task", "kind", "tests base · expert", "expert speedup (95% CI)", "declared", "time")
    for col in (*columns, "status"):
        table.add_column(col, overflow="fold")
    done: list[Validation] = []
    with Steps(err, len(tasks)) as steps:
        for i, task in enumerate(tasks, 1):
            steps.start(f"[{i}/{len(tasks)}] validating {task.id} ({task.kind.value})")
            done.append(v := validate_task(task, opts))
            steps.done(f"  {v.task_id}: {v.status} ({v.elapsed_s:.0f} s)" + (
                f": {escape(v.reason)}" if v.reason else ""))  # fmt: skip
            table.add_row(*_validation_row(v))
    table_console().print(table)
    for v in done:
        if v.agreement:
            out.print(f"{escape(v.task_id)}: {escape(v.agreement)}", soft_wrap=True)
    failed = sum(v.status == "failed" for v in done)
    if json_path is not None:
        report = ValidationReport(
            suite=suite, backend=sandbox, tasks=done, elapsed_s=round(time.monotonic() - started, 3)
        )
        write_text_atomic(json_path, report.model_dump_json(indent=2) + "\n")
    if failed:
        out.print(f"[red]{failed} task(s) failed validation[/]")
        raise typer.Exit(1)


def _pairs(items: list[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{option} {item!r} is not KEY=VALUE", f"write {option} NAME=value")
        out[key.strip()] = value
    return out


def _validation_row(v: Validation) -> tuple[str, ...]:
    runs = [g.tests.summary() for g in (v.base, v.expert) if g and g.tests]
    speed = "-"
    m = v.expert.measurement if v.expert else None
    if m:
        speed = (
            f"{m.speedup:.2f}x ({m.ci[0]:.2f}-{m.ci[1]:.2f}), {m.verdict}, {m.pairs} pairs, "
            f"{m.protocol}"
        )
        if m.cold_speedup is not None:
            speed += f"; cold {m.cold_speedup:.2f}x"
        if m.caching:
            speed += " (judged cold: a cache across calls)"
    declared = "-"
    if v.declared_speedup:
        agrees = {True: "in CI", False: "outside CI", None: "not measured"}[v.consistent]
        if v.consistent is None and m is not None and v.declared_protocol != m.protocol:
            agrees = f"not compared: measured {m.protocol}"
        declared = f"{v.declared_speedup:g}x {v.declared_protocol}, {agrees}"
    color = {"ok": "green", "failed": "red", "skipped": "yellow"}[v.status]
    status = f"[{color}]{v.status}[/]" + (f": {escape(v.reason)}" if v.reason else "")
    tests = " · ".join(runs) or "-"
    k = v.expert.kernel if v.expert else None
    if k is not None:  # a kernel task: no test command; the judge's calls are its tests
        tests = f"expert correct on {k.cases} calls" if v.expert.correct else "expert wrong"
        if k.timing is None:
            speed = "not timed (no GPU)"
    return v.task_id, v.kind, tests, speed, declared, f"{v.elapsed_s:.0f} s", status


def new(
    repo: Path = typer.Argument(..., help="The project's git repository (a local clone)."),
    base: str = typer.Option(..., "--base", help="The commit before the speedup (the base)."),
    expert: str = typer.Option(..., "--expert", help="The commit that makes it faster."),
    workload: Path = typer.Option(
        ..., "--workload", help="A Python file with setup() and workload(), copied into the task."
    ),
    tests: str | None = typer.Option(
        None, "--tests", help="The test command (default: pytest, when the base has tests)."
    ),
    out_dir: Path | None = typer.Option(None, "--out", help="The task folder (default: ./ID)."),
    task_id: str | None = typer.Option(None, "--id", help="The task id (default: REPO-SHA)."),
    url: str | None = typer.Option(
        None, "--url", help="Write `git = URL` as the source instead of REPO's path."
    ),
    pip: list[str] = typer.Option(
        [], "--pip", help="pip requirements of the env image (default: pytest with tests)."
    ),
    package: str = typer.Option(
        "none", "--package", help="Install the package under test: none, editable or regular."
    ),
    python: str | None = typer.Option(None, "--python", help="The task's Python, e.g. 3.13."),
    env: list[str] = typer.Option(
        [], "--env", help="KEY=VALUE for every run (setup.env), e.g. a version the build needs."
    ),
    no_validate: bool = typer.Option(False, "--no-validate", help="Write the task only."),
    sandbox: Backend = options.SANDBOX,
    repeats: int = options.repeats(),
) -> None:
    """Make a task of a performance commit: REPO at --base, the expert at --expert.

    Writes task.toml, expert.patch (the commit's non-test files), test.patch (its test
    files, applied to the base and every candidate), the workload and a workload-result
    check, then validates the task. Exit 0 valid, 1 not valid (the folder is kept), 2 a
    user error (nothing is written).
    """
    requirements = [p for p in pip if p.strip()] if pip else None  # --pip "": none at all
    dest = new_task(
        repo, base=base, expert=expert, workload=workload, tests=tests, out=out_dir,
        task_id=task_id, url=url, pip=requirements, package=package, python=python,
        env=_pairs(env, "--env"),
    )  # fmt: skip
    task = load_task(dest)
    if url:
        task = with_repo(task, repo)  # validate on the local clone, not a fresh clone of URL
    made = [f for f in ("task.toml", "expert.patch", "test.patch") if (dest / f).is_file()]
    out.print(f"wrote {escape(str(dest))}: {', '.join(made)}, {task.workload.script}")
    out.print(f"tests: {escape(task.tests.command) if task.tests else '-'}")
    out.print(f"protected: {escape(', '.join(task.protected_paths()))}")
    if no_validate:
        out.print(f"not validated; run `optimizer tasks validate {escape(str(dest))}`")
        return
    with out.status(f"validating {task.id}"):
        v = validate_task(task, GradeOptions(backend=sandbox, repeats=repeats))
    out.print(_validation_line(v))
    if v.status == "failed":
        out.print("[red]the task is written but does not validate[/]; fix it and run "
                  f"`optimizer tasks validate {escape(str(dest))}`")  # fmt: skip
        raise typer.Exit(1)


def _validation_line(v: Validation) -> str:
    runs = [g.tests.summary() for g in (v.base, v.expert) if g and g.tests]
    m = v.expert.measurement if v.expert else None
    speed = (
        f", expert {m.speedup:.2f}x ({m.ci[0]:.2f}-{m.ci[1]:.2f}) {m.verdict} ({m.protocol})"
        if m
        else ""
    )
    color = {"ok": "green", "failed": "red", "skipped": "yellow"}[v.status]
    return (
        f"validate: [{color}]{v.status}[/]"
        + (f": {escape(v.reason)}" if v.reason else "")
        + (f"; tests base · expert {' · '.join(runs)}" if runs else "")
        + speed
    )


def register(app: typer.Typer) -> None:
    """Add `optimizer tasks ...`."""
    tasks_app = typer.Typer(help="List, show, validate and make tasks.", no_args_is_help=True)
    tasks_app.command("list")(list_tasks)
    tasks_app.command()(show)
    tasks_app.command()(validate)
    tasks_app.command()(new)
    app.add_typer(tasks_app, name="tasks")
