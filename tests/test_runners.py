"""Test runners as a project's own CI runs them, graded through the real ``grade()`` path.

Small real repos in temp dirs, real sandboxes (the local backend; one Docker test): a
unittest project graded natively (our own runner, ``tasks/unittest_runner.py``), a pytest
command without ``--junitxml``, known failures at the base excused by id (and the cheats
that try to hide behind them), and the reason and the stderr tail of every failure.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tasks import testrun
from tasks.grade import Candidate, Grade, GradeOptions, grade
from tasks.model import Task, TaskError, load_task
from tests.test_exploits import FINALIZER, _toml

LOCAL = GradeOptions(backend="local", measure=False)

CALC = """def add(a, b):
    return a + b


def mul(a, b):
    return a * b
"""

TEST_CALC = """import unittest

import calc


class TestCalc(unittest.TestCase):
    def test_add(self):
        self.assertEqual(calc.add(2, 3), 5)

    def test_mul(self):
        self.assertEqual(calc.mul(2, 3), 6)

    def test_mul_zero(self):
        self.assertEqual(calc.mul(7, 0), 0)

    def test_sub(self):
        for a, b in [(1, 1), (5, 2)]:
            with self.subTest(a=a, b=b):
                self.assertEqual(calc.add(a, -b), a - b)
"""

#: A test that fails at the base whatever the code does (as one needing the network would).
TEST_NET = """import unittest


class TestNet(unittest.TestCase):
    def test_fetch(self):
        raise OSError("network is unreachable")
"""

UNITTEST = "python3 -m unittest discover -s tests -t ."
PYTEST = "python3 -m pytest -q -p no:cacheprovider tests"
IDS = [f"tests.test_calc.TestCalc::{n}" for n in ("test_add", "test_mul", "test_mul_zero")]
NET = "tests.test_net.TestNet::test_fetch"


def make_task(
    make_repo: Callable[..., Path], files: dict[str, str], tests: dict, tests_s: float = 60
) -> Task:
    """A repo task (task.toml beside its source repo) whose tests are ``tests``."""
    repo = make_repo(files)
    root = repo.parent
    lines = [
        'id = "calc"',
        'kind = "repo"',
        "[source]",
        'path = "repo"',
        "[workload]",
        'command = "python3 -c pass"',
        "[tests]",
        *(f"{k} = {_toml(v)}" for k, v in tests.items()),
        "[limits]",
        f"tests_s = {tests_s}",
    ]
    (root / "task.toml").write_text("\n".join(lines) + "\n")
    return load_task(root)


def calc_project(**extra: str) -> dict[str, str]:
    base = {"calc/__init__.py": CALC, "tests/__init__.py": "", "tests/test_calc.py": TEST_CALC}
    return base | extra


def patch_calc(new: str, path: str = "calc/__init__.py", old: str = CALC) -> str:
    """The diff that replaces all of ``path`` (``old``) by ``new``."""
    import difflib

    diff = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
    )
    return f"diff --git a/{path} b/{path}\n" + "".join(diff)


def run(task: Task, patch: str = "", opts: GradeOptions = LOCAL) -> Grade:
    return grade(task, Candidate(patch=patch, agent="test"), opts)


def assert_failed(result: Grade, *named: str) -> None:
    assert result.status == "failed_tests", f"{result.status}: {result.reason}"
    assert not result.correct and result.artifacts.get("tests") is not None
    for word in named:
        assert word in result.reason, result.reason


FASTER = CALC.replace("    return a * b\n", "    return b * a if a > b else a * b\n")
BROKEN_MUL = CALC.replace("    return a * b\n", "    return a * b + 1\n")

#: Library code that rewrites the results at exit (test_exploits' finalizer cheat, with the
#: exit code it forces taken from ``EXIT``: None keeps the run's own).
FORGE_AT_EXIT = FINALIZER.replace(
    '        getattr(_os, "_ex" + "it")(0)\n',
    '    if EXIT is not None:\n        getattr(_os, "_ex" + "it")(EXIT)\n',
)
assert FORGE_AT_EXIT != FINALIZER

#: Library code that, when the test it breaks runs, writes a results file where every test
#: passed and ends the run with exit code 0: later tests never run.
FORGE_EARLY = """

def _forge():
    import os

    cases = "".join(
        f'<testcase classname="tests.test_calc.TestCalc" name="{n}" />'
        for n in ("test_add", "test_mul", "test_mul_zero", "test_sub")
    )
    with open(os.path.join("." + "optimizer", "jun" + "it.xml"), "w") as f:
        f.write(f"<testsuites><testsuite>{cases}</testsuite></testsuites>")
    getattr(os, "_ex" + "it")(0)


def mul(a, b):
    if (a, b) == (2, 3):
        _forge()
    return a * b
"""


# -- unittest, natively ------------------------------------------------------------------------
def test_a_unittest_project_is_graded_natively(make_repo):
    task = make_task(make_repo, calc_project(), {"command": UNITTEST, "runner": "unittest"})
    result = run(task, patch_calc(FASTER))
    assert result.status == "ok" and result.correct, result.reason
    tests = result.tests
    assert tests is not None and tests.passed and tests.total == 4 and tests.contract == 4
    assert result.base_tests is not None and result.base_tests.excused == []

    broken = run(task, patch_calc(BROKEN_MUL))
    assert_failed(broken, "tests.test_calc.TestCalc::test_mul (failed)")
    assert "AssertionError: 7 != 6" in broken.artifacts["tests"]


def test_unittest_ids_are_the_ones_must_pass_names(make_repo):
    forms = ["tests.test_calc.TestCalc.test_mul", "tests/test_calc.py::TestCalc::test_add"]
    task = make_task(
        make_repo,
        calc_project(),
        {"command": UNITTEST, "runner": "unittest", "must_pass": forms},
    )
    outcomes = dict.fromkeys([*IDS, "tests.test_calc.TestCalc::test_sub"], "passed")
    assert testrun._resolve(forms, outcomes) == [IDS[1], IDS[0]]
    assert testrun.command_for(task.tests) == (  # type: ignore[arg-type]
        "python3 -m optimizer_unittest discover -s tests -t ."
    )
    result = run(task, patch_calc(BROKEN_MUL))
    assert_failed(result, IDS[1])
    assert result.tests is not None
    assert [b for b in result.tests.broken if b.startswith(IDS[1] + " ")] == [
        f"{IDS[1]} (failed)",  # once, though must_pass names it too
        f"{IDS[1]} (failed, reported live)",
    ]


def test_a_failed_subtest_fails_its_test(make_repo):
    task = make_task(make_repo, calc_project(), {"command": UNITTEST, "runner": "unittest"})
    wrong_add = CALC.replace("return a + b", "return a + b if b >= 0 else a + b + 1")
    assert_failed(run(task, patch_calc(wrong_add)), "tests.test_calc.TestCalc::test_sub")


@pytest.mark.parametrize("exit_code", [0, None], ids=["forced-exit-0", "own-exit"])
def test_unittest_results_rewritten_at_exit_are_caught_live(make_repo, exit_code):
    task = make_task(make_repo, calc_project(), {"command": UNITTEST, "runner": "unittest"})
    cheat = BROKEN_MUL + FORGE_AT_EXIT.replace("EXIT", "_EXIT") + f"\n_EXIT = {exit_code}\n"
    result = run(task, patch_calc(cheat))
    assert_failed(result, "reported live")


def test_unittest_results_forged_before_an_early_exit_0_are_caught_live(make_repo):
    task = make_task(make_repo, calc_project(), {"command": UNITTEST, "runner": "unittest"})
    cheat = CALC.replace("def mul(a, b):\n    return a * b\n", "") + FORGE_EARLY
    result = run(task, patch_calc(cheat))
    assert_failed(result, "results were hidden or rewritten")
    assert result.tests is not None and result.tests.exit_code == 0


def test_a_module_shadowing_the_grader_runner_is_rejected(make_repo):
    task = make_task(make_repo, calc_project(), {"command": UNITTEST, "runner": "unittest"})
    fake = "import unittest\nunittest.main(module=None)\n"
    patch = (
        "diff --git a/optimizer_unittest.py b/optimizer_unittest.py\nnew file mode 100644\n"
        "--- /dev/null\n+++ b/optimizer_unittest.py\n@@ -0,0 +1,2 @@\n"
        + "".join(f"+{ln}\n" for ln in fake.splitlines())
    )
    result = run(task, patch)
    assert result.status == "rejected_protected", result.reason
    assert "optimizer_unittest" in result.reason


def test_a_runner_that_does_not_match_its_command_is_a_task_error(make_repo):
    with pytest.raises(TaskError, match="runner = unittest needs a `python -m unittest"):
        make_task(make_repo, calc_project(), {"command": PYTEST, "runner": "unittest"})


# -- pytest, natively --------------------------------------------------------------------------
def test_a_pytest_command_without_junitxml_gets_it(make_repo):
    task = make_task(make_repo, calc_project(), {"command": PYTEST, "runner": "pytest"})
    assert task.tests is not None
    assert testrun.command_for(task.tests) == PYTEST + " --junitxml=.optimizer/junit.xml"
    result = run(task, patch_calc(FASTER))
    assert result.status == "ok", f"{result.reason}\n{result.artifacts}"
    assert result.tests is not None and result.tests.total == 4 == result.tests.contract
    broken = run(task, patch_calc(BROKEN_MUL))
    assert_failed(broken, "tests.test_calc.TestCalc::test_mul")
    assert "assert" in broken.artifacts["tests"].lower()  # pytest's report is on stdout


def test_a_runner_that_writes_junit_itself_finds_the_optimizer_folder(make_repo):
    # a JUnit command that opens .optimizer/junit.xml without creating the folder first
    writer = (
        "cases = ''.join(f'<testcase classname=\"t\" name=\"{n}\"/>' for n in 'abc')\n"
        "open('.optimizer/junit.xml', 'w').write(f'<testsuite>{cases}</testsuite>')\n"
    )
    task = make_task(
        make_repo,
        {"calc/__init__.py": CALC, "ci/write_junit.py": writer},
        {"command": "python3 ci/write_junit.py", "protected": ["ci/"]},
    )
    result = run(task)
    assert result.status == "ok", f"{result.reason}\n{result.artifacts}"
    assert result.tests is not None and result.tests.total == 3


# -- known failures at the base ----------------------------------------------------------------
@pytest.fixture(params=["unittest", "pytest"])
def known_failure_task(request, make_repo) -> Task:
    command = UNITTEST if request.param == "unittest" else PYTEST
    files = calc_project(**{"tests/test_net.py": TEST_NET})
    return make_task(make_repo, files, {"command": command, "runner": request.param})


def test_a_known_failure_at_the_base_is_excused_by_id(known_failure_task):
    result = run(known_failure_task, patch_calc(FASTER))
    assert result.status == "ok", f"{result.reason}\n{result.artifacts.get('tests')}"
    tests, base = result.tests, result.base_tests
    assert tests is not None and base is not None
    assert tests.excused == [NET] == base.excused and base.passed
    assert tests.exit_code == base.exit_code == tests.base_exit_code != 0
    assert tests.contract == 4


def test_breaking_another_test_is_not_excused(known_failure_task):
    result = run(known_failure_task, patch_calc(BROKEN_MUL))
    assert_failed(result, IDS[1])


def test_a_new_failure_hidden_behind_an_excused_one_is_caught(known_failure_task):
    # the base exits nonzero anyway (the known failure): rewriting the new failure out of the
    # XML at exit, and keeping the exit code, is what a cheat needs; the live stream says no
    cheat = BROKEN_MUL + FORGE_AT_EXIT.replace("EXIT", "_EXIT") + "\n_EXIT = None\n"
    result = run(known_failure_task, patch_calc(cheat))
    assert_failed(result, "reported live")


@pytest.mark.parametrize(
    "crash",
    ["raise KeyboardInterrupt", 'getattr(_os, "_ex" + "it")(1)'],
    ids=["interrupt", "hard-exit"],
)
def test_a_runner_crashed_early_is_not_excused(known_failure_task, crash):
    cheat = "import os as _os\n\n\n" + CALC.replace(
        "    return a * b\n", f"    if (a, b) == (2, 3):\n        {crash}\n    return a * b\n"
    )
    result = run(known_failure_task, patch_calc(cheat))
    assert_failed(result)
    assert result.tests is not None and not result.tests.passed


def test_a_nonzero_exit_without_the_known_failure_is_not_excused():
    junit = testrun.parse_junit(
        b'<testsuite><testcase classname="m.C" name="a"/><testcase classname="m.C" name="b"/>'
        b"</testsuite>"
    )
    ok = testrun.judge(junit, 1, ["m.C::a"], [], known_failures=["m.C::b"], base_exit=1)
    assert not ok.passed and testrun.reason(ok) == "the test command exited 1"
    other = testrun.parse_junit(
        b'<testsuite><testcase classname="m.C" name="a"/><testcase classname="m.C" name="b">'
        b"<error/></testcase></testsuite>"
    )
    excused = testrun.judge(other, 1, ["m.C::a"], [], known_failures=["m.C::b"], base_exit=1)
    assert excused.passed and excused.excused == ["m.C::b"]
    changed = testrun.judge(other, 2, ["m.C::a"], [], known_failures=["m.C::b"], base_exit=1)
    assert not changed.passed and "the base's exited 1" in testrun.reason(changed)


# -- say why -----------------------------------------------------------------------------------
def test_a_missing_dependency_is_named_as_such(make_repo):
    task = make_task(make_repo, calc_project(), {"command": UNITTEST, "runner": "unittest"})
    result = run(task, patch_calc("import fastcalc_accel\n\n" + CALC))
    assert_failed(result, "could not import module 'fastcalc_accel': a missing dependency?")
    assert "No module named 'fastcalc_accel'" in result.artifacts["tests"]


@pytest.mark.parametrize("runner", ["unittest", "pytest"])
def test_a_missing_dependency_at_the_base_is_named_with_the_fix(make_repo, runner):
    files = calc_project(**{"tests/test_calc.py": "import numbax_missing\n" + TEST_CALC})
    command = UNITTEST if runner == "unittest" else PYTEST
    result = run(make_task(make_repo, files, {"command": command, "runner": runner}))
    assert result.status == "error", result.reason
    assert "the base's tests passed none" in result.reason
    assert "module 'numbax_missing': a missing dependency? add it to setup.pip" in result.reason
    assert "No module named 'numbax_missing'" in result.artifacts["tests"]


def test_base_tests_that_write_no_results_carry_the_stderr_tail(make_repo):
    command = "python3 -c \"import sys; sys.stderr.write('boom: no runner here\\n'); sys.exit(3)\""
    task = make_task(make_repo, calc_project(), {"command": command})
    result = run(task)
    assert result.status == "error"
    assert "the base's tests wrote no JUnit XML (exit 3)" in result.reason
    assert "boom: no runner here" in result.reason
    assert "boom: no runner here" in result.artifacts["tests"]


def test_a_timeout_carries_the_tail(make_repo):
    slow = CALC.replace(
        "    return a * b\n",
        "    if (a, b) == (2, 3):\n        import sys, time\n"
        "        print('waiting for the network', file=sys.stderr, flush=True)\n"
        "        time.sleep(60)\n    return a * b\n",
    )
    tests = {"command": UNITTEST, "runner": "unittest"}
    result = run(make_task(make_repo, calc_project(), tests, tests_s=4), patch_calc(slow))
    assert result.status == "timeout", result.reason
    assert "waiting for the network" in result.artifacts["tests"]


# -- docker ------------------------------------------------------------------------------------
@pytest.mark.docker
def test_a_unittest_project_with_a_known_failure_in_docker(make_repo, docker_image):
    if shutil.which("docker") is None:
        pytest.skip("no docker client")
    files = calc_project(**{"tests/test_net.py": TEST_NET})
    task = make_task(make_repo, files, {"command": UNITTEST, "runner": "unittest"})
    opts = GradeOptions(backend="docker", measure=False, image=docker_image)
    result = run(task, patch_calc(FASTER), opts)
    assert result.status == "ok", f"{result.reason}\n{result.artifacts.get('tests')}"
    assert result.tests is not None and result.tests.excused == [NET]
    assert_failed(run(task, patch_calc(BROKEN_MUL), opts), IDS[1])


DOCTESTS = '''def add(a, b):
    """
    >>> add(2, 3)
    5
    """
    return a + b


def mul(a, b):
    """
    >>> mul(2, 3)
    6
    """
    return a * b
'''
LOAD_DOCTESTS = """import doctest

import calc


def load_tests(loader, tests, ignore):
    tests.addTests(doctest.DocTestSuite(calc))
    return tests
"""


def test_unittest_doctests_each_keep_their_own_id(make_repo):
    """Doctests added through load_tests (as more-itertools does) are DocTestCase objects
    whose class and method are the same for all; each keeps its own id (its dotted name),
    so each is in the contract and a broken one is named."""
    files = calc_project(**{"calc/__init__.py": DOCTESTS, "tests/test_docs.py": LOAD_DOCTESTS})
    task = make_task(make_repo, files, {"command": UNITTEST, "runner": "unittest"})
    base = run(task)
    assert base.status == "ok", base.reason
    assert base.tests is not None and base.tests.total == 6 and base.tests.contract == 6
    broken = DOCTESTS.replace("    return a * b\n", "    return a * b + 1\n")
    result = run(task, patch_calc(broken, old=DOCTESTS))
    assert_failed(result, "calc::mul")
