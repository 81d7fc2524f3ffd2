"""The evaluator contract: grade one candidate patch on one task, in the sandbox.

``grade(task, candidate)`` is the one function that produces a :class:`Grade`; ``run``,
``evaluate``, ``ci`` and ``tasks validate`` all use it. The steps, in order (the first that
fails ends the grade, with the reason):

1. apply the patch in a fresh sandbox copy of the task's base, failing loudly;
2. reject a patch that touches protected files (tests, workload, conftest.py, .optimizer/);
3. run the static guard on added lines (stack introspection, time patching, ...);
4. restore the protected files from the base;
5. install (the task's install commands, no network);
6. run the tests, judged by their JUnit XML and exit code, never by the candidate's stdout;
7. run the equivalence checks, visible and hidden, against the baseline's outputs;
8. measure base and candidate wall time in the same session, interleaved.

Like OpenEvolve's evaluator, a Grade carries metrics and artifacts (errors, a hotspot
summary) that can feed the next prompt.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from typing import Literal

from pydantic import BaseModel, Field

from optimizer.stats import ALPHAS, FLOORS, adaptive
from profilers import ProfileError, Workload, install, measure_wall, profile_hotspots
from sandbox import Backend, Limits, Sandbox, Source, Status, open_sandbox
from sandbox.errors import PatchError
from sandbox.images import EnvRecipe, image_for
from tasks.guard import guard_violations, is_protected, protected_violations
from tasks.model import JUNIT_PATH, Check, Kind, Task, TaskError
from tasks.source import task_source

GradeStatus = Literal[
    "ok",
    "failed_apply",
    "rejected_protected",
    "rejected_guard",
    "failed_install",
    "failed_tests",
    "failed_equivalence",
    "timeout",
    "error",
]
INPUTS_DIR = ".optimizer/inputs"


class Candidate(BaseModel):
    """A patch against a task's base, and where it came from."""

    patch: str = Field("", description="A unified diff; empty for the base itself (a no-op).")
    agent: str = "manual"
    model: str | None = None


class TestsResult(BaseModel):
    passed: bool
    total: int
    failures: int
    errors: int
    skipped: int
    exit_code: int | None
    failed: list[str] = Field(default_factory=list, description="Ids of failed tests.")

    def summary(self) -> str:
        """``passed/total``, e.g. ``24/24``."""
        return f"{self.total - self.failures - self.errors}/{self.total}"


class CheckResult(BaseModel):
    name: str
    hidden: bool
    passed: bool
    detail: str = ""


class Measurement(BaseModel):
    """Base vs candidate wall time, interleaved in one session."""

    verdict: str
    speedup: float = Field(description="Base median over candidate median; > 1 is faster.")
    ci: tuple[float, float] = Field(description="95% bootstrap interval on the speedup.")
    p_value: float
    base_median_s: float
    candidate_median_s: float
    pairs: int
    base_samples: list[float]
    candidate_samples: list[float]


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
    elapsed_s: float = 0.0

    @property
    def speedup(self) -> float | None:
        return self.measurement.speedup if self.measurement else None


class GradeOptions(BaseModel):
    backend: Backend = "auto"
    measure: bool = True
    repeats: int = Field(10, ge=2, description="Interleaved pairs to start with.")
    max_repeats: int = Field(40, ge=2)
    budget_s: float = Field(90.0, gt=0, description="Time budget for extra pairs.")
    hotspots: bool = False
    image: str | None = None


def grade(task: Task, candidate: Candidate, options: GradeOptions | None = None) -> Grade:
    """Grade ``candidate`` on ``task``; see the module docstring for the steps."""
    opts = options or GradeOptions()
    started = time.monotonic()
    result = Grade(task_id=task.id, status="ok", correct=False)
    try:
        _grade(task, candidate, opts, result)
    finally:
        result.elapsed_s = round(time.monotonic() - started, 3)
    return result


def _fail(result: Grade, status: GradeStatus, reason: str, artifact: str = "") -> Grade:
    result.status, result.reason, result.correct = status, reason, False
    if artifact:
        result.artifacts["error"] = artifact[-4000:]
    return result


def _grade(task: Task, candidate: Candidate, opts: GradeOptions, result: Grade) -> None:
    if task.kind is Kind.KERNEL:
        raise TaskError(
            f"task {task.id} is a kernel task; kernel grading lands with the kernels work. "
            "Fix: grade program or repo tasks for now"
        )
    base_src = task_source(task)
    image = opts.image or image_for(
        EnvRecipe(pip=task.setup.pip, apt=task.setup.apt),
        opts.backend,
        task.setup.image,
        log=lambda _m: None,
    )
    limits = Limits(memory_mb=task.limits.memory_mb, pids=task.limits.pids)
    cand_src = Source(repo=base_src.repo, rev=base_src.rev, patch=candidate.patch or None)
    with contextlib.ExitStack() as stack:
        # 1. apply
        try:
            cand = stack.enter_context(
                open_sandbox(cand_src, opts.backend, limits=limits, image=image)
            )
        except PatchError as exc:
            _fail(result, "failed_apply", str(exc).split(". Fix:")[0], str(exc))
            return
        result.applied = True
        # 2. protected files, 3. the guard
        if candidate.patch:
            result.protected = protected_violations(candidate.patch, task.protected_paths())
            if result.protected:
                _fail(
                    result,
                    "rejected_protected",
                    f"the patch changes protected files: {', '.join(result.protected)}",
                )
                return
            result.guard = [
                f"{v.file}:{v.line}: {v.rule}: {v.text.strip()}"
                for v in guard_violations(candidate.patch)
            ]
            if result.guard:
                _fail(
                    result,
                    "rejected_guard",
                    f"the static guard refused {len(result.guard)} line(s): {result.guard[0]}",
                )
                return
        base = stack.enter_context(open_sandbox(base_src, opts.backend, limits=limits, image=image))
        # 4. restore the protected files
        _restore(task, base_src, base.sha, cand)
        # 5. install
        for sb in (base, cand):
            for command in task.setup.install:
                run = sb.run(
                    command, limits=_limits(limits, task.limits.install_s), env=task.setup.env
                )
                if not run.ok:
                    side = "base" if sb is base else "candidate"
                    _fail(
                        result,
                        "failed_install",
                        f"install failed on the {side}: `{command}`: {run.reason}",
                        run.stderr,
                    )
                    return
        # 6. tests
        if task.tests:
            result.tests = _tests(task, cand, limits)
            if not result.tests.passed:
                status: GradeStatus = (
                    "timeout" if result.tests.exit_code is None else "failed_tests"
                )
                _fail(
                    result, status, _tests_reason(result.tests), result.artifacts.get("tests", "")
                )
                return
        # 7. equivalence
        for check in task.checks:
            outcome = _check(task, check, base, cand, limits)
            result.checks.append(outcome)
            if not outcome.passed:
                which = "a hidden" if check.hidden else "the visible"
                name = "" if check.hidden else f" {check.name}"
                _fail(
                    result,
                    "failed_equivalence",
                    f"output differs from the baseline on {which} check{name}: {outcome.detail}",
                )
                return
        result.status, result.correct = "ok", True
        # 8. measure (or, unmeasured, check that the workload runs at all)
        lim = _limits(limits, task.limits.workload_s)
        try:
            if opts.measure:
                result.measurement = _measure(task, base, cand, limits, opts)
            else:
                measure_wall(cand, _workload(task, cand), limits=lim)
            if opts.hotspots:
                report = profile_hotspots(cand, _workload(task, cand), limits=lim)
                result.artifacts["hotspots"] = report.text()
        except ProfileError as exc:
            status = "timeout" if exc.cause.startswith("timeout") else "error"
            stderr = exc.result.stderr if exc.result else ""
            _fail(result, status, f"the workload failed: {exc.cause}", stderr)


def _limits(limits: Limits, wall_s: float) -> Limits:
    return limits.model_copy(update={"wall_s": wall_s})


def _restore(task: Task, src: Source, sha: str, sb: Sandbox) -> None:
    """Write the base's version of every protected file into the candidate's copy."""
    listing = subprocess.run(
        ["git", "-C", str(src.repo), "ls-tree", "-r", "--name-only", sha],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    for path in listing:
        if is_protected(path, task.protected_paths()):
            data = subprocess.run(
                ["git", "-C", str(src.repo), "show", f"{sha}:{path}"],
                capture_output=True,
                check=True,
            ).stdout
            sb.write_file(path, data)


def _tests(task: Task, sb: Sandbox, limits: Limits) -> TestsResult:
    assert task.tests is not None
    command = task.tests.command.replace("{junit}", JUNIT_PATH)
    env = dict(task.setup.env)
    sb.run(["rm", "-f", JUNIT_PATH], limits=_limits(limits, 30))
    run = sb.run(
        command, limits=_limits(limits, task.limits.tests_s), env=env, collect=[JUNIT_PATH]
    )
    junit = run.files.get(JUNIT_PATH)
    if run.status is Status.TIMEOUT:
        return TestsResult(passed=False, total=0, failures=0, errors=0, skipped=0, exit_code=None)
    parsed = parse_junit(junit) if junit else None
    if parsed is None:
        return TestsResult(passed=False, total=0, failures=0, errors=1, skipped=0,
                           exit_code=run.exit_code, failed=["(no JUnit XML written)"])  # fmt: skip
    total, failures, errors, skipped, failed = parsed
    missing = [
        t for t in task.tests.must_pass if any(t.endswith(f) or f.endswith(t) for f in failed)
    ]
    passed = run.exit_code == 0 and failures == 0 and errors == 0 and total > 0 and not missing
    return TestsResult(passed=passed, total=total, failures=failures, errors=errors,
                       skipped=skipped, exit_code=run.exit_code, failed=failed[:50])  # fmt: skip


def parse_junit(data: bytes) -> tuple[int, int, int, int, list[str]] | None:
    """Count the test cases of a JUnit XML file: total, failures, errors, skipped, failed ids."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None
    total = failures = errors = skipped = 0
    failed: list[str] = []
    for case in root.iter("testcase"):
        total += 1
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None:
            failures += 1
            failed.append(test_id)
        elif case.find("error") is not None:
            errors += 1
            failed.append(test_id)
        elif case.find("skipped") is not None:
            skipped += 1
    return total, failures, errors, skipped, failed


def _tests_reason(tests: TestsResult) -> str:
    if tests.exit_code is None:
        return "the tests timed out"
    if tests.total == 0:
        return f"the tests wrote no results (exit {tests.exit_code})"
    bad = tests.failures + tests.errors
    first = f"; first: {tests.failed[0]}" if tests.failed else ""
    return f"{bad} of {tests.total} tests failed (exit {tests.exit_code}){first}"


def _check(task: Task, check: Check, base: Sandbox, cand: Sandbox, limits: Limits) -> CheckResult:
    """Run one check on both sides and compare the candidate's output with the base's."""
    lim = _limits(limits, task.limits.check_s)
    stdin = task.file(check.stdin).read_bytes() if check.stdin else None
    collect = [check.output] if check.output else []
    outputs = []
    for sb in (base, cand):
        for rel in check.files:
            sb.write_file(f"{INPUTS_DIR}/{rel.split('/')[-1]}", task.file(rel).read_bytes())
    if check.compare == "exit":
        if check.reference_command:
            ref = base.run(check.reference_command, limits=lim, env=task.setup.env)
            if not ref.ok:
                why = f"the reference run failed on the base: {ref.reason}"
                return CheckResult(name=check.name, hidden=check.hidden, passed=False, detail=why)
        run = cand.run(check.command, limits=lim, env=task.setup.env)
        return CheckResult(name=check.name, hidden=check.hidden, passed=run.ok,
                           detail="" if run.ok else run.reason)  # fmt: skip
    for sb in (base, cand):
        run = sb.run(check.command, limits=lim, env=task.setup.env, stdin=stdin, collect=collect)
        if not run.ok:
            side = "base" if sb is base else "candidate"
            return CheckResult(name=check.name, hidden=check.hidden, passed=False,
                               detail=f"the {side} run failed: {run.reason}")  # fmt: skip
        outputs.append(
            run.files.get(check.output, b"").decode(errors="replace")
            if check.output
            else run.stdout
        )
    same = outputs_match(outputs[0], outputs[1], check)
    if same and check.expected:
        same = outputs_match(
            task.file(check.expected).read_text(),
            outputs[1],
            check.model_copy(update={"compare": "lines"}),
        )
    return CheckResult(name=check.name, hidden=check.hidden, passed=same,
                       detail="" if same else "outputs differ")  # fmt: skip


_TOKEN_SPLIT = re.compile(r"[\s,()\[\]{}:;|=]+")


def outputs_match(expected: str, actual: str, check: Check) -> bool:
    """Compare two outputs by the check's rule.

    ``exact``: byte for byte. ``lines``: line by line, trailing space ignored. ``numeric``:
    token by token (split on spaces and punctuation), numbers within rtol/atol, NaN == NaN.
    """
    if check.compare == "exact":
        return expected == actual
    if check.compare == "lines":
        return _lines(expected) == _lines(actual)
    a = [t for t in _TOKEN_SPLIT.split(expected) if t]
    b = [t for t in _TOKEN_SPLIT.split(actual) if t]
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        try:
            fx, fy = float(x.strip("'\"")), float(y.strip("'\""))
        except ValueError:
            return False
        if math.isnan(fx) and math.isnan(fy):
            continue
        if not math.isclose(fx, fy, rel_tol=check.rtol, abs_tol=check.atol):
            return False
    return True


def _lines(text: str) -> list[str]:
    return [ln.rstrip() for ln in text.strip().splitlines()]


def _workload(task: Task, sb: Sandbox) -> Workload:
    spec = task.workload
    if spec.command:
        return install(sb, Workload(kind="command", target=spec.command))
    if spec.file:
        return install(sb, Workload(kind="file", target=spec.file))
    assert spec.script is not None
    return install(sb, Workload(kind="file", target="unused"), task.file(spec.script).read_bytes())


def _measure(
    task: Task, base: Sandbox, cand: Sandbox, limits: Limits, opts: GradeOptions
) -> Measurement:
    lim = _limits(limits, task.limits.workload_s)
    workloads = {id(sb): _workload(task, sb) for sb in (base, cand)}

    def timer(sb: Sandbox):
        runs = itertools.count()  # the i-th runs of both sides (a pair) share a hash seed
        return lambda: measure_wall(sb, workloads[id(sb)], limits=lim, hash_seed=next(runs)).seconds

    measure_wall(base, workloads[id(base)], limits=lim)  # warm-up, one per side, discarded
    measure_wall(cand, workloads[id(cand)], limits=lim)
    cmp, bs, cs, _order, _stopped = adaptive(
        timer(base), timer(cand), floor=FLOORS["wall"], start=opts.repeats,
        most=max(opts.repeats, opts.max_repeats), budget_s=opts.budget_s, alpha=ALPHAS["wall"],
        paired=True,
    )  # fmt: skip
    low, high = cmp.ci
    return Measurement(
        verdict=cmp.verdict.value,
        speedup=1.0 / cmp.ratio,
        ci=(1.0 / high, 1.0 / low),
        p_value=cmp.p_value,
        base_median_s=cmp.base_median,
        candidate_median_s=cmp.head_median,
        pairs=min(len(bs), len(cs)),
        base_samples=bs,
        candidate_samples=cs,
    )
