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
import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from profilers import ProfileError, Workload, install, measure_wall, profile_hotspots
from profilers.common import COPIED_WORKLOAD, last_line
from profilers.compare import REGION_RULES, MetricResult, Sampler, compare_metric, metrics_of
from sandbox import Limits, Sandbox, Source, open_sandbox
from sandbox.errors import PatchError, UserError
from sandbox.images import EnvRecipe, image_for
from sandbox.source import apply_patch
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
from tasks.guard import (
    config_violations,
    guard_violations,
    is_protected,
    parse_patch,
    protected_violations,
)
from tasks.model import TASK_FILE, Task, TaskError
from tasks.source import task_source, task_test_patch

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
    #: The base's known failures (failed or erred), excused by id at the candidate: JUnit
    #: ids, the live stream's ids, and the base's exit code (a candidate may exit nonzero
    #: only as the base did, with only these failing).
    failing: list[str] = field(default_factory=list)
    failing_live: list[str] = field(default_factory=list)
    exit_code: int | None = 0
    missing: list[str] = field(default_factory=list)  # modules the base's tests lacked
    #: The base's tests are broken (no results, none passed): the reason and the run's tail,
    #: reported by the test phase (with the tail as the artifact).
    tests_error: str = ""
    tests_tail: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    references: dict[str, bytes] = field(default_factory=dict)
    error: str = ""
    #: The startup hooks the base's install left (see :func:`startup_hooks`).
    hooks: dict[str, str] = field(default_factory=dict)


_BASELINES: dict[tuple, Baseline] = {}


def task_image(task: Task, backend: str, log=lambda _m: None) -> str | None:
    """The image (docker) or recipe venv (local) the task's runs need, built if missing."""
    recipe = EnvRecipe(pip=task.setup.pip, apt=task.setup.apt)
    return image_for(recipe, backend, task.setup.image, log=log, python=task.setup.python)


def grade_source(
    task: Task, candidate: Candidate, opts: GradeOptions, result: Grade, say: Progress
) -> None:
    base_src = task_source(task)
    image = opts.image or task_image(task, opts.backend)
    limits = Limits(memory_mb=task.limits.memory_mb, pids=task.limits.pids)
    if opts.cpuset:
        limits = limits.model_copy(update={"cpuset": opts.cpuset})
    env = task.run_env(RUN_ENV)
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
                result.harness_fault = side == "base"
                return
        say("installed and sealed")
        if key not in _BASELINES:
            assert base is not None
            _BASELINES[key] = _record_baseline(task, base, env, limits)
            _BASELINES[key].hooks = startup_hooks(task, base, limits)
        ref = _BASELINES[key]
        if ref.error:
            result.fail(GradeStatus.ERROR, ref.error)
            result.harness_fault = True
            return
        planted = _planted(ref.hooks, startup_hooks(task, cand, limits))
        if planted:
            points = [p for p in planted if p.endswith("entry_points.txt")]
            why = (
                "the installed package's entry points differ from the base's (pytest loads "
                f"plugins from them): {', '.join(points[:5])}"
                if points
                else "the install left startup code (Python runs it at every start, before "
                f"any timer) that the base's install does not: {', '.join(planted[:5])}"
            )
            result.fail(GradeStatus.REJECTED_GUARD, why)
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
    """Restore protected files (with the task's test patch applied), write the harness and
    inputs, install, then restore and write them again (the install may run the candidate's
    code), seal."""
    restored = _restored(task, base_src, sha)
    gone = sorted(path for path, data in restored.items() if data is None)  # by the test patch
    files = {path: data for path, data in restored.items() if data is not None}
    files.update(eq.input_files(task))
    files.update(testrun.PLUGIN_FILES)
    spec = task.workload
    for h in spec.hidden:
        if h.script:
            files[f"{HIDDEN_DIR}/{h.name}.py"] = task.file(h.script).read_bytes()
    if spec.script:
        files[COPIED_WORKLOAD] = task.file(spec.script).read_bytes()
    for rewrite in range(2 if task.install_commands() else 1):
        # Again after the install commands, which may run the candidate's own code (its
        # setup.py, its build): what they did to the tests, the inputs or the harness is undone.
        if gone:
            sb.run(["rm", "-rf", "--", *gone], limits=_with(limits, task.limits.install_s))
        sb.write_files(files)
        install(sb, Workload(kind="command", target="true"))  # the harness itself
        for command in task.install_commands() if rewrite == 0 else []:
            run = sb.run(command, limits=_with(limits, task.limits.install_s), env=env)
            if not run.ok:
                tail = (run.stderr or run.stdout).strip()
                return command, run.reason + (f": {last_line(tail)}" if tail else "")
    sb.seal()
    return None


#: Files Python runs at start-up, before any timer: a .pth line, site/usercustomize, and the
#: finders an editable install hooks in through a .pth; and the installed package's entry
#: points, through which pytest (``pytest11``) and other tools load plugins.
_HOOK_SCAN = r"""
import hashlib, json, os, sys
root, found = os.getcwd(), {}
for folder, dirs, names in os.walk(root):
    dirs[:] = [d for d in dirs if d != ".git"]
    for name in names:
        if name.endswith(".pth") or name.startswith("__editable__") or name in (
            "sitecustomize.py", "usercustomize.py", "entry_points.txt"):
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                data = f.read().replace(root.encode(), b"{workdir}")
            found[os.path.relpath(path, root)] = hashlib.sha256(data).hexdigest()
os.makedirs(".optimizer-out", exist_ok=True)
with open(".optimizer-out/hooks.json", "w") as f:
    json.dump(found, f)
"""


def startup_hooks(task: Task, sb: Sandbox, limits: Limits) -> dict[str, str]:
    """The start-up files under the sealed work dir (path -> digest, the work dir's path
    made neutral), found by ``python3 -S -I`` (so none of them runs) into a file. Only a task
    with install commands can have new ones: a patch that adds them is refused earlier."""
    if not task.install_commands():
        return {}
    out = ".optimizer-out/hooks.json"
    run = sb.run(["python3", "-S", "-I", "-c", _HOOK_SCAN], limits=limits, collect=[out])
    try:
        return dict(json.loads(run.files[out]))
    except (KeyError, ValueError, TypeError):
        return {"(the start-up file scan failed)": run.reason or "no result"}


def _planted(base: dict[str, str], cand: dict[str, str]) -> list[str]:
    """The candidate's start-up files that the base does not have, byte for byte."""
    return sorted(path for path, digest in cand.items() if base.get(path) != digest)


def _restored(task: Task, src: Source, sha: str) -> dict[str, bytes | None]:
    """The base's version of every protected file (the task's, and test configuration), then
    every file the task's test patch touches as base + test patch leaves it (None: deleted),
    so the base, the expert and every candidate run the same tests."""
    listing = subprocess.run(
        ["git", "-C", str(src.repo), "ls-tree", "-r", "-z", "--name-only", sha],
        capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    out: dict[str, bytes | None] = {}
    for path in listing:
        if path and is_protected(path, task.protected_paths()):
            out[path] = _base_file(src, sha, path)
    patch = task_test_patch(task)
    if patch:
        out.update(_test_patched(task, patch, src, sha))
    return out


def _base_file(src: Source, sha: str, path: str) -> bytes:
    return subprocess.run(
        ["git", "-C", str(src.repo), "show", f"{sha}:{path}"], capture_output=True, check=True
    ).stdout


def _test_patched(task: Task, patch: str, src: Source, sha: str) -> dict[str, bytes | None]:
    """The files ``patch`` touches, as it leaves them when applied to the base (None: deleted);
    a one-line TaskError when it does not apply."""
    diffs = parse_patch(patch)
    with tempfile.TemporaryDirectory(prefix="optimizer-test-patch-") as tmp:
        root = Path(tmp) / "tree"
        for old in {f.old_path for f in diffs if f.old_path}:
            target = root / old
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(subprocess.CalledProcessError):  # absent: git apply says
                target.write_bytes(_base_file(src, sha, old))
        root.mkdir(exist_ok=True)
        try:
            apply_patch(root, patch, f"the base ({sha[:12]})")
        except PatchError as exc:
            assert task.tests is not None and task.tests.patch
            raise TaskError(
                f"{task.root / TASK_FILE}: field 'tests.patch': {task.tests.patch}: {exc.problem}",
                "regenerate the test patch against the task's base commit",
            ) from None
        out: dict[str, bytes | None] = {}
        for f in diffs:
            if f.old_path and f.old_path != f.new_path:
                out[f.old_path] = None
            if f.new_path:
                new = root / f.new_path
                out[f.new_path] = new.read_bytes() if new.is_file() else None
        return out


def _record_baseline(task: Task, base: Sandbox, env: dict[str, str], limits: Limits) -> Baseline:
    ref = Baseline()
    if task.tests:
        run = testrun.run_tests(task, base, _with(limits, task.limits.tests_s), env)
        ref.exit_code, ref.missing, ref.tests_tail = run.exit_code, run.missing, run.tail
        junit = run.junit
        if junit is not None:
            ref.passing = junit.ids("passed")
            ref.failing = junit.ids("failed") + junit.ids("error")
            ref.passing_live = sum(v == "passed" for v in run.live.values())
            ref.failing_live = [n for n, v in run.live.items() if v == "failed"]
            ref.tests = testrun.judge(
                junit, run.exit_code, ref.passing, [], run.live, ref.passing_live,
                known_failures=ref.failing, known_live=ref.failing_live, base_exit=run.exit_code,
            )  # fmt: skip
        why = ""
        if run.exit_code is None:
            why = "timed out"
        elif junit is None:
            why = f"wrote no JUnit XML (exit {run.exit_code})"
        elif not ref.passing:
            why = f"passed none of {len(junit.outcomes)} tests (exit {run.exit_code})"
        if why:
            cause = f": {testrun.missing_reason(run.missing, base=True)}" if run.missing else ""
            last = run.tail.strip().splitlines()[-1:] or [""]
            ref.tests_error = f"the base's tests {why}: the task is broken{cause}: {last[0][-300:]}"
            return ref  # the test phase reports it, with the tail
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
    if ref.tests_error:
        result.artifacts["tests"] = ref.tests_tail
        result.fail(GradeStatus.ERROR, ref.tests_error, ref.tests_tail)
        result.harness_fault = True
        return False
    run = testrun.run_tests(task, cand, _with(limits, task.limits.tests_s), env)
    result.tests = testrun.judge(
        run.junit, run.exit_code, ref.passing, task.tests.must_pass, run.live, ref.passing_live,
        known_failures=ref.failing, known_live=ref.failing_live, base_exit=ref.exit_code,
    )  # fmt: skip
    if result.tests.passed:
        return True
    result.artifacts["tests"] = run.tail
    status = GradeStatus.TIMEOUT if run.exit_code is None else GradeStatus.FAILED_TESTS
    missing = [m for m in run.missing if m not in ref.missing]  # new at the candidate
    result.fail(status, testrun.reason(result.tests, missing), run.tail)
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
            say(f"measured: {m.reading()}")
        if opts.hotspots and visible.kind == "file":
            report = profile_hotspots(cand, visible, limits=_with(cand.limits, timeout), env=env)
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
    protocol = task.workload.timing(opts.protocol)
    measured: list[WorkloadMeasurement] = []
    for name, hidden, workload in workloads(task, opts.hidden):
        samplers = [
            Sampler(side, sb, workload, timeout_s=task.limits.workload_s, region="total",
                    env=env, what=f"the {'hidden ' if hidden else ''}workload",
                    protocol=protocol)
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
    cold = deciding.cold
    rule = REGION_RULES[deciding.region]
    if deciding.protocol == "warm":
        rule = protocol.rule() + "; when the candidate keeps results across calls, the same "
        rule += "processes' cold reading (import + setup + the first call) decides"
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
        rule=rule + "; the verdict is the worst over the visible and hidden workloads",
        protocol=deciding.protocol,
        protocol_label=deciding.protocol_label,
        cold_speedup=cold.speedup if cold else None,
        cold_ci=(1.0 / cold.ci[1], 1.0 / cold.ci[0]) if cold else None,
        caching=deciding.caching,
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
