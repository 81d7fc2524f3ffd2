"""The evaluator contract on the built-in tasks: what gets rejected, and why."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tasks.grade import Candidate, GradeOptions, grade
from tasks.suite import find_task, load_suite
from tasks.testrun import parse_junit
from tests.test_builtin_suite import make_patch

LOCAL = GradeOptions(backend="local", measure=False)
TASK = find_task(load_suite("builtin"), "pair-sum-count")
SLOW_LOOP = "            if first + values[j] == k:\n                count += 1"


def edit(old: str, new: str, path: str = "main.py") -> str:
    return make_patch(TASK, {path: (old, new)})


def test_a_patch_that_edits_a_test_file_is_rejected():
    skip_all = (
        "import subprocess\n",
        "import subprocess\nimport pytest\npytest.skip(allow_module_level=True)\n",
    )
    patch = make_patch(TASK, {"tests/test_cases.py": skip_all})
    result = grade(TASK, Candidate(patch=patch), LOCAL)
    assert result.status == "rejected_protected" and not result.correct
    assert "tests/test_cases.py" in result.protected


def test_special_casing_the_visible_input_fails_the_hidden_input():
    cases = sorted((TASK.root / "repo" / "tests" / "cases").glob("*.in"))
    answers = {
        c.read_text().split("\n", 1)[0]: (c.with_suffix(".out")).read_text().strip() for c in cases
    }  # "n k" header of each visible case -> its answer
    lookup = json.dumps(answers)
    patch = edit(
        "    values = [int(x) for x in data[2 : 2 + n]]\n",
        "    values = [int(x) for x in data[2 : 2 + n]]\n"
        f"    known = {lookup}\n"
        "    head = ' '.join(data[:2])\n"
        "    if head in known:\n"
        "        print(known[head])\n"
        "        return\n"
        "    present = set(values)\n"
        "    print(sum(1 for v in present if k - v in present and v < k - v))\n"
        "    return\n",
    )
    result = grade(TASK, Candidate(patch=patch), LOCAL)
    assert result.tests is not None and result.tests.passed  # fools the visible tests
    assert result.status == "failed_equivalence", result.reason
    assert "hidden" in result.reason and not result.correct


def test_a_patch_that_does_not_apply_fails_loudly():
    patch = "--- a/main.py\n+++ b/main.py\n@@ -1 +1 @@\n-no such line\n+x\n"
    result = grade(TASK, Candidate(patch=patch), LOCAL)
    assert result.status == "failed_apply" and not result.applied
    assert "does not apply" in result.reason


@pytest.mark.parametrize(
    "added",
    [
        "    import sys; caller = sys._getframe(1)\n",
        "    import time; time.perf_counter = lambda: 0.0\n",
        "    import os; open(os.path.join('.optimizer', 'junit.xml'), 'w')  # guard: allow\n",
    ],
    ids=["stack-introspection", "time-patching", "harness-file"],
)
def test_the_static_guard_refuses_added_lines(added):
    result = grade(TASK, Candidate(patch=edit("    count = 0\n", "    count = 0\n" + added)), LOCAL)
    assert result.status == "rejected_guard", result.reason
    assert result.guard


def test_failing_tests_are_read_from_junit_not_stdout():
    patch = edit(SLOW_LOOP, SLOW_LOOP.replace("count += 1", "count += 2"))
    result = grade(TASK, Candidate(patch=patch), LOCAL)
    assert result.status == "failed_tests"
    assert result.tests is not None and result.tests.failures > 0
    fake = "def main():\n    print('5 passed, 0 failed')\n    print('PASSED')\n"
    printer = edit("def main():\n", fake)
    fooled = grade(TASK, Candidate(patch=printer), LOCAL)
    assert fooled.status == "failed_tests", fooled.reason


def test_expert_is_graded_ok_with_a_measurement():
    patch = TASK.file(TASK.expert.patch).read_text()
    opts = GradeOptions(backend="local", repeats=3, max_repeats=3, budget_s=1)
    result = grade(TASK, Candidate(patch=patch), opts)
    assert result.status == "ok" and result.correct
    m = result.measurement
    assert m is not None and m.pairs == 3 and len(m.base_samples) == 3
    assert m.ci[0] <= m.speedup <= m.ci[1]


def test_parse_junit_counts_cases():
    xml = b"""<testsuites><testsuite tests="3">
      <testcase classname="t" name="a"/>
      <testcase classname="t" name="b"><failure message="x"/></testcase>
      <testcase classname="t" name="c"><skipped/></testcase>
    </testsuite></testsuites>"""
    junit = parse_junit(xml)
    assert junit is not None
    assert junit.outcomes == {"t::a": "passed", "t::b": "failed", "t::c": "skipped"}
    assert parse_junit(b"not xml") is None


def test_tasks_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "task.toml"
    bad.write_text('id = "x"\nkind = "program"\n')
    done = subprocess.run(
        [sys.executable, "-m", "optimizer", "tasks", "list", str(bad)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "field 'source'" in lines[0] and "Traceback" not in done.stderr


def test_live_results_keep_the_worst_outcome_and_overrule_a_rewritten_junit():
    from tasks import results_plugin, testrun

    assert testrun.MARK == results_plugin.MARK
    stderr = (
        "noise\n@@optimizer-test setup passed t.py::a\n@@optimizer-test call failed t.py::a\n"
        "@@optimizer-test call passed t.py::a\n"  # a forged pass after the real failure
        "@@optimizer-test call passed t.py::b\n@@optimizer-test call skipped t.py::c\n"
    )
    live = testrun.live_results(stderr)
    assert live == {"t.py::a": "failed", "t.py::b": "passed", "t.py::c": "skipped"}
    junit = parse_junit(
        b'<testsuite><testcase classname="t" name="a"/><testcase classname="t" name="b"/>'
        b"</testsuite>"
    )  # rewritten at exit: every test "passed"
    judged = testrun.judge(junit, 0, ["t::a", "t::b"], [], live, live_contract=2)
    assert not judged.passed
    assert "t.py::a (failed, reported live)" in judged.broken
    silent = testrun.judge(junit, 0, ["t::a", "t::b"], [], {}, live_contract=2)
    assert not silent.passed and "results were hidden or rewritten" in silent.broken[-1]
