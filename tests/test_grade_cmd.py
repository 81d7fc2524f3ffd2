"""`optimizer grade`: the grading contract from the command line, as a person runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tasks.suite import find_task, load_suite
from tests.test_builtin_suite import make_patch

TASK = find_task(load_suite("builtin"), "pair-sum-count")
EXPERT = TASK.root / "expert.patch"


def optimizer(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optimizer", *args],
        capture_output=True, text=True, input=stdin, timeout=600,
    )  # fmt: skip


def test_a_correct_patch_exits_0_and_writes_the_whole_grade(tmp_path: Path):
    out = tmp_path / "grade.json"
    done = optimizer(
        "grade", "builtin/pair-sum-count", "--patch", str(EXPERT), "--sandbox", "local",
        "--repeats", "3", "--budget", "5", "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for step in ("applied", "installed and sealed", "tests:", "checks:", "speedup:", "ok"):
        assert step in done.stdout, step
    grade = json.loads(out.read_text())
    assert grade["status"] == "ok" and grade["correct"] is True
    m = grade["measurement"]
    assert m["region"] == "total" and "import" in m["rule"]
    assert [w["name"] for w in m["workloads"]] == ["workload", "other-values"]
    assert grade["tests"]["contract"] == grade["base_tests"]["total"] > 0


def test_a_rejected_patch_exits_1_naming_the_cause(tmp_path: Path):
    patch = make_patch(TASK, {"tests/test_cases.py": ("import subprocess\n", "import os\n")})
    done = optimizer("grade", "builtin/pair-sum-count", "--patch", "-", "--sandbox", "local",
                     "--no-measure", stdin=patch)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "rejected_protected" in done.stdout and "tests/test_cases.py" in done.stdout


def test_no_patch_grades_the_base_itself(tmp_path: Path):
    done = optimizer("grade", "builtin/pair-sum-count", "--sandbox", "local", "--no-measure")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no-op candidate" in done.stdout


def test_user_errors_are_one_line_with_exit_2(tmp_path: Path):
    cases = [
        (["grade", "builtin/no-such-task"], "no task 'no-such-task'"),
        (["grade", "nosuite"], "no such file or directory"),
        (["grade", "builtin"], "names no single task"),
        (["grade", "builtin/spans", "--patch", str(tmp_path / "missing.diff")], "cannot read"),
        (["grade", "builtin/spans", "--json", str(tmp_path / "no" / "g.json")], "does not exist"),
    ]
    for args, words in cases:
        done = optimizer(*args)
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert len(lines) == 1 and words in lines[0] and "Fix:" in lines[0], lines
        assert "Traceback" not in done.stderr
