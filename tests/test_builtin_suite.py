"""The built-in task suite: every task loads, its base and expert pass their tests, the expert's
outputs equal the base's on every check, and wrong shortcuts are caught by hidden checks.

Runs real subprocesses in the local sandbox (confined by bubblewrap where installed). No
timings are asserted here; speedups are measured by hand (see the suite's README).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sandbox import Source, open_sandbox
from tasks.model import JUNIT_PATH, Check, Kind, Task, load_task
from tests.conftest import GIT_ENV

SUITE = Path(__file__).resolve().parent.parent / "tasks" / "suites" / "builtin"
TASK_DIRS = sorted(p for p in SUITE.iterdir() if (p / "task.toml").is_file())
TASKS = {p.name: load_task(p) for p in TASK_DIRS}
RUNNABLE = sorted(tid for tid, t in TASKS.items() if t.kind is not Kind.KERNEL)
#: Runs use this interpreter's environment (it has pytest and numpy) as `python3`.
PATH = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
INPUTS = ".optimizer/inputs"
RUN_WORKLOAD = (
    "import importlib.util, sys; sys.path.insert(0, '.'); "
    "spec = importlib.util.spec_from_file_location('bench_workload', sys.argv[1]); "
    "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
    "getattr(m, 'setup', lambda: None)(); m.workload()"
)


# -- helpers --------------------------------------------------------------------------------
def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


_REPOS: dict[str, Path] = {}


def task_repo(task: Task) -> Path:
    """The task's source tree as a one-commit git repo (made once per session)."""
    if task.id not in _REPOS:
        repo = Path(tempfile.mkdtemp(prefix=f"builtin-{task.id}-"))
        shutil.copytree(task.root / task.source.path, repo, dirs_exist_ok=True)
        _git(repo, "init", "-q", "-b", "main")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "base")
        _REPOS[task.id] = repo
    return _REPOS[task.id]


def make_patch(task: Task, edits: dict[str, tuple[str, str]]) -> str:
    """A `git diff` of the base after replacing, in each file, ``old`` by ``new`` (once)."""
    work = Path(tempfile.mkdtemp(prefix="builtin-patch-"))
    try:
        shutil.copytree(task_repo(task), work / "r")
        for rel, (old, new) in edits.items():
            path = work / "r" / rel
            text = path.read_text()
            assert text.count(old) == 1, f"{rel}: the text to replace must occur once"
            path.write_text(text.replace(old, new))
        return _git(work / "r", "diff")
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class SideResult:
    tests_exit: int | None = None
    junit: dict[str, int] = field(default_factory=dict)
    workload_ok: bool = False
    workload_log: str = ""
    outputs: dict[str, str | None] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)


def junit_counts(xml: bytes) -> dict[str, int]:
    root = ET.fromstring(xml)
    suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
    totals: Counter[str] = Counter()
    for suite in suites:
        for key in ("tests", "failures", "errors", "skipped"):
            totals[key] += int(suite.get(key, 0))
    return dict(totals)


def run_side(task: Task, patch: str | None, *, workload: bool = True) -> SideResult:
    """Run the tests, the workload and every check on the base (+ ``patch``)."""
    env = {**task.setup.env, "PATH": PATH}
    out = SideResult()
    with open_sandbox(Source(repo=task_repo(task), patch=patch), "local") as sb:
        for check in task.checks:
            for rel in check.files:
                sb.write_file(f"{INPUTS}/{Path(rel).name}", task.file(rel).read_bytes())
        if task.tests:
            r = sb.run(task.tests.command.format(junit=JUNIT_PATH), env=env, collect=[JUNIT_PATH])
            out.tests_exit = r.exit_code
            out.logs["tests"] = r.stdout[-3000:] + r.stderr[-3000:]
            if JUNIT_PATH in r.files:
                out.junit = junit_counts(r.files[JUNIT_PATH])
        if workload:
            if task.workload.file:
                r = sb.run(["python3", "-c", RUN_WORKLOAD, task.workload.file], env=env)
            else:
                r = sb.run(task.workload.command, env=env)
            out.workload_ok = r.ok
            out.workload_log = r.stderr[-3000:]
        for check in task.checks:
            stdin = task.file(check.stdin).read_bytes() if check.stdin else None
            collect = [check.output] if check.output else []
            r = sb.run(check.command, env=env, stdin=stdin, collect=collect)
            if not r.ok:
                out.outputs[check.name] = None
                out.logs[check.name] = r.stderr[-3000:]
            elif check.output:
                out.outputs[check.name] = r.files.get(check.output, b"").decode(errors="replace")
            else:
                out.outputs[check.name] = r.stdout
    return out


_TOKEN_SPLIT = re.compile(r"[\s,()\[\]{}:;|=]+")


def same_output(check: Check, base: str, cand: str) -> bool:
    """Whether the candidate's output matches the base's under the check's compare mode."""
    if check.compare == "exact":
        return base == cand
    if check.compare == "lines":
        return [ln.rstrip() for ln in base.strip().splitlines()] == [
            ln.rstrip() for ln in cand.strip().splitlines()
        ]
    a = [t for t in _TOKEN_SPLIT.split(base) if t]
    b = [t for t in _TOKEN_SPLIT.split(cand) if t]
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


_SIDES: dict[tuple[str, str], SideResult] = {}


@pytest.fixture(autouse=True, scope="module")
def _cleanup():
    yield
    for repo in _REPOS.values():
        shutil.rmtree(repo, ignore_errors=True)
    _REPOS.clear()


def side(task_id: str, which: str) -> SideResult:
    """The base's or the expert's run of a task (run once per session)."""
    key = (task_id, which)
    if key not in _SIDES:
        task = TASKS[task_id]
        patch = task.file(task.expert.patch).read_text() if which == "expert" else None
        _SIDES[key] = run_side(task, patch)
    return _SIDES[key]


def assert_tests_pass(task: Task, result: SideResult) -> None:
    assert result.tests_exit == 0, result.logs.get("tests")
    assert result.junit.get("failures", 0) == 0 and result.junit.get("errors", 0) == 0
    least = 15 if task.kind is Kind.REPO else 1
    assert result.junit.get("tests", 0) >= least, result.junit


# -- the suite's shape ----------------------------------------------------------------------
def test_suite_has_enough_tasks_of_each_kind():
    kinds = Counter(t.kind for t in TASKS.values())
    assert kinds[Kind.PROGRAM] >= 5
    assert kinds[Kind.REPO] >= 4
    assert kinds[Kind.KERNEL] >= 3


def test_task_ids_are_unique_and_match_directories():
    ids = [t.id for t in TASKS.values()]
    assert len(ids) == len(set(ids))
    assert all(TASKS[name].id == name for name in TASKS)


@pytest.mark.parametrize("task_id", sorted(TASKS))
def test_task_is_well_formed(task_id: str):
    task = TASKS[task_id]
    assert task.prompt.strip() and task.title
    assert task.source.path and (task.root / task.source.path).is_dir()
    assert task.hidden_checks(), "every task ships at least one hidden check"
    for check in task.hidden_checks():
        for rel in [check.stdin, *check.files]:
            if rel:
                assert rel.startswith("hidden/"), rel
                assert Path(rel).name not in task.prompt
    if task.kind is Kind.KERNEL:
        assert task.kernel and (task.root / task.source.path / task.kernel.reference).is_file()
        text = (task.root / task.source.path / task.kernel.reference).read_text()
        for name in (f"class {task.kernel.entry}(", "def get_inputs(", "def get_init_inputs("):
            assert name in text
        return
    assert task.tests and "{junit}" in task.tests.command
    assert task.visible_checks()
    assert task.expert.patch
    if task.kind is Kind.REPO:
        assert task.workload.file
        repo = task.root / task.source.path
        packages = [p for p in repo.iterdir() if (p / "__init__.py").is_file()]
        assert packages and len(list(packages[0].glob("*.py"))) >= 4


# -- base and expert ------------------------------------------------------------------------
@pytest.mark.parametrize("task_id", RUNNABLE)
def test_base_passes_tests_and_runs_workload(task_id: str):
    task, base = TASKS[task_id], side(task_id, "base")
    assert_tests_pass(task, base)
    assert base.workload_ok, base.workload_log
    for name, output in base.outputs.items():
        assert output, f"check {name} failed or printed nothing at base: {base.logs.get(name)}"


@pytest.mark.parametrize("task_id", RUNNABLE)
def test_expert_passes_tests_and_matches_base(task_id: str):
    task, base, expert = TASKS[task_id], side(task_id, "base"), side(task_id, "expert")
    assert_tests_pass(task, expert)
    assert expert.workload_ok, expert.workload_log
    for check in task.checks:
        cand = expert.outputs[check.name]
        assert cand is not None, f"{check.name}: {expert.logs.get(check.name)}"
        assert same_output(check, base.outputs[check.name] or "", cand), check.name


# -- wrong shortcuts: pass the visible tests, fail a hidden check ----------------------------
WRONG = {
    "pair-sum-count": {
        "main.py": (
            """    count = 0
    n = len(values)
    for i in range(n):
        first = values[i]
        for j in range(i + 1, n):
            if first + values[j] == k:
                count += 1
    return count""",
            """    present = set(values)  # WRONG: forgets repeated values
    return sum(1 for v in present if k - v in present and v < k - v)""",
        )
    },
    "lis-length": {
        "main.py": (
            """    n = len(values)
    best = [1] * n
    for i in range(n):
        vi = values[i]
        longest = 1
        for j in range(i):
            if values[j] < vi and best[j] + 1 > longest:
                longest = best[j] + 1
        best[i] = longest
    return max(best, default=0)""",
            """    import bisect

    tails = []
    for v in values:
        pos = bisect.bisect_right(tails, v)  # WRONG: non-strict for equal values
        tails[pos : pos + 1] = [v]
    return len(tails)""",
        )
    },
    "recpack": {
        "recpack/encode.py": (
            """        raw = value.encode("utf-8")
        return encode_varint(len(raw)) + raw""",
            """        return encode_varint(len(value)) + value.encode("utf-8")  # WRONG: chars""",
        )
    },
    "sigproc": {
        "sigproc/window.py": (
            """    out = np.empty(n)
    for i in range(n):
        out[i] = x[i : i + window].std()
    return out""",
            """    c1 = np.concatenate([[0.0], np.cumsum(x)])  # WRONG: cancels catastrophically
    c2 = np.concatenate([[0.0], np.cumsum(x * x)])
    mean = (c1[window:] - c1[:-window]) / window
    var = (c2[window:] - c2[:-window]) / window - mean * mean
    return np.sqrt(np.maximum(var, 0.0))""",
        )
    },
}


@pytest.mark.parametrize("task_id", sorted(WRONG))
def test_wrong_shortcut_passes_visible_but_fails_hidden(task_id: str):
    task, base = TASKS[task_id], side(task_id, "base")
    wrong = run_side(task, make_patch(task, WRONG[task_id]), workload=False)
    assert_tests_pass(task, wrong)
    for check in task.visible_checks():
        cand = wrong.outputs[check.name]
        assert cand is not None and same_output(check, base.outputs[check.name] or "", cand)
    caught = [
        c.name
        for c in task.hidden_checks()
        if wrong.outputs[c.name] is None
        or not same_output(c, base.outputs[c.name] or "", wrong.outputs[c.name])
    ]
    assert caught, "no hidden check caught the wrong shortcut"


def test_compare_helper():
    num = Check(name="n", command="x", compare="numeric", rtol=1e-6, atol=1e-9)
    assert same_output(num, "1.0 (2.5, nan)\n", "1.0000001 (2.5, nan)\n")
    assert not same_output(num, "1.0 2.0", "1.0 2.1")
    assert not same_output(num, "1.0 2.0", "1.0")
    assert not same_output(num, "a 1", "b 1")
    lines = Check(name="l", command="x", compare="lines")
    assert same_output(lines, "a \nb\n", "a\nb")
    assert not same_output(Check(name="e", command="x"), "a\n", "a")
