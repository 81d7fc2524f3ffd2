"""`optimizer run`: an LLM agent optimizes a repository, the judge verifies, git commits.

Exit codes: 0 a significant winner was committed (or written with --no-commit); 1 the run
finished with no significant winner; 2 a user error; 3 a budget or the model stopped the run
(resumable); 130 Ctrl-C (resumable).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from agents.config import require_endpoint, resolve_model_config
from agents.model import OpenAIModel
from optimizer import optimize, options
from optimizer.errors import UserError
from optimizer.grade_cmd import TARGET_HELP, read_patch
from optimizer.optimize import Outcome, RunSpec
from optimizer.run_ui import LiveUI
from optimizer.search import SearchSettings
from profilers.compare import MetricChoice
from profilers.models import ProtocolName
from sandbox import Backend

out = Console(highlight=False)


def _model(
    spec: RunSpec, root: Path | None, api_key: str | None, retries: int | None, say
) -> OpenAIModel | None:
    """The live model, or None when a patch or a recording stands in for it."""
    if spec.candidate is not None or spec.replay:
        return None
    flags = {
        "model": None if spec.model == "none" else spec.model,
        "base_url": spec.base_url,
        "api_key": api_key,
        "max_retries": retries,
    }
    cfg = resolve_model_config(root, **flags)
    require_endpoint(cfg)
    spec.model, spec.base_url = cfg.model, cfg.base_url
    return OpenAIModel(cfg, warn=say)


def _backend(sandbox: Backend) -> Backend:
    """``auto``: docker where an engine answers, else the local sandbox, with a warning."""
    if sandbox != "auto":
        return sandbox
    from sandbox import engine

    if engine.available():
        return "docker"
    out.print(
        "[yellow]warning:[/] no Docker engine answers; using the local sandbox "
        "(bubblewrap when installed, else plain processes)"
    )
    return "local"


def report(outcome: Outcome) -> None:
    """The final lines: what happened, where the evidence is, how to go on."""
    run = outcome.run_dir
    if outcome.sha:
        out.print(
            f"[bold green]committed[/] {outcome.sha[:12]} on branch "
            f"[bold]{escape(outcome.branch or '')}[/] in {escape(str(outcome.repo))}"
        )
        out.print(
            f"  see it: git -C {escape(str(outcome.repo))} show {escape(outcome.branch or '')}"
        )
    elif outcome.patch_path:
        out.print(
            f"[bold green]winner written[/] to {escape(str(outcome.patch_path))} (--no-commit)"
        )
    elif outcome.code == optimize.EXIT_NO_WINNER:
        out.print(f"[bold yellow]nothing committed[/]: {escape(outcome.reason)}")
    else:
        out.print(f"[bold red]stopped[/]: {escape(outcome.reason)}; nothing committed")
        out.print(f"  resume: optimizer run --resume {escape(str(run))}")
    out.print(
        f"run directory: {escape(str(run))} (report.md, report.html; "
        f"optimizer show {escape(str(run))})"
    )


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_command(
        repo: Path | None = typer.Argument(
            None, help="The git repository to optimize (with --task: a clone of its source)."
        ),
        workload: str | None = typer.Option(
            None,
            "--workload",
            "-w",
            help="A Python file defining workload() (and setup()), or a shell command.",
        ),
        tests: str | None = typer.Option(None, "--tests", "-t", help="The test command."),
        task: str | None = typer.Option(None, "--task", help=f"A suite task: {TARGET_HELP}"),
        kernel: Path | None = typer.Option(
            None,
            "--kernel",
            help="A KernelBench problem file (committed): write its Triton kernel.",
        ),
        candidate: Path | None = typer.Option(
            None, "--candidate", help="Grade and commit this patch instead of asking a model."
        ),
        model: str | None = typer.Option(None, "--model", help="Model name (or the config's)."),
        base_url: str | None = typer.Option(
            None, "--base-url", help="An OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1"
        ),
        api_key: str | None = typer.Option(None, "--api-key", help="Else $OPENAI_API_KEY."),
        replay: Path | None = typer.Option(
            None, "--replay", help="Replay a recorded run's model calls (no model needed)."
        ),
        resume: Path | None = typer.Option(None, "--resume", help="Continue this run dir."),
        candidates: int = typer.Option(3, "--candidates", "-n", min=1, help="First candidates."),
        rounds: int = typer.Option(1, "--rounds", min=0, help="Refinement rounds."),
        top: int = typer.Option(2, "--top", min=1, help="Candidates refined per round."),
        parallel: int = typer.Option(1, "--parallel", "-j", min=1, help="Agents at once."),
        agent_steps: int = typer.Option(30, "--agent-steps", min=1, help="Steps per candidate."),
        no_ideas: bool = typer.Option(False, "--no-ideas", help="Skip the idea stage."),
        max_cost: float | None = typer.Option(None, "--max-cost", min=0, help="USD; 0: none."),
        max_steps: int | None = typer.Option(None, "--max-steps", min=0, help="Model steps."),
        max_wall: float | None = typer.Option(None, "--max-wall", min=0, help="Seconds."),
        retries: int | None = typer.Option(None, "--retries", min=0, help="Model retries."),
        metric: MetricChoice | None = typer.Option(
            None, "--metric", "-m", help="wall, instructions or both (default: the task's/wall)."
        ),
        sandbox: Backend = options.SANDBOX,
        protocol: ProtocolName | None = options.PROTOCOL,
        repeats: int = options.repeats(),
        budget: float = options.budget(60.0, "measurement", minimum=1),
        base: str = typer.Option("HEAD", "--base", help="The revision to optimize."),
        pip: list[str] = options.PIP,
        install: list[str] | None = typer.Option(None, "--install", help="A setup command."),
        protect: list[str] | None = typer.Option(None, "--protect", help="A protected path."),
        hidden: list[str] | None = typer.Option(
            None,
            "--hidden-workload",
            help="A workload file outside the repo, timed too but never shown to the agent.",
        ),  # fmt: skip
        prompts: Path | None = typer.Option(None, "--prompts", help="A YAML of prompt overrides."),
        no_commit: bool = typer.Option(False, "--no-commit", help="Write the patch only."),
        branch: str | None = typer.Option(None, "--branch", help="Default: optimizer/<run-id>."),
        no_minimize: bool = typer.Option(False, "--no-minimize", help="Keep every hunk."),
        interactive: bool = typer.Option(False, "--interactive", "-i", help="Review each one."),
        runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Where run dirs go."),
    ) -> None:
        """Optimize REPO on a workload: propose, judge, commit the significant winner."""
        budgets = {"max_cost": max_cost, "max_steps": max_steps, "max_wall": max_wall}
        with LiveUI(out) as ui:
            if resume is not None:
                spec = optimize.RunSpec.model_validate(_started_config(resume))
                spec.model, spec.base_url = model or spec.model, base_url or spec.base_url
                live = _model(
                    spec, Path(spec.repo) if spec.repo else None, api_key, retries, ui.say
                )
                endpoint = {"model": spec.model, "base_url": spec.base_url}
                outcome = optimize.resume(resume, live, {**budgets, **endpoint}, ui)
            else:
                if repo is None and task is None and kernel is None:
                    raise UserError(
                        "nothing to optimize",
                        "pass REPO --workload FILE --tests CMD, --task SUITE/ID or --kernel FILE",
                    )
                if repo is not None and task is None and kernel is None and not workload:
                    raise UserError("no workload given", "pass --workload FILE (or a command)")
                settings = SearchSettings(
                    candidates=candidates,
                    rounds=rounds,
                    top=top,
                    parallel=parallel,
                    agent_steps=agent_steps,
                    ideas=not no_ideas,
                    metric=metric,
                    protocol=protocol,
                    backend=_backend(sandbox),
                    repeats=repeats,
                    budget_s=budget,
                    **{k: v for k, v in budgets.items() if v is not None},
                )
                spec = RunSpec(
                    target=task,
                    kernel=str(kernel.resolve()) if kernel else None,
                    repo=str(repo) if repo else None,
                    workload=workload,
                    tests=tests,
                    base=base,
                    pip=pip or None,
                    install=install or [],
                    protect=protect or [],
                    hidden=hidden or [],
                    model=model or "none",
                    base_url=base_url,
                    replay=str(replay) if replay else None,
                    prompts=str(prompts) if prompts else None,
                    commit=not no_commit,
                    branch=branch,
                    minimize=not no_minimize,
                    interactive=interactive,
                    settings=settings,
                    candidate=read_patch(candidate) if candidate is not None else None,
                )
                if spec.candidate is not None and not spec.candidate.strip():
                    raise UserError(f"--candidate {candidate} is empty", "pass a unified diff")
                live = _model(spec, repo, api_key, retries, ui.say)
                outcome = optimize.start(spec, live, runs_dir, sys.argv[1:], ui)
        report(outcome)
        raise typer.Exit(outcome.code)


def _started_config(path: Path) -> dict:
    from optimizer.rundir import RunDir, RunState

    state = RunState.from_records(RunDir.open(path).records())
    if not state.starts:
        raise UserError(f"{path} has no run_started record", "pass a run directory to --resume")
    return state.starts[-1].config


def register_demo(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        sandbox: Backend = options.SANDBOX,
        where: Path | None = typer.Option(None, "--dir", help="Where the temp copy goes."),
    ) -> None:
        """The whole loop on a bundled example, from a recorded model session: no key needed."""
        from optimizer.demo import run_demo

        with LiveUI(out) as ui:
            outcome = run_demo(ui, where=where, backend=_backend(sandbox))
        report(outcome)
        raise typer.Exit(outcome.code)
