"""`optimizer evaluate`: an agent on a suite, k samples a task, scored as the papers score it.

Exit codes: 0 every planned sample has an outcome; 1 some failed by the harness's fault
(re-run with ``--retry-failed``); 2 a user error; 130 interrupted (re-run to resume).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from optimizer import options
from optimizer.evaluate import AGENTS, EvalSpec
from optimizer.evaluate_driver import EXIT_HARNESS_FAILED, EXIT_INTERRUPTED, RunSettings, evaluate
from optimizer.evaluate_ui import progress_for
from profilers.compare import MetricChoice
from profilers.models import ProtocolName
from sandbox import Backend
from sandbox.errors import UserError

out = Console(highlight=False)


def _backend(sandbox: Backend) -> Backend:
    from optimizer.run_cmd import _backend as pick

    return pick(sandbox)


def register(app: typer.Typer) -> None:
    """Add the `evaluate` command to the app."""

    @app.command("evaluate")
    def evaluate_command(
        suite: str = typer.Option(
            ..., "--suite", "-s", help="builtin, a task or suite folder, or a dataset file."
        ),
        agent: str = typer.Option(..., "--agent", "-a", help=f"One of: {', '.join(AGENTS)}."),
        k: int = typer.Option(1, "-k", "--samples", help="Samples per task (k)."),
        model: str | None = typer.Option(None, "--model", help="llm: the model name."),
        base_url: str | None = typer.Option(None, "--base-url", help="llm: the endpoint."),
        api_key: str | None = typer.Option(None, "--api-key", help="llm: else $OPENAI_API_KEY."),
        predictions: Path | None = typer.Option(
            None, "--predictions", help="predictions: a SWE-bench-style predictions JSONL."
        ),
        out_dir: Path = typer.Option(Path("evaluation"), "--out", "-o", help="Results folder."),
        workers: int = typer.Option(1, "--workers", "-j", help="Samples graded at once."),
        executor: str = typer.Option("local", "--executor", help="local or ray."),
        ray_address: str | None = typer.Option(
            None, "--ray-address", help="ray: an existing cluster (default: a local instance)."
        ),
        retry_failed: bool = typer.Option(
            False, "--retry-failed", help="Redo the samples that failed by the harness's fault."
        ),
        metric: MetricChoice | None = typer.Option(
            None, "--metric", "-m", help="wall, instructions or both (default: each task's)."
        ),
        sandbox: Backend = options.SANDBOX,
        protocol: ProtocolName | None = options.PROTOCOL,
        repeats: int = options.repeats(minimum=None),  # checked below, with its own fix
        budget: float = options.budget(90.0, "workload and metric", minimum=None),
        max_steps: int = typer.Option(0, "--max-steps", help="llm: model steps a sample; 0 none."),
        max_cost: float = typer.Option(0.0, "--max-cost", help="llm: USD a sample; 0: none."),
        max_wall: float = typer.Option(0.0, "--max-wall", help="llm: seconds a sample; 0: none."),
        candidates: int = typer.Option(1, "--candidates", "-n", help="llm: candidates a sample."),
        agent_steps: int = typer.Option(30, "--agent-steps", help="llm: steps a candidate."),
        retries: int | None = typer.Option(None, "--retries", help="llm: model retries."),
    ) -> None:
        """Run an agent on every task of a suite (k samples each), grade, score, report.

        Writes OUT/results.jsonl (what `optimizer score` reads), summary.json, report.md and
        report.html. Re-running with the same --out resumes: recorded samples are skipped.
        """
        _check(agent, k, workers, executor, repeats, budget, predictions, ray_address)
        least = {"--max-steps": (max_steps, 0), "--max-cost": (max_cost, 0),
                 "--max-wall": (max_wall, 0), "--candidates": (candidates, 1),
                 "--agent-steps": (agent_steps, 1), "--retries": (retries or 0, 0)}  # fmt: skip
        for name, (value, low) in least.items():
            if value < low:
                what = "negative" if value < 0 else f"below {low}"
                raise UserError(f"{name} {value:g} is {what}", f"pass {name} {low} or more")
        spec = EvalSpec(
            suite=suite, agent=agent, k=k, model=model, base_url=base_url, api_key=api_key,
            predictions=str(predictions.expanduser().resolve()) if predictions else None,
            metric=metric, sandbox=_backend(sandbox), repeats=repeats, budget_s=budget,
            protocol=protocol, out=str(out_dir.expanduser().resolve()), max_steps=max_steps,
            max_cost=max_cost,
            max_wall=max_wall, candidates=candidates, agent_steps=agent_steps, retries=retries,
        )  # fmt: skip
        run = RunSettings(workers, executor, ray_address, retry_failed, sys.argv[1:])
        ui = progress_for(out)
        try:
            outcome = evaluate(spec, run, ui)
        finally:
            ui.close()
        if outcome.summary is not None:
            from optimizer.evaluate_report import print_summary

            print_summary(outcome.summary, out)
        out.print(
            f"results: {outcome.out / 'results.jsonl'}; report: {outcome.out / 'report.html'}"
        )
        if outcome.code == EXIT_INTERRUPTED:
            out.print("interrupted: re-run the same command to finish (recorded samples are kept)")
        elif outcome.code == EXIT_HARNESS_FAILED:
            out.print(f"{outcome.harness_failed} sample(s) failed by the harness's fault; "
                      "re-run with --retry-failed to redo only those")  # fmt: skip
        raise typer.Exit(outcome.code)


def _check(agent: str, k: int, workers: int, executor: str, repeats: int, budget: float,
           predictions: Path | None, ray_address: str | None) -> None:  # fmt: skip
    """Flags that make no sense, as one-line errors."""
    if agent not in AGENTS:
        raise UserError(f"unknown agent {agent!r}", f"use one of: {', '.join(AGENTS)}")
    if k < 1:
        raise UserError(f"-k {k} is not a positive number of samples", "pass -k 1 or more")
    if workers < 1:
        raise UserError(f"--workers {workers} is not a positive number", "pass --workers 1 or more")
    if executor not in ("local", "ray"):
        raise UserError(f"unknown executor {executor!r}", "use --executor local or ray")
    if ray_address and executor != "ray":
        raise UserError("--ray-address needs --executor ray", "add --executor ray")
    if repeats < 2:
        raise UserError(f"--repeats {repeats} is below 2", "pass --repeats 2 or more")
    if budget <= 0:
        raise UserError(f"--budget {budget:g} is not positive", "pass seconds above 0")
    if agent == "predictions" and predictions is None:
        raise UserError("--agent predictions needs a file", "pass --predictions FILE")
    if agent != "predictions" and predictions is not None:
        raise UserError("--predictions is for --agent predictions", "add --agent predictions")
