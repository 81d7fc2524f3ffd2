"""``optimizer run`` end to end: a task, a model, the search, the winner, the commit, reports.

:func:`start` makes a new run directory from the command's settings; :func:`resume` reopens
one, taking its settings from the ``run_started`` record (budgets may be raised); both end
in :func:`execute`, which never leaves the run directory in a state ``--resume`` cannot use.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agents.prompts import load_prompts
from agents.protocols import Model
from optimizer import rundir as rd
from optimizer import winner as win
from optimizer.errors import UserError
from optimizer.run_report import html, markdown
from optimizer.run_task import repo_task
from optimizer.search import UI, Search, SearchSettings, Stop
from tasks.importers.common import cache_root
from tasks.model import Task
from tasks.source import task_source, with_repo

#: Exit codes of `optimizer run`.
EXIT_COMMITTED, EXIT_NO_WINNER, EXIT_USER, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class RunSpec(BaseModel):
    """What a run optimizes and how: everything ``--resume`` needs to carry on."""

    target: str | None = Field(None, description="SUITE/ID for --task runs.")
    kernel: str | None = Field(None, description="A KernelBench problem file (--kernel).")
    repo: str | None = Field(
        None, description="REPO: the repository to optimize, or with --task the task's source."
    )
    workload: str | None = None
    tests: str | None = None
    base: str = "HEAD"
    pip: list[str] | None = None
    install: list[str] = Field(default_factory=list)
    protect: list[str] = Field(default_factory=list)
    hidden: list[str] = Field(
        default_factory=list, description="Hidden workload files, outside the repository."
    )
    candidate: str | None = Field(None, description="--candidate: the person's patch text.")
    model: str = "none"
    base_url: str | None = None
    replay: str | None = Field(None, description="A run dir or session file to replay.")
    prompts: str | None = None
    commit: bool = True
    branch: str | None = None
    minimize: bool = True
    interactive: bool = False
    settings: SearchSettings = SearchSettings()


@dataclass
class Outcome:
    code: int
    reason: str
    run_dir: Path
    branch: str | None = None
    sha: str | None = None
    repo: Path | None = None
    patch_path: Path | None = None


def runs_root(runs_dir: Path | None) -> Path:
    """Where run directories go: never inside the user's repository."""
    return (runs_dir or cache_root().parent / "runs").expanduser()


def load_task(spec: RunSpec) -> Task:
    if spec.kernel:
        from kernels.problem import kernel_task

        return kernel_task(Path(spec.kernel), spec.base)
    if spec.target:
        from optimizer.grade_cmd import resolve_target

        task = resolve_target(spec.target)
        # REPO beside --task: a local clone of the task's source (its winner branch lands there)
        return with_repo(task, Path(spec.repo)) if spec.repo else task
    if not spec.repo or not spec.workload:
        raise UserError(
            "nothing to optimize",
            "pass REPO --workload FILE --tests CMD, or --task SUITE/ID, or --resume RUN_DIR",
        )
    # instruction counts rank (they do not move with load) and wall time confirms, where
    # valgrind is there to count them
    metric = spec.settings.metric or ("both" if shutil.which("valgrind") else "wall")
    return repo_task(
        Path(spec.repo),
        workload=spec.workload,
        tests=spec.tests,
        base=spec.base,
        metric=metric,
        pip=spec.pip,
        install=spec.install,
        protect=spec.protect or None,
        hidden=spec.hidden,
    )


def start(
    spec: RunSpec,
    model: Model | None,
    runs_dir: Path | None,
    argv: list[str],
    ui: UI,
    run_id: str | None = None,
) -> Outcome:
    task = load_task(spec)
    src = task_source(task)
    run = rd.RunDir.create(runs_root(runs_dir), run_id or rd.new_run_id())
    run.append(
        rd.RunStarted(
            run_id=run.run_id,
            repo=str(src.repo),
            base_sha=_sha(src.repo, src.rev),
            task_id=task.id,
            config=spec.model_dump(mode="json"),
            argv=argv,
        )
    )
    return execute(spec, task, model, run, ui)


def resume(path: Path, model: Model | None, overrides: dict[str, Any], ui: UI) -> Outcome:
    """Continue the run in ``path`` with its latest settings; ``overrides`` (None: keep) may
    raise budgets (max_cost, max_steps, max_wall) or move the endpoint (model, base_url)."""
    run = rd.RunDir.open(path)
    state = rd.RunState.from_records(run.records())
    if not state.starts:
        raise UserError(f"{path} has no run_started record", "pass a run directory to --resume")
    if state.ended and state.ended.reason in ("finished", "no significant winner"):
        ui.say(f"the run already ended: {state.ended.reason}")
        code = EXIT_COMMITTED if state.ended.committed else EXIT_NO_WINNER
        return Outcome(code, state.ended.reason, run.path)
    spec = RunSpec.model_validate(state.starts[-1].config)
    given = {k: v for k, v in overrides.items() if v is not None}
    budgets = {k: v for k, v in given.items() if k in ("max_cost", "max_steps", "max_wall")}
    spec = spec.model_copy(
        update={
            **{k: v for k, v in given.items() if k in ("model", "base_url")},
            "settings": spec.settings.model_copy(update=budgets),
        }
    )
    last = state.starts[-1]
    run.append(
        rd.RunStarted(
            run_id=last.run_id, repo=last.repo, base_sha=last.base_sha, task_id=last.task_id,
            config=spec.model_dump(mode="json"), argv=["--resume", str(path)],
        )
    )  # fmt: skip
    if given:
        run.append(rd.Note(kind="decision", text=f"resumed with {json.dumps(given)}"))
    ui.say(f"resuming {run.path}")
    return execute(spec, load_task(spec), model, run, ui)


def execute(spec: RunSpec, task: Task, model: Model | None, run: rd.RunDir, ui: UI) -> Outcome:
    """The search, then the winner; a Stop or Ctrl-C ends the run resumably with no commit."""
    prompts = load_prompts(Path(spec.prompts) if spec.prompts else None)
    search = Search(
        task, run, spec.settings, model=model, prompts=prompts, ui=ui, interactive=spec.interactive
    )
    if spec.replay:
        search.replay_calls = _replayed(Path(spec.replay))
    src = search.base_source
    metric = spec.settings.metric or task.workload.metric
    protocol = task.workload.timing(spec.settings.protocol).label()
    ui.say(f"optimizing {task.id} at {_sha(src.repo, src.rev)[:12]}: metric {metric}, "
           f"protocol {protocol}, sandbox {spec.settings.backend}, run {run.run_id}")  # fmt: skip
    try:
        cands = search.manual(spec.candidate) if spec.candidate is not None else search.run()
        best = win.choose(cands, search.accepted)
        if best is None:
            return _end(run, ui, EXIT_NO_WINNER, _no_winner(cands), cands)
        ui.say(f"best: {best.id}, {best.speedup:.3f}x; confirming in fresh runs")
        winner = win.settle(search, best, do_minimize=spec.minimize, say=ui.say)
        if winner is None:
            return _end(run, ui, EXIT_NO_WINNER, "no significant winner", cands)
        text = win.message(search, winner, spec.model, search.cost)
        if not spec.commit:
            run.write_text("winner.patch", winner.patch)
            path = run.path / "winner.patch"
            run.append(rd.PatchWritten(path=str(path)))
            out = _end(run, ui, EXIT_COMMITTED, "finished", cands)
            out.patch_path = path
            return out
        branch = spec.branch or f"optimizer/{run.run_id}"
        sha = win.commit(search, winner, src.repo, _sha(src.repo, src.rev), branch, text)
        out = _end(run, ui, EXIT_COMMITTED, "finished", cands, committed=True)
        out.branch, out.sha, out.repo = branch, sha, src.repo
        return out
    except Stop as stop:
        detail = f": {stop.detail}" if stop.detail else ""
        return _end(run, ui, EXIT_STOPPED, f"{stop.reason}{detail}", [])
    except KeyboardInterrupt:
        return _end(run, ui, EXIT_INTERRUPTED, "interrupted", [])


def _no_winner(cands: list) -> str:
    """Why nothing is committed; for kernels checked in Triton's CPU interpreter, say so."""
    untimed = [c for c in cands if c.correct and (c.grade.get("kernel") or {}).get("interpreted")]
    if untimed:
        return (
            f"no significant winner: {len(untimed)} correct kernel(s) ({untimed[0].id} first), "
            "but without a GPU kernels run in Triton's CPU interpreter and cannot be timed; "
            "run again on a host with an NVIDIA GPU (optimizer show RUN_DIR has the patches)"
        )
    return "no significant winner"


def _end(
    run: rd.RunDir, ui: UI, code: int, reason: str, cands: list, *, committed: bool = False
) -> Outcome:
    run.append(rd.RunEnded(reason=reason, committed=committed))
    state = rd.RunState.from_records(run.records())
    run.write_text("report.md", markdown(state))
    run.write_text("report.html", html(state))
    return Outcome(code, reason, run.path)


def _replayed(path: Path) -> dict[str, list[rd.ModelCall]]:
    """Model calls to replay: a run directory's, or a session file of model_call lines."""
    events = path / "events.jsonl" if path.is_dir() else path
    if not events.is_file():
        raise UserError(
            f"--replay {path}: no such run directory or session file",
            "pass a run directory (or its events.jsonl) recorded earlier",
        )
    calls: dict[str, list[rd.ModelCall]] = {}
    for line in events.read_text().splitlines():
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if data.get("type") == "model_call":
            call = rd.ModelCall.model_validate(data)
            calls.setdefault(call.thread, []).append(call)
    for thread in calls.values():
        thread.sort(key=lambda c: c.step)
    return calls


def _sha(repo: Path, rev: str) -> str:
    from optimizer.vcs import head_sha

    return head_sha(repo, rev)
