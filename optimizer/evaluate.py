"""`optimizer evaluate`: an agent on every task of a suite, k samples each, graded by the judge.

The work is a list of :class:`Job` s in two phases. First each task's **reference**: its
expert graded and measured once against the base (shared by every agent evaluated into the
same directory, and what SR divides by). Then the **samples**: the agent proposes a patch,
the judge grades it, and one :class:`~optimizer.evaluate_records.SampleRecord` is appended.
:func:`execute_job` does one job anywhere (this process, a pool worker, a Ray task): it
takes and returns JSON-able values, and only the driver writes to the evaluation directory.
"""

from __future__ import annotations

import functools
import math
import os
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from agents.fixed import Noop, Oracle, Predictions, Proposal, Proposer
from optimizer.evaluate_records import LevelSpeed, Reference, SampleRecord, WorkloadSpeed
from optimizer.results import PerTestTiming, RefTimes, SampleResult
from optimizer.scoring import dps, dps_clusters
from profilers.compare import MetricChoice
from profilers.models import ProtocolName
from sandbox import Backend
from sandbox.errors import UserError
from tasks.grade import Candidate, Grade, GradeOptions, GradeStatus, Measurement, grade
from tasks.model import Task
from tasks.source import expert_patch
from tasks.suite import find_task, load_suite

AgentName = Literal["oracle", "noop", "llm", "predictions"]
AGENTS: tuple[str, ...] = get_args(AgentName)


class EvalSpec(BaseModel):
    """Everything a worker needs to run a job (it travels to pool workers and Ray tasks)."""

    suite: str
    agent: AgentName
    k: int = Field(1, ge=1)
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = Field(None, exclude=True)
    retries: int | None = Field(None, ge=0, description="llm: model retries (None: config's).")
    predictions: str | None = None
    metric: MetricChoice | None = None
    protocol: ProtocolName | None = Field(None, description="None: each task's own.")
    sandbox: Backend = "docker"
    repeats: int = Field(10, ge=2)
    budget_s: float = Field(90.0, gt=0)
    out: str = ""
    #: the llm agent's budgets per sample (`optimizer run`'s)
    max_steps: int = Field(0, ge=0)
    max_cost: float = Field(0.0, ge=0)
    max_wall: float = Field(0.0, ge=0)
    candidates: int = Field(1, ge=1)
    agent_steps: int = Field(30, ge=1)


@dataclass(frozen=True)
class Job:
    kind: Literal["reference", "sample"]
    task_id: str
    sample: int = 0

    @property
    def label(self) -> str:
        return (
            f"{self.task_id} expert"
            if self.kind == "reference"
            else (f"{self.task_id}#{self.sample}")
        )


# ---- what a worker keeps between jobs ---------------------------------------------------


@functools.lru_cache(maxsize=4)
def suite_tasks(suite: str) -> tuple[Task, ...]:
    return tuple(load_suite(suite))


def proposer_for(spec: EvalSpec) -> Proposer:
    return _proposer(spec.model_dump_json(), spec.api_key)


@functools.lru_cache(maxsize=4)
def _proposer(spec_json: str, api_key: str | None) -> Proposer:
    spec = EvalSpec.model_validate_json(spec_json).model_copy(update={"api_key": api_key})
    if spec.agent == "oracle":
        return Oracle()
    if spec.agent == "noop":
        return Noop()
    if spec.agent == "predictions":
        if not spec.predictions:
            raise UserError("--agent predictions needs a file", "pass --predictions FILE")
        return Predictions(Path(spec.predictions))
    from optimizer.evaluate_llm import LLMProposer

    return LLMProposer(spec)


def runnable(task: Task) -> str | None:
    """Why the judge cannot grade ``task`` here, or None."""
    from tasks.grade import grader_for

    try:
        grader_for(task.kind)
    except UserError as exc:
        return exc.problem
    return None


# ---- one job -----------------------------------------------------------------------------


def execute_job(
    spec_json: str,
    api_key: str | None,
    job: dict[str, Any],
    reference: dict[str, Any] | None,
    cpuset: str | None,
) -> dict[str, Any]:
    """Run one job and return its record (and grade) as JSON-able values."""
    spec = EvalSpec.model_validate_json(spec_json).model_copy(update={"api_key": api_key})
    j = Job(**job)
    task = find_task(list(suite_tasks(spec.suite)), j.task_id)
    if j.kind == "reference":
        ref, graded = measure_reference(spec, task, cpuset)
        return {"reference": ref.model_dump(mode="json"), "grade": graded}
    ref = Reference.model_validate(reference) if reference else None
    rec, graded = grade_sample(spec, task, j.sample, ref, cpuset)
    worker = f"{socket.gethostname()}:{os.getpid()}" + (f" cpus {cpuset}" if cpuset else "")
    rec = rec.model_copy(update={"worker": worker})
    return {"sample": rec.model_dump(mode="json"), "grade": graded}


def options(spec: EvalSpec, cpuset: str | None, measure: bool = True) -> GradeOptions:
    return GradeOptions(backend=spec.sandbox, metric=spec.metric, repeats=spec.repeats,
                        budget_s=spec.budget_s, cpuset=cpuset, measure=measure,
                        protocol=spec.protocol)  # fmt: skip


def measure_reference(spec: EvalSpec, task: Task, cpuset: str | None) -> tuple[Reference, str]:
    """The task's expert graded and measured against the base."""
    metric = spec.metric or task.workload.metric
    started = time.monotonic()
    try:
        patch = expert_patch(task)
    except UserError as exc:
        return Reference(task_id=task.id, metric=metric, status="error", reason=exc.problem), ""
    if not patch:
        return Reference(task_id=task.id, metric=metric, status="none", reason="no expert"), ""
    try:
        g = grade(task, Candidate(patch=patch, agent="expert"), options(spec, cpuset))
    except Exception as exc:  # the harness broke, not the expert
        return Reference(task_id=task.id, metric=metric, status="error", reason=_crash(exc)), ""
    m = g.measurement
    levels = [_level(spec, task, lv.name, lv.patch, cpuset) for lv in task.expert.levels]
    timing = g.kernel.timing if g.kernel else None
    untimed = g.kernel.timing_note.split(":")[0] if g.kernel and g.kernel.timing_note else ""
    ref = Reference(
        task_id=task.id, metric=m.metric if m else metric, protocol=m and m.protocol,
        status=g.status.value,
        reason=g.reason or untimed, speedup=m.speedup if m else None, ci=_ci(m),
        verdict=m and m.verdict, workloads=_workloads(m), levels=levels if g.correct else [],
        kernel_time_s=timing.kernel_ms / 1e3 if timing else None,
        elapsed_s=round(time.monotonic() - started, 3),
    )  # fmt: skip
    return ref, g.model_dump_json()


def _level(spec: EvalSpec, task: Task, name: str, patch: str, cpuset: str | None) -> LevelSpeed:
    """A DPE reference solution, graded and measured like the expert."""
    try:
        text = task.file(patch).read_text()
        g = grade(task, Candidate(patch=text, agent=f"level:{name}"), options(spec, cpuset))
    except Exception as exc:
        return LevelSpeed(name=name, status="error: " + _crash(exc)[:200])
    speed = g.measurement.speedup if g.correct and g.measurement else None
    return LevelSpeed(name=name, speedup=speed, status=g.status.value)


def _dps(result: dict[str, Any], ref: Reference | None) -> dict[str, float]:
    """DPS and DPS_norm against the base, the expert and the task's reference levels."""
    if ref is None or not ref.usable or not ref.levels:
        return {}
    speeds = [1.0, ref.speedup or 1.0, *(lv.speedup for lv in ref.levels if lv.speedup)]
    score, norm = dps(result.get("speedup"), bool(result.get("correct")), dps_clusters(speeds))
    return {"dps": score, "dps_norm": norm}


def grade_sample(
    spec: EvalSpec, task: Task, sample: int, ref: Reference | None, cpuset: str | None
) -> tuple[SampleRecord, str]:
    """The agent's proposal for one sample, graded; never raises for a sample's failure."""
    proposer = proposer_for(spec)
    started = time.monotonic()
    try:
        prop = proposer.propose(task, sample)
    except UserError as exc:  # the model server, a key, a broken expert: not the patch
        prop = Proposal(patch="", failed=exc.problem, harness=True)
    except Exception as exc:
        prop = Proposal(patch="", failed=_crash(exc), harness=True)
    agent_s = time.monotonic() - started
    base = dict(task_id=task.id, sample=sample, agent=proposer.name, model=proposer.model,
                cost_usd=prop.cost_usd, prompt_tokens=prop.prompt_tokens,
                completion_tokens=prop.completion_tokens)  # fmt: skip
    if ref is not None and ref.usable:
        base.update(expert_speedup=ref.speedup, expert_speedup_ci=ref.ci)
    extra = dict(patch=prop.patch, steps=prop.steps, exit=prop.exit, run_dir=prop.run_dir,
                 agent_s=round(agent_s, 3))  # fmt: skip
    if prop.failed:
        result = SampleResult(**base, status=GradeStatus.ERROR, correct=False,
                              fault="harness" if prop.harness else "agent",
                              reason=prop.failed[:500])  # fmt: skip
        return SampleRecord(result=result, **extra), ""
    empty = not prop.patch.strip()
    try:
        g = grade(task, Candidate(patch=prop.patch, agent=proposer.name, model=proposer.model),
                  options(spec, cpuset, measure=not empty))  # fmt: skip
    except Exception as exc:
        result = SampleResult(**base, status=GradeStatus.ERROR, correct=False, fault="harness",
                              reason=_crash(exc))  # fmt: skip
        return SampleRecord(result=result, **extra), ""
    fields = _outcome(g, empty, ref, spec, task)
    result = SampleResult(**base, **fields, **_dps(fields, ref))
    rec = SampleRecord(
        result=result, **extra, workloads=_workloads(g.measurement),
        tests=g.tests.summary() if g.tests else None, grade_s=g.elapsed_s,
        workload_s=round(_workload_seconds(g.measurement), 3),
    )  # fmt: skip
    return rec, g.model_dump_json()


def _outcome(
    g: Grade, empty: bool, ref: Reference | None, spec: EvalSpec, task: Task
) -> dict[str, Any]:
    """The grade as SampleResult fields: status, correctness, speedup, whose fault."""
    out: dict[str, Any] = {"status": g.status, "correct": g.correct}
    if not g.correct:
        out["fault"] = "harness" if g.harness_fault else "agent"
        out["reason"] = g.reason[:500]
        return out
    m = g.measurement
    if empty:  # the base itself: exactly as fast as the base, nothing to measure
        metric = spec.metric or task.workload.metric
        out.update(speedup=1.0, speedup_ci=(1.0, 1.0), verdict="same",
                   metric="instructions" if metric == "both" else metric,
                   protocol=task.workload.timing(spec.protocol).name)  # fmt: skip
    elif m is not None:
        out.update(speedup=m.speedup, speedup_ci=_ci(m), verdict=m.verdict, metric=m.metric,
                   protocol=m.protocol)  # fmt: skip
        if m.base_median_s > 0 and m.candidate_median_s > 0:
            out.update(base_time_s=m.base_median_s, candidate_time_s=m.candidate_median_s)
        per_test = _per_test(_workloads(m), ref)
        if per_test:
            out["per_test"] = per_test
    timing = g.kernel.timing if g.kernel else None
    if timing is not None:  # KernelBench's fast_p: eager and torch.compile references
        compiled = timing.compile_ms / 1e3 if timing.compile_ms else None
        out.update(ref_times=RefTimes(t_ref=timing.eager_ms / 1e3, t_ref_compile=compiled),
                   candidate_time_s=timing.kernel_ms / 1e3)  # fmt: skip
    return out


def _per_test(mine: list[WorkloadSpeed], ref: Reference | None) -> list[PerTestTiming] | None:
    """GSO's per-test times (in the metric's unit), the expert's scaled to this base."""
    if ref is None or not ref.usable:
        return None
    theirs = {w.name: w for w in ref.workloads}
    if not mine or any(w.name not in theirs for w in mine):
        return None
    return [PerTestTiming(base=w.base, patch=w.base / w.speedup,
                          expert=w.base / theirs[w.name].speedup) for w in mine]  # fmt: skip


def _ci(m: Measurement | None) -> tuple[float, float] | None:
    if m is None or not all(math.isfinite(v) and v > 0 for v in m.ci):
        return None
    return (m.ci[0], m.ci[1])


def _workloads(m: Measurement | None) -> list[WorkloadSpeed]:
    """Each workload's ratio on the deciding metric (base over candidate)."""
    if m is None:
        return []
    out = []
    for w in m.workloads:
        r = next((x for x in w.metrics if x.metric == m.metric), None)
        if r is None or r.ratio <= 0 or r.base_median <= 0:
            continue
        scale = 1e-9 if r.metric == "instructions" else 1.0
        if not (0 < r.ci[0] <= r.ci[1] < math.inf):
            continue
        lo, hi = 1 / r.ci[1], 1 / r.ci[0]
        out.append(WorkloadSpeed(name=w.name, hidden=w.hidden, speedup=1 / r.ratio,
                                 ci=(lo, hi), base=r.base_median * scale))  # fmt: skip
    return out


def _workload_seconds(m: Measurement | None) -> float:
    """Seconds the timed workloads ran (wall-clock calls, both sides), for the overhead."""
    if m is None:
        return 0.0
    total = 0.0
    for w in m.workloads:
        for r in w.metrics:
            if r.metric != "wall":
                continue
            raw = (r.base_raw_ns or []) + (r.head_raw_ns or [])
            if raw:
                total += sum(sum(run) for run in raw) / 1e9
            else:
                total += sum(r.base_samples) + sum(r.head_samples)
    return total


def _crash(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" at {Path(where[0].filename).name}:{where[0].lineno}" if where else ""
    return f"the harness failed: {type(exc).__name__}: {exc}{at}"[:500]
