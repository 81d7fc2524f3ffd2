"""The grader of program and repo tasks: a patch to a source tree, tests, checks, timing.

The steps, in order; the first that fails ends the grade with its status and reason:

1. apply the patch in a fresh sandbox copy of the task's base (``failed_apply``);
2. reject a patch that touches protected files: the task's tests, the workload, the
   harness's ``.optimizer/``, or anything that decides what the tests run (``pytest.ini``,
   ``tox.ini``, ``setup.cfg``, pyproject's ``[tool.pytest]``, ``conftest.py`` anywhere,
   ``sitecustomize.py``, ``usercustomize.py``, ``*.pth``, ``__pycache__``, ``*.dist-info``)
   (``rejected_protected``);
3. run the static guard on added lines (``rejected_guard``);
4. prepare each side: restore the protected files from the base, write the harness and the
   check inputs, run the install commands without network (``failed_install``), then
   **seal** the tree: every later run (test, check, timed repeat) starts from this same
   pristine state, so nothing one run writes can be read by the next;
5. run the tests: every test id that passes at the base must run and pass at the candidate,
   judged from JUnit XML and exit codes, never from stdout (``failed_tests``);
6. run the equivalence checks, visible and hidden, against the baseline's outputs
   (``failed_equivalence``);
7. measure base and candidate in the same session, interleaved (``profilers.compare``), on
   the visible workload and every hidden one; every timed run's result (a summary the harness
   takes without calling the result's own methods, or a command's stdout) must match the
   base's, so work skipped only while timed is ``failed_equivalence``. The timed region is
   the import of the code under test + ``setup()`` + ``workload()`` (``region = "total"``):
   work moved into import or setup is not a speedup. The verdict is the worst over the
   workloads, so a candidate fast only on the input it was shown is not ``faster``.

The base's side (its passing test ids, its check outputs) is computed once per task and
backend and reused by later grades in the same process (:func:`baseline`).
"""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass, field

from profilers import ProfileError, Workload, install, measure_wall, profile_hotspots
from profilers.common import COPIED_WORKLOAD
from profilers.compare import REGION_RULES, MetricResult, Sampler, compare_metric, metrics_of
from sandbox import Limits, Sandbox, Source, open_sandbox
from sandbox.errors import PatchError, UserError
from sandbox.images import EnvRecipe, image_for
from tasks import checks as eq
from tasks import testrun
from tasks.grade import (
    Candidate,
    CheckResult,
    Grade,
    GradeOptions,
    GradeStatus,
    Measurement,
    Progress,
    TestsResult,
    WorkloadMeasurement,
)
from tasks.guard import config_violations, guard_violations, is_protected, protected_violations
from tasks.model import Task
from tasks.source import task_source

HIDDEN_DIR = ".optimizer/hidden"
#: Verdicts from worst to best: the measurement over several workloads is the worst one.
_RANK = ["slower", "same", "inconclusive", "faster"]
#: Variables every run of a grade gets: no user site-packages, no test options from outside.
RUN_ENV = {"PYTHONNOUSERSITE": "1", "PYTEST_ADDOPTS": "", "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass
class Baseline:
    """What the base does, recorded once: its test outcomes and its check outputs."""

    tests: TestsResult | None = None
    passing: list[str] = field(default_factory=list)
    passing_live: int = 0
    outputs: dict[str, str] = field(default_factory=dict)
    references: dict[str, bytes] = field(default_factory=dict)
    error: str = ""


_BASELINES: dict[tuple, Baseline] = {}


def grade_source(
    task: Task, candidate: Candidate, opts: GradeOptions, result: Grade, say: Progress
) -> None:
    base_src = task_source(task)
    image = opts.image or image_for(
        EnvRecipe(pip=task.setup.pip, apt=task.setup.apt), opts.backend, task.setup.image,
        log=lambda _m: None,
    )  # fmt: skip
    limits = Limits(memory_mb=task.limits.memory_mb, pids=task.limits.pids)
    env = {**RUN_ENV, **task.setup.env}
    cand_src = Source(repo=base_src.repo, rev=base_src.rev, patch=candidate.patch or None)
    with contextlib.ExitStack() as stack:
        try:
            cand = stack.enter_context(
                open_sandbox(cand_src, opts.backend, limits=limits, image=image)
            )
        except PatchError as exc:
            result.fail(GradeStatus.FAILED_APPLY, exc.problem, str(exc))
            return
        result.applied = True
        say("applied")
        if candidate.patch and _refused(task, base_src, cand.sha, candidate.patch, result):
            return
        say("protected files and static guard: clean")
        key = (str(task.root), task.id, cand.sha, cand.backend, image)
        need_base = opts.measure or key not in _BASELINES
        base = None
        if need_base:
            base = stack.enter_context(
                open_sandbox(base_src, opts.backend, limits=limits, image=image)
            )
        for side, sb in (("base", base), ("candidate", cand)):
            if sb is None:
                continue
            failed = _prepare(task, sb, base_src, cand.sha, env, limits)
            if failed:
                command, run = failed
                result.fail(
                    GradeStatus.FAILED_INSTALL,
                    f"install failed on the {side}: `{command}`: {run}",
                )
                return
        say("installed and sealed")
        if key not in _BASELINES:
            assert base is not None
            _BASELINES[key] = _record_baseline(task, base, env, limits)
        ref = _BASELINES[key]
        if ref.error:
            result.fail(GradeStatus.ERROR, ref.error)
            return
        result.base_tests = ref.tests
        if task.tests and not opts.tests:
            say("tests: not run again (they passed for this patch in an earlier stage)")
        elif task.tests:
            if not _tests_pass(task, cand, env, limits, ref, result):
                return
            assert result.tests is not None
            say(f"tests: {result.tests.summary()} passed, {result.tests.contract} in the contract")
        if not _checks_pass(task, cand, env, limits, ref, result):
            return
        say(f"checks: {len(result.checks)} passed")
        result.status, result.correct = GradeStatus.OK, True
        _measure(task, base, cand, env, opts, result, say)


def _refused(task: Task, base_src: Source, sha: str, patch: str, result: Grade) -> bool:
    """Steps 2 and 3: protected paths and test configuration, then the static guard."""

    def base_text(path: str) -> str | None:
        done = subprocess.run(
            ["git", "-C", str(base_src.repo), "show", f"{sha}:{path}"],
            capture_output=True, text=True,
        )  # fmt: skip
        return done.stdout if done.returncode == 0 else None

    result.protected = protected_violations(patch, task.protected_paths())
    result.protected += config_violations(patch, base_text)
    if result.protected:
        result.fail(
            GradeStatus.REJECTED_PROTECTED,
            f"the patch changes protected files: {', '.join(result.protected)}",
        )
        return True
    result.guard = [str(v) for v in guard_violations(patch)]
    if result.guard:
        result.fail(
            GradeStatus.REJECTED_GUARD,
            f"the static guard refused {len(result.guard)} line(s): {result.guard[0]}",
        )
        return True
    return False


def _prepare(
    task: Task, sb: Sandbox, base_src: Source, sha: str, env: dict[str, str], limits: Limits
) -> tuple[str, str] | None:
    """Restore protected files, write the harness and inputs, install, seal."""
    files = _restored(task, base_src, sha)
    files.update(eq.input_files(task))
    files.update(testrun.PLUGIN_FILES)
    spec = task.workload
    for h in spec.hidden:
        if h.script:
            files[f"{HIDDEN_DIR}/{h.name}.py"] = task.file(h.script).read_bytes()
        for rel in h.files:
            files[f"{eq.INPUTS_DIR}/{rel.split('/')[-1]}"] = task.file(rel).read_bytes()
    sb.write_files(files)
    install(sb, Workload(kind="command", target="true"))  # the harness itself
    if spec.script:
        sb.write_file(COPIED_WORKLOAD, task.file(spec.script).read_bytes())
    for command in task.setup.install:
        run = sb.run(command, limits=_with(limits, task.limits.install_s), env=env)
        if not run.ok:
            return command, run.reason
    sb.seal()
    return None


def _restored(task: Task, src: Source, sha: str) -> dict[str, bytes]:
    """The base's version of every protected file (the task's, and test configuration)."""
    listing = subprocess.run(
        ["git", "-C", str(src.repo), "ls-tree", "-r", "--name-only", sha],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    out = {}
    for path in listing:
        if is_protected(path, task.protected_paths()):
            out[path] = subprocess.run(
                ["git", "-C", str(src.repo), "show", f"{sha}:{path}"],
                capture_output=True, check=True,
            ).stdout  # fmt: skip
    return out


def _record_baseline(task: Task, base: Sandbox, env: dict[str, str], limits: Limits) -> Baseline:
    ref = Baseline()
    if task.tests:
        junit, code, tail, live = testrun.run_tests(
            task, base, _with(limits, task.limits.tests_s), env
        )
        if junit is None:
            why = "timed out" if code is None else f"wrote no JUnit XML (exit {code})"
            ref.error = f"the base's tests {why}: the task is broken: {tail.strip()[-300:]}"
            return ref
        ref.passing = junit.ids("passed")
        ref.passing_live = sum(v == "passed" for v in live.values())
        ref.tests = testrun.judge(junit, code, ref.passing, [])
    lim = _with(limits, task.limits.check_s)
    for check in task.checks:
        if check.compare == "exit":
            if check.reference_command:
                tar, why = eq.run_reference(check, base, lim, env)
                if tar is None:
                    ref.error = why
                    return ref
                ref.references[check.name] = tar
            continue
        output, why = eq.run_check(task, check, base, lim, env)
        if output is None:
            ref.error = f"the base fails check {check.name}: {why}"
            return ref
        ref.outputs[check.name] = output
    return ref


def _tests_pass(
    task: Task, cand: Sandbox, env: dict[str, str], limits: Limits, ref: Baseline, result: Grade
) -> bool:
    assert task.tests is not None
    junit, code, tail, live = testrun.run_tests(task, cand, _with(limits, task.limits.tests_s), env)
    result.tests = testrun.judge(
        junit, code, ref.passing, task.tests.must_pass, live, ref.passing_live
    )
    if result.tests.passed:
        return True
    result.artifacts["tests"] = tail
    status = GradeStatus.TIMEOUT if code is None else GradeStatus.FAILED_TESTS
    result.fail(status, testrun.reason(result.tests), tail)
    return False


def _checks_pass(
    task: Task, cand: Sandbox, env: dict[str, str], limits: Limits, ref: Baseline, result: Grade
) -> bool:
    lim = _with(limits, task.limits.check_s)
    for check in task.checks:
        output, why = eq.run_check(task, check, cand, lim, env, ref.references.get(check.name))
        if output is None:
            outcome = CheckResult(
                name=check.name, hidden=check.hidden, passed=False,
                detail=f"the candidate run failed: {why}",
            )  # fmt: skip
        else:
            outcome = eq.judge_check(task, check, ref.outputs.get(check.name, ""), output)
        result.checks.append(outcome)
        if not outcome.passed:
            which = "a hidden" if check.hidden else "the visible"
            name = "" if check.hidden else f" {check.name}"
            result.fail(
                GradeStatus.FAILED_EQUIVALENCE,
                f"output differs from the baseline on {which} check{name}: {outcome.detail}",
            )
            return False
    return True


def workloads(task: Task, hidden: bool = True) -> list[tuple[str, bool, Workload]]:
    """(name, hidden, workload as the harness sees it) for the visible and hidden workloads."""
    spec = task.workload
    if spec.command:
        visible = Workload(kind="command", target=spec.command)
    else:
        visible = Workload(kind="file", target=spec.file or COPIED_WORKLOAD)
    out = [("workload", False, visible)]
    for h in spec.hidden if hidden else []:
        if h.command:
            out.append((h.name, True, Workload(kind="command", target=h.command)))
        else:
            out.append((h.name, True, Workload(kind="file", target=f"{HIDDEN_DIR}/{h.name}.py")))
    return out


def _measure(
    task: Task, base: Sandbox | None, cand: Sandbox, env: dict[str, str], opts: GradeOptions,
    result: Grade, say: Progress,
) -> None:  # fmt: skip
    """Step 7 (or, unmeasured, a check that the visible workload runs at all)."""
    timeout = task.limits.workload_s
    visible = workloads(task)[0][2]
    try:
        if not opts.measure or base is None:
            measure_wall(cand, visible, limits=_with(cand.limits, timeout), env=env)
        else:
            result.measurement = _compare(task, base, cand, env, opts, say)
            m = result.measurement
            differ = [
                (w.name, r.outputs)
                for w in m.workloads
                for r in w.metrics
                if r.outputs and r.outputs.startswith("differ")
            ]
            if differ:
                name, why = differ[0]
                result.fail(
                    GradeStatus.FAILED_EQUIVALENCE,
                    f"the timed runs' results differ from the baseline's on "
                    f"{'the workload' if name == 'workload' else 'a hidden workload'}: {why}",
                )
                return
            say(f"measured: {m.speedup:.3f}x [{m.ci[0]:.3f}, {m.ci[1]:.3f}] {m.verdict}")
        if opts.hotspots and visible.kind == "file":
            report = profile_hotspots(cand, visible, limits=_with(cand.limits, timeout))
            result.artifacts["hotspots"] = report.text()
    except (ProfileError, UserError) as exc:
        cause = exc.cause if isinstance(exc, ProfileError) else exc.problem
        status = GradeStatus.TIMEOUT if "timeout" in cause.split(":")[0] else GradeStatus.ERROR
        stderr = exc.result.stderr if isinstance(exc, ProfileError) and exc.result else ""
        result.fail(status, f"the workload failed: {cause}", stderr)


def _compare(
    task: Task, base: Sandbox, cand: Sandbox, env: dict[str, str], opts: GradeOptions,
    say: Progress,
) -> Measurement:  # fmt: skip
    metrics = metrics_of(opts.metric or task.workload.metric)
    measured: list[WorkloadMeasurement] = []
    for name, hidden, workload in workloads(task, opts.hidden):
        samplers = [
            Sampler(side, sb, workload, timeout_s=task.limits.workload_s, region="total",
                    env=env, what=f"the {'hidden ' if hidden else ''}workload")
            for side, sb in (("the base", base), ("the candidate", cand))
        ]  # fmt: skip
        results = []
        for metric in metrics:
            say(f"measuring {'a hidden workload' if hidden else 'the workload'}: {metric}")
            wall = metric == "wall"
            pairs = (opts.repeats, max(opts.repeats, opts.max_repeats)) if wall else None
            results.append(compare_metric(metric, *samplers, pairs=pairs, budget_s=opts.budget_s))
        measured.append(
            WorkloadMeasurement(name=name, hidden=hidden, verdict=_decide(results), metrics=results)
        )
    worst = min(measured, key=lambda w: (_RANK.index(w.verdict), _primary(w.metrics).speedup))
    deciding = _primary(worst.metrics)
    visible_wall = next((m for m in measured[0].metrics if m.metric == "wall"), None)
    low, high = deciding.ci
    return Measurement(
        verdict=worst.verdict,
        metric=deciding.metric,
        speedup=deciding.speedup,
        ci=(1.0 / high, 1.0 / low),
        p_value=deciding.p_value,
        base_median_s=visible_wall.base_median if visible_wall else 0.0,
        candidate_median_s=visible_wall.head_median if visible_wall else 0.0,
        pairs=deciding.pairs,
        region=deciding.region,
        rule=REGION_RULES[deciding.region]
        + "; the verdict is the worst over the visible and hidden workloads",
        workloads=measured,
    )


def _primary(results: list[MetricResult]) -> MetricResult:
    """Instruction counts decide where measured (they do not move with load)."""
    return next((m for m in results if m.metric == "instructions"), results[0])


def _decide(results: list[MetricResult]) -> str:
    """One workload's verdict: the primary metric's, unless wall time firmly disagrees."""
    primary = _primary(results).verdict
    wall = next((m.verdict for m in results if m.metric == "wall"), primary)
    if {primary, wall} == {"faster", "slower"}:
        return "inconclusive"  # instructions and the clock point opposite ways
    return primary


def _with(limits: Limits, wall_s: float) -> Limits:
    return limits.model_copy(update={"wall_s": wall_s})
