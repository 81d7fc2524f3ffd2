"""Validate a task as SWE-fficiency validates its gold patches: the base passes its tests,
the expert passes its tests and every equivalence check, and the expert is significantly
faster, by at least ``MIN_SPEEDUP``, measured against the base in the same session."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field

from tasks.grade import Candidate, Grade, GradeOptions, grade
from tasks.model import Kind, Task
from tasks.source import expert_patch

MIN_SPEEDUP = 1.2
#: A base workload faster than this is noise with a timer around it (wall clock, seconds).
MIN_WORKLOAD_S = 0.005


class Validation(BaseModel):
    """One task's validation, as ``tasks validate --json`` writes it (``VERSION``)."""

    task_id: str
    kind: str
    status: Literal["ok", "failed", "skipped"]
    reason: str = ""
    base: Grade | None = None
    expert: Grade | None = None
    elapsed_s: float = Field(0.0, description="Wall seconds the validation took.")
    declared_speedup: float | None = Field(
        None, description="The task's `expert.speedup` (a published or hand-measured figure)."
    )
    consistent: bool | None = Field(
        None,
        description="Whether the measured 95% CI holds the declared speedup (None: nothing "
        "declared, not measured, or measured under another protocol). Informational: "
        "machines differ, so it fails nothing.",
    )
    protocol: str | None = Field(None, description="How the expert was measured: cold or warm.")
    declared_protocol: str | None = Field(None, description="How the declared figure was taken.")
    agreement: str = Field("", description="The comparison with the declared figure, in words.")

    def speedup(self) -> float | None:
        return self.expert.speedup() if self.expert else None


class ValidationReport(BaseModel):
    """The whole of ``tasks validate --json``: a versioned record."""

    version: int = 1
    suite: str
    backend: str
    tasks: list[Validation]
    elapsed_s: float


def validate_task(task: Task, options: GradeOptions | None = None) -> Validation:
    """Grade the base (a no-op candidate, unmeasured) and the expert (measured)."""
    started = time.monotonic()
    out = _validate(task, options or GradeOptions())
    out.elapsed_s = round(time.monotonic() - started, 3)
    out.declared_speedup = task.expert.speedup
    m = out.expert.measurement if out.expert else None
    out.protocol = m.protocol if m else None
    declared = task.expert.speedup
    if declared:
        out.declared_protocol = task.expert.speedup_protocol or task.workload.protocol
    if declared and m is not None:
        if m.protocol != out.declared_protocol:
            out.agreement = (
                f"declared {declared:g}x was taken {out.declared_protocol}, measured "
                f"{m.protocol}: not compared (validate with --protocol {out.declared_protocol})"
            )
        else:
            out.consistent = m.ci[0] <= declared <= m.ci[1]
            where = "inside" if out.consistent else "outside"
            out.agreement = (
                f"declared {declared:g}x ({m.protocol}) is {where} the measured 95% CI "
                f"{m.ci[0]:.2f}-{m.ci[1]:.2f} ({m.speedup:.2f}x, {m.protocol}): "
                + ("they agree" if out.consistent else "they disagree")
            )
    return out


def _validate(task: Task, opts: GradeOptions) -> Validation:
    out = Validation(task_id=task.id, kind=task.kind.value, status="skipped")
    patch = expert_patch(task)
    if not patch:
        out.reason = "the task has no expert patch"
        return out
    if task.kind is Kind.KERNEL:
        return _validate_kernel(task, patch, opts, out)
    out.status = "failed"
    out.base = grade(task, Candidate(agent="base"), opts.model_copy(update={"measure": False}))
    if not out.base.correct:
        out.reason = f"the base fails: {out.base.reason}"
        return out
    out.expert = grade(task, Candidate(patch=patch, agent="expert"), opts)
    m = out.expert.measurement
    if not out.expert.correct:
        out.reason = f"the expert fails: {out.expert.reason}"
    elif m is None:
        out.reason = "the expert was not measured"
    elif m.verdict != "faster" or m.ci[0] <= 1.0:
        out.reason = f"the expert is not significantly faster ({m.verdict}, {m.speedup:.2f}x)"
    elif 0 < m.base_median_s < MIN_WORKLOAD_S:
        out.reason = (
            f"the base workload runs {m.base_median_s * 1e3:.2f} ms, under "
            f"{MIN_WORKLOAD_S * 1e3:g} ms: too short to time; make it do more work"
        )
    elif m.speedup < MIN_SPEEDUP:
        out.reason = f"the expert's speedup {m.speedup:.2f}x is below {MIN_SPEEDUP}x"
    else:
        out.status = "ok"
    return out


def _validate_kernel(task: Task, patch: str, opts: GradeOptions, out: Validation) -> Validation:
    """A kernel task: the expert is correct on every case, and no null kernel (zeros, a
    constant, a copy of the input) would pass; on a GPU the expert is also faster than eager."""
    out.status = "failed"
    out.expert = grade(task, Candidate(patch=patch, agent="expert"), opts)
    k, m = out.expert.kernel, out.expert.measurement
    if not out.expert.correct:
        out.reason = f"the expert fails: {out.expert.reason}"
    elif k is not None and k.nulls_passing:
        out.reason = (
            f"a null kernel ({', '.join(k.nulls_passing)}) passes this problem: its outputs are "
            "below the tolerance; rescale the inputs or tighten atol"
        )
    elif m is None:
        out.status = "ok"
        out.reason = (k.timing_note if k and k.timing_note else "not measured").split(":")[0]
    elif m.verdict != "faster" or m.ci[0] <= 1.0:
        out.reason = f"the expert is not significantly faster ({m.verdict}, {m.speedup:.2f}x)"
    else:
        out.status = "ok"
    return out
