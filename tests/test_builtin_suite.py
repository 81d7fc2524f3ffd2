"""The built-in task suite, graded by the real evaluator contract (``tasks.grade``).

Every task loads; for every runnable task the base and the expert pass their tests, the
expert's outputs equal the base's on every check (visible and hidden) and its workload runs;
and wrong shortcuts pass the visible tests but fail a hidden check. Runs real subprocesses in
the local sandbox (confined by bubblewrap where installed). No timings are asserted here:
`optimizer tasks validate builtin` measures the experts, and benchmarks/noop_tasks.py the
no-op candidates.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from tasks.checks import outputs_match
from tasks.grade import Candidate, Grade, GradeOptions, grade
from tasks.model import Check, Kind, Task, load_task
from tasks.source import task_source
from tests.conftest import GIT_ENV

SUITE = Path(__file__).resolve().parent.parent / "tasks" / "suites" / "builtin"
TASK_DIRS = sorted(p for p in SUITE.iterdir() if (p / "task.toml").is_file())
TASKS = {p.name: load_task(p) for p in TASK_DIRS}
RUNNABLE = sorted(tid for tid, t in TASKS.items() if t.kind is not Kind.KERNEL)
UNMEASURED = GradeOptions(backend="local", measure=False)


def make_patch(task: Task, edits: dict[str, tuple[str, str]]) -> str:
    """A `git diff` of the base after replacing, in each file, ``old`` by ``new`` (once)."""
    with tempfile.TemporaryDirectory(prefix="builtin-patch-") as tmp:
        work = Path(tmp) / "r"
        shutil.copytree(task_source(task).repo, work)
        for rel, (old, new) in edits.items():
            path = work / rel
            text = path.read_text()
            assert text.count(old) == 1, f"{rel}: the text to replace must occur once"
            path.write_text(text.replace(old, new))
        env = {**os.environ, **GIT_ENV}
        return subprocess.run(
            ["git", "-C", str(work), "diff"], env=env, capture_output=True, text=True, check=True
        ).stdout


@functools.cache
def graded(task_id: str, which: str) -> Grade:
    """The base's (a no-op candidate) or the expert's grade, once per session."""
    task = TASKS[task_id]
    patch = task.file(task.expert.patch).read_text() if which == "expert" else ""
    return grade(task, Candidate(patch=patch, agent=which), UNMEASURED)


def assert_correct(task: Task, result: Grade) -> None:
    assert result.correct, f"{result.status}: {result.reason}\n{result.artifacts.get('error', '')}"
    assert result.tests is not None and result.tests.passed
    assert result.tests.total >= (15 if task.kind is Kind.REPO else 1), result.tests
    assert [c.name for c in result.checks] == [c.name for c in task.checks]
    assert all(c.passed for c in result.checks)


# -- the suite's shape ----------------------------------------------------------------------
def test_suite_has_enough_tasks_of_each_kind():
    kinds = Counter(t.kind for t in TASKS.values())
    assert kinds[Kind.PROGRAM] >= 5
    assert kinds[Kind.REPO] >= 4
    assert kinds[Kind.KERNEL] >= 4


def test_task_ids_are_unique_and_match_directories():
    ids = [t.id for t in TASKS.values()]
    assert len(ids) == len(set(ids))
    assert all(TASKS[name].id == name for name in TASKS)


@pytest.mark.parametrize("task_id", sorted(TASKS))
def test_task_is_well_formed(task_id: str):
    task = TASKS[task_id]
    assert task.prompt.strip() and task.title
    assert task.source.path and (task.root / task.source.path).is_dir()
    if task.kind is Kind.KERNEL:  # hidden data: the judge's seeded trials, not files
        assert task.kernel and (task.root / task.source.path / task.kernel.reference).is_file()
        text = (task.root / task.source.path / task.kernel.reference).read_text()
        for name in (f"class {task.kernel.entry}(", "def get_inputs(", "def get_init_inputs("):
            assert name in text
        assert task.expert.patch and task.kernel.trials >= 5 and len(task.kernel.shapes) >= 3
        assert task.kernel.forbid, "a kernel task names the torch ops it replaces"
        return
    assert task.hidden_checks(), "every task ships at least one hidden check"
    for check in task.hidden_checks():
        for rel in [check.stdin, *check.files]:
            if rel:
                assert rel.startswith("hidden/"), rel
                assert Path(rel).name not in task.prompt
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
def test_base_is_correct(task_id: str):
    assert_correct(TASKS[task_id], graded(task_id, "base"))


@pytest.mark.parametrize("task_id", RUNNABLE)
def test_expert_is_correct_and_matches_the_base(task_id: str):
    assert_correct(TASKS[task_id], graded(task_id, "expert"))


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
    task = TASKS[task_id]
    wrong = grade(task, Candidate(patch=make_patch(task, WRONG[task_id])), UNMEASURED)
    assert wrong.tests is not None and wrong.tests.passed, wrong.reason
    assert wrong.status == "failed_equivalence", wrong.reason
    assert "hidden" in wrong.reason
    assert all(c.passed for c in wrong.checks if not c.hidden)
    assert any(not c.passed for c in wrong.checks if c.hidden)


def test_compare_modes():
    num = Check(name="n", command="x", compare="numeric", rtol=1e-6, atol=1e-9)
    assert outputs_match("1.0 (2.5, nan)\n", "1.0000001 (2.5, nan)\n", num)
    assert not outputs_match("1.0 2.0", "1.0 2.1", num)
    assert not outputs_match("1.0 2.0", "1.0", num)
    lines = Check(name="l", command="x", compare="lines")
    assert outputs_match("a \nb\n", "a\nb", lines)
    assert not outputs_match("a\nb", "b\na", lines)
    exact = Check(name="e", command="x")
    assert not outputs_match("a\n", "a", exact)
