"""`optimizer grade SUITE/ID --patch FILE`: the grading contract on one hand-written patch.

Prints each step as it passes, the tests (base vs candidate), the checks, the speedup with
its CI and the verdict, and writes the whole Grade as JSON with ``--json``. Exit codes: 0 a
correct candidate, 1 a rejected or incorrect one, 2 a user error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from optimizer import options
from optimizer.errors import UserError
from optimizer.results import write_text_atomic
from profilers.compare import MetricChoice
from profilers.models import ProtocolName
from sandbox import Backend
from tasks.grade import Candidate, Grade, GradeOptions, grade
from tasks.model import Task
from tasks.source import expert_patch, with_repo
from tasks.suite import load_suite

out = Console(highlight=False)

TARGET_HELP = "SUITE/ID: `builtin/spans`, `path/to/suite/ID`, `data.jsonl/ID`, or a task directory."


def resolve_target(target: str) -> Task:
    """``SUITE/ID`` (or a task directory) -> the task."""
    tasks = load_suite(target)
    if len(tasks) != 1:
        raise UserError(
            f"{target!r} names no single task",
            "pass SUITE/ID, e.g. builtin/spans, or a task directory",
        )
    return tasks[0]


def read_patch(path: Path | None) -> str:
    if path is None:
        return ""
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.expanduser().read_text()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise UserError(f"cannot read patch {path}: {why}", "pass an existing diff file") from None


def render(g: Grade) -> None:
    """The grade's tests, checks, measurement and verdict."""
    if g.tests:
        base = g.base_tests.summary() if g.base_tests else "-"
        out.print(
            f"tests: candidate {g.tests.summary()}, base {base}; "
            f"{g.tests.contract} base-passing tests in the contract"
            + (f", broken: {escape(', '.join(g.tests.broken[:5]))}" if g.tests.broken else "")
        )
    for c in g.checks:
        mark = "[green]pass[/]" if c.passed else "[red]FAIL[/]"
        label = f"{c.name} (hidden)" if c.hidden else c.name
        out.print(f"check {escape(label)}: {mark}" + (f" {escape(c.detail)}" if c.detail else ""))
    k = g.kernel
    if k:
        out.print(f"kernel: {escape(k.summary())}")
        if k.timing:
            t = k.timing
            compiled = f", torch.compile {t.compile_ms:.4f} ms" if t.compile_ms else ""
            out.print(f"kernel {t.kernel_ms:.4f} ms, eager {t.eager_ms:.4f} ms{compiled}")
            for flag in t.flagged:
                out.print(f"[yellow]review:[/] {escape(flag)}")
        elif k.timing_note:
            out.print(f"timing: {escape(k.timing_note)}")
    m = g.measurement
    if m:
        for w in m.workloads:
            for r in w.metrics:
                tag = f"{w.name}{' (hidden)' if w.hidden else ''}"
                out.print(
                    f"{escape(tag)} {r.metric}: {r.speedup:.3f}x "
                    f"[{1 / r.ci[1]:.3f}, {1 / r.ci[0]:.3f}], {r.pairs} pairs, {r.verdict}"
                    + (" (deterministic)" if r.deterministic else "")
                    + (f"; cold {r.cold.speedup:.3f}x" if r.cold and not r.caching else "")
                )
                if r.caching:
                    out.print(f"[yellow]not credited warm:[/] {escape(r.caching)}")
        out.print(f"protocol: {escape(m.protocol_label)}")
        out.print(f"timed region: {escape(m.rule)}")
        color = {"faster": "green", "slower": "red", "same": "cyan"}.get(m.verdict, "yellow")
        out.print(
            f"speedup: [bold]{m.speedup:.3f}x[/] (95% CI {m.ci[0]:.3f}-{m.ci[1]:.3f}, "
            f"{m.metric}, {m.protocol}) [{color}]{m.verdict}[/]"
        )
    color = "green" if g.correct else "red"
    out.print(
        f"[bold {color}]{g.status.value}[/]"
        + (f": {escape(g.reason)}" if g.reason else "")
        + f"  ({g.elapsed_s:.1f} s)",
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add the `grade` command to the app."""

    @app.command("grade")
    def grade_command(
        target: str = typer.Argument(..., help=TARGET_HELP),
        patch: Path | None = typer.Option(
            None, "--patch", help="The candidate: a unified diff (`-` reads stdin; none: no-op)."
        ),
        sandbox: Backend = options.SANDBOX,
        metric: MetricChoice | None = typer.Option(
            None, "--metric", "-m", help="wall, instructions or both (default: the task's)."
        ),
        protocol: ProtocolName | None = options.PROTOCOL,
        repeats: int = options.repeats(),
        budget: float = options.budget(90.0, "workload and metric", minimum=1),
        no_measure: bool = typer.Option(False, "--no-measure", help="Correctness only."),
        json_path: Path | None = options.json_out("the grade"),
        expert: bool = typer.Option(
            False, "--expert", help="Grade the task's expert (its patch, or its commit's diff)."
        ),
        repo: Path | None = typer.Option(
            None, "--repo", help="A git clone to use as the task's source, at its commit."
        ),
    ) -> None:
        """Grade a patch on one task: apply, guard, tests, checks, timing, verdict.

        Exit 0 for a correct candidate, 1 for a rejected or incorrect one, 2 for a user error.
        """
        if json_path is not None and not json_path.expanduser().parent.is_dir():
            raise UserError(
                f"--json {json_path}: the folder does not exist", "create it, or pick another path"
            )
        if expert and patch is not None:
            raise UserError("--expert and --patch both name the candidate", "pass one of them")
        task = resolve_target(target)
        if repo is not None:
            task = with_repo(task, repo)
        if expert:
            text = expert_patch(task)
            if not text:
                raise UserError(f"task {task.id} has no expert", "pass --patch FILE instead")
            candidate = Candidate(patch=text, agent="expert")
        else:
            candidate = Candidate(patch=read_patch(patch), agent="manual")
        opts = GradeOptions(
            backend=sandbox, metric=metric, repeats=repeats, budget_s=budget,
            measure=not no_measure, protocol=protocol,
        )  # fmt: skip
        what = "the expert" if expert else f"patch {patch}" if candidate.patch else ""
        what = what or "a no-op candidate"
        out.print(f"grading {escape(what)} on {task.id} ({task.kind.value})")
        result = grade(task, candidate, opts, progress=lambda s: out.print(f"  {escape(s)}"))
        render(result)
        if json_path is not None:
            write_text_atomic(json_path.expanduser(), result.model_dump_json(indent=2) + "\n")
        raise typer.Exit(0 if result.correct else 1)
