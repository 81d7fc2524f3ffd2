"""The grading contract: ``grade(task, candidate) -> Grade``, the one function that says
whether a candidate is correct and how much faster it is.

``run``, ``evaluate``, ``ci``-style checks, ``optimizer grade`` and ``tasks validate`` all
call it. It dispatches on the task's kind to that kind's grader (``GRADERS``): program and
repo tasks share ``tasks.graders.source``; kernel tasks plug in from ``kernels/`` without
touching the others. Every grader fills the same :class:`Grade`, whose ``status`` is the
one vocabulary that also goes into ``results.jsonl``.

Like OpenEvolve's evaluator, a Grade carries metrics and artifacts (errors, the tests that
broke, a hotspot summary) that can feed an agent's next prompt.
"""

from __future__ import annotations

import importlib
import time
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, Field

from profilers.compare import MetricChoice, MetricResult
from profilers.models import ProtocolName
from sandbox import Backend
from tasks.model import Kind, Task, TaskError


class GradeStatus(StrEnum):
    """How a grade ended; the same words go into results.jsonl. Only ``ok`` is correct."""

    OK = "ok"
    FAILED_APPLY = "failed_apply"  # the patch does not apply
    REJECTED_PROTECTED = "rejected_protected"  # it changes tests, the workload or test config
    REJECTED_GUARD = "rejected_guard"  # the static guard refused an added line
    FAILED_INSTALL = "failed_install"  # the task's install commands failed
    FAILED_TESTS = "failed_tests"  # a test that passes at the base does not pass
    FAILED_EQUIVALENCE = "failed_equivalence"  # an output differs from the baseline's
    TIMEOUT = "timeout"  # the tests or the workload ran past their limit
    ERROR = "error"  # the workload crashed, or the harness could not measure it


class Candidate(BaseModel):
    """A patch against a task's base, and where it came from."""

    patch: str = Field("", description="A unified diff; empty for the base itself (a no-op).")
    agent: str = "manual"
    model: str | None = None


class TestsResult(BaseModel):
    """The candidate's test run, judged against the base's (the PASS_TO_PASS contract)."""

    passed: bool
    total: int
    failures: int
    errors: int
    skipped: int
    exit_code: int | None
    failed: list[str] = Field(default_factory=list, description="Ids of failed tests.")
    contract: int = Field(0, description="Test ids that must run and pass (base's passing).")
    broken: list[str] = Field(
        default_factory=list,
        description="Contract ids that did not pass at the candidate, with how: "
        "'id (failed|skipped|not run)'.",
    )
    excused: list[str] = Field(
        default_factory=list,
        description="Known failures: ids that failed here and failed at the base too, "
        "excused by id (the base's own record lists all of the base's failures).",
    )
    base_exit_code: int | None = Field(
        0, description="The base's exit code: a nonzero exit is accepted only if the same."
    )

    def summary(self) -> str:
        """``passed/total``, e.g. ``24/24``, and the failures excused as the base's own."""
        text = f"{self.total - self.failures - self.errors - self.skipped}/{self.total}"
        return text + (f" ({len(self.excused)} known failures)" if self.excused else "")


class CheckResult(BaseModel):
    name: str
    hidden: bool
    passed: bool
    detail: str = ""


class WorkloadMeasurement(BaseModel):
    """One workload's comparisons (one per metric) of the candidate with the base."""

    name: str = Field(description="'workload' for the visible one, else the hidden one's name.")
    hidden: bool = False
    verdict: str
    metrics: list[MetricResult]


class Measurement(BaseModel):
    """Base vs candidate, interleaved in one session, on every workload and metric."""

    verdict: str = Field(description="faster, slower, same or inconclusive, over all workloads.")
    metric: str = Field(description="The metric that decides (instructions when measured).")
    speedup: float = Field(description="Base over candidate on the deciding metric; > 1 faster.")
    ci: tuple[float, float] = Field(description="95% interval on that speedup.")
    p_value: float
    base_median_s: float = Field(description="Visible workload, wall clock (0: not measured).")
    candidate_median_s: float
    pairs: int
    region: str = Field(description="What the timed region covers: 'total' or 'workload'.")
    rule: str = Field(description="The timing rule, in words.")
    protocol: str = Field("cold", description="How each process was timed: cold or warm.")
    protocol_label: str = Field("cold", description="The protocol, with its counts.")
    cold_speedup: float | None = Field(
        None, description="Warm: the same processes read cold (import + setup + first call)."
    )
    cold_ci: tuple[float, float] | None = None
    caching: str | None = Field(
        None, description="Warm: why the warm reading was not credited (a cache across calls)."
    )
    workloads: list[WorkloadMeasurement]

    def reading(self) -> str:
        """``1.234x [1.2, 1.3] faster (warm)``: the speedup with the protocol it was taken in."""
        text = f"{self.speedup:.3f}x [{self.ci[0]:.3f}, {self.ci[1]:.3f}] {self.verdict}"
        text += f" ({self.protocol})"
        if self.cold_speedup is not None and not self.caching:
            text += f"; cold {self.cold_speedup:.3f}x"
        return text

    @property
    def base_samples(self) -> list[float]:
        return self._visible().base_samples

    @property
    def candidate_samples(self) -> list[float]:
        return self._visible().head_samples

    def _visible(self) -> MetricResult:
        return next(m for m in self.workloads[0].metrics if m.metric == self.metric)


class KernelTiming(BaseModel):
    """A kernel's CUDA times (do_bench medians, ms) against eager PyTorch and torch.compile."""

    eager_ms: float
    compile_ms: float | None = None
    kernel_ms: float
    host_ms: float = Field(0.0, description="Host clock per call, whole device synchronized.")
    speedup_eager: float
    speedup_compile: float | None = None
    compile_error: str = ""
    flagged: list[str] = Field(default_factory=list, description="For a human to review.")


class KernelReport(BaseModel):
    """What the kernel judge ran and saw (kernel tasks only)."""

    device: str = Field(description="The GPU's name, or 'cpu' (Triton's interpreter).")
    interpreted: bool = Field(description="Ran under TRITON_INTERPRET=1: times meaningless.")
    cases: int = Field(
        description="Calls checked: trials x shapes x distributions (+ the timing inputs)."
    )
    shapes: int
    trials: int
    distributions: list[str]
    atol: float
    rtol: float
    max_abs_err: float = 0.0
    tolerance_used: float = Field(
        0.0, description="Worst |got - expected| / (atol + rtol * |expected|): 1 is the limit."
    )
    launches: int = Field(0, description="Fewest Triton launches in one forward() call.")
    torch_ops: list[str] = Field(default_factory=list, description="aten ops forward() ran.")
    timing: KernelTiming | None = None
    timing_note: str = Field("", description="Why there is no timing, when there is none.")
    nulls_passing: list[str] = Field(
        default_factory=list,
        description="Null kernels (zeros, constant, copy) whose outputs would pass every case: "
        "a problem that cannot tell a kernel from none.",
    )

    def summary(self) -> str:
        """One line on what was checked and how close it came to the tolerance."""
        seeded = self.trials * self.shapes * len(self.distributions)
        extra = f" + {self.cases - seeded} at the timing inputs" if self.cases > seeded else ""
        return (
            f"{self.cases} calls ({self.trials} trials x {self.shapes} shapes x "
            f"{len(self.distributions)} distributions{extra}) on {self.device}; worst error "
            f"{self.tolerance_used:.2g} of the tolerance (max abs {self.max_abs_err:.3g}, "
            f"atol {self.atol:g}, rtol {self.rtol:g}); {self.launches} Triton launch(es) a call"
        )


class Grade(BaseModel):
    """The result of grading one candidate on one task."""

    task_id: str
    status: GradeStatus
    correct: bool
    reason: str = ""
    applied: bool = False
    protected: list[str] = Field(default_factory=list, description="Protected paths touched.")
    guard: list[str] = Field(default_factory=list, description="Static-guard findings.")
    tests: TestsResult | None = None
    base_tests: TestsResult | None = None
    checks: list[CheckResult] = Field(default_factory=list)
    measurement: Measurement | None = None
    artifacts: dict[str, str] = Field(default_factory=dict, description="For the next prompt.")
    steps: list[str] = Field(default_factory=list, description="The steps passed, in order.")
    harness_fault: bool = Field(
        False,
        description="The failure is the base's or the harness's (the base's own install, "
        "tests or baseline run failed), not the candidate's: a retry may succeed.",
    )
    kernel: KernelReport | None = None
    elapsed_s: float = 0.0

    @property
    def speedup(self) -> float | None:
        return self.measurement.speedup if self.measurement else None

    def fail(self, status: GradeStatus, reason: str, artifact: str = "") -> Grade:
        self.status, self.reason, self.correct = status, reason, False
        if artifact:
            self.artifacts["error"] = artifact[-4000:]
        return self


class GradeOptions(BaseModel):
    backend: Backend = "auto"
    measure: bool = True
    metric: MetricChoice | None = Field(None, description="None: the task's workload.metric.")
    protocol: ProtocolName | None = Field(None, description="None: the task's workload.protocol.")
    hidden: bool = Field(True, description="Also time the task's hidden workloads.")
    repeats: int = Field(10, ge=2, description="Interleaved wall-clock pairs to start with.")
    max_repeats: int = Field(40, ge=2)
    budget_s: float = Field(90.0, gt=0, description="Time budget per workload and metric.")
    hotspots: bool = False
    image: str | None = None
    cpuset: str | None = Field(
        None, description="CPUs every sandbox run of this grade is pinned to, e.g. '1'."
    )
    tests: bool = Field(
        True,
        description="Run the test contract. Off only to re-measure a patch whose tests already "
        "passed in this session (`optimizer run`'s later cascade stages).",
    )


class Progress(Protocol):
    def __call__(self, step: str) -> None: ...


class Grader(Protocol):
    """A kind's grader: fills ``result`` (it starts as ``ok``, not yet correct)."""

    def __call__(
        self, task: Task, candidate: Candidate, opts: GradeOptions, result: Grade, say: Progress
    ) -> None: ...


#: Each task kind's grader, as "module:function", imported when first needed.
GRADERS: dict[Kind, str] = {
    Kind.PROGRAM: "tasks.graders.source:grade_source",
    Kind.REPO: "tasks.graders.source:grade_source",
    Kind.KERNEL: "kernels.grader:grade_kernel",
}


def grader_for(kind: Kind) -> Grader:
    module, _, name = GRADERS[kind].partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise  # the grader exists but one of its own imports is broken: a bug, not a user's
        raise TaskError(
            f"no grader for {kind.value} tasks is installed ({GRADERS[kind]})",
            "grade program or repo tasks, or install the package that grades this kind",
        ) from None


def grade(
    task: Task,
    candidate: Candidate,
    options: GradeOptions | None = None,
    progress: Progress | None = None,
) -> Grade:
    """Grade ``candidate`` on ``task`` with the grader of the task's kind."""
    opts = options or GradeOptions()
    say: Progress = progress or (lambda _step: None)
    grader = grader_for(task.kind)
    started = time.monotonic()
    result = Grade(task_id=task.id, status=GradeStatus.OK, correct=False)

    def step(text: str) -> None:
        result.steps.append(text)
        say(text)

    try:
        grader(task, candidate, opts, result, step)
    finally:
        result.elapsed_s = round(time.monotonic() - started, 3)
    return result
