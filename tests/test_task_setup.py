"""A task's setup reaches every run: `setup.env` (timed runs and profiles included), check
input files at their own paths with the code under test importable, `{workdir}`, and the
package under test installed with one setting (`setup.package`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tasks.grade import Candidate, GradeOptions, grade
from tasks.model import TaskError, load_task
from tests.conftest import git

QUICK = dict(repeats=3, max_repeats=3, budget_s=20)


def write_task(root: Path, toml: str, files: dict[str, str]) -> Path:
    """A task folder: ``task.toml`` plus files (``repo/...`` becomes a git repo)."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (root / "task.toml").write_text(textwrap.dedent(toml))
    repo = root / "repo"
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return root


def diff(repo: Path, rel: str, old: str, new: str) -> str:
    """The patch that replaces ``old`` with ``new`` in ``rel`` (the repo is left as it was)."""
    path = repo / rel
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    try:
        return git(repo, "diff") + "\n"
    finally:
        git(repo, "checkout", "-q", rel)


ENV_TASK = """\
    id = "env-everywhere"
    kind = "repo"
    [source]
    path = "repo"
    [setup]
    env = { PYTHONPATH = ".", MYVAR = "yes", WHERE = "{workdir}" }
    [workload]
    file = "bench.py"
    [[checks]]
    name = "needs-the-variable"
    command = "python3 -c 'import lib; print(lib.work(10))'"
"""
ENV_FILES = {
    "repo/lib/__init__.py": """\
        import os

        def work(n):
            if os.environ.get("MYVAR") != "yes":
                raise RuntimeError("MYVAR is not set in this run")
            where = os.environ["WHERE"]
            if not (os.path.isabs(where) and os.path.samefile(where, os.getcwd())):
                raise RuntimeError(f"{{workdir}} was not the work dir: {where}")
            return sum(i * i for i in range(n))
    """,
    "repo/bench.py": """\
        import lib

        def setup():
            pass

        def workload():
            return lib.work(30000)
    """,
}


@pytest.mark.parametrize("backend", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_setup_env_reaches_timed_runs_profiles_and_checks(tmp_path, backend, request):
    """Each metric's timed runs, the hotspot profile and the checks see `setup.env`, with
    `{workdir}` the work dir's absolute path (the workload raises otherwise)."""
    if backend == "docker":
        request.getfixturevalue("docker_image")
    task = load_task(write_task(tmp_path / "t", ENV_TASK, ENV_FILES))
    opts = GradeOptions(backend=backend, metric="both", hotspots=True, **QUICK)
    result = grade(task, Candidate(agent="base"), opts)
    assert result.status == "ok", result.reason
    assert result.measurement is not None
    assert {m.metric for m in result.measurement.workloads[0].metrics} == {"wall", "instructions"}
    assert "work" in result.artifacts["hotspots"]
    assert [c.passed for c in result.checks] == [True]


CHECK_TASK = """\
    id = "check-inputs"
    kind = "repo"
    [source]
    path = "repo"
    [setup]
    env = {}
    [workload]
    file = "bench.py"
    [[workload.hidden]]
    name = "other"
    command = "python3 -c 'import mylib; print(mylib.count(open(\\"{data}\\").read()))'"
    files = ["hidden/b/data.txt"]
    [[checks]]
    name = "both-inputs"
    command = "python3 .optimizer/inputs/hidden/check.py"
    files = ["hidden/check.py", "hidden/a/data.txt", "hidden/b/data.txt"]
    hidden = true
""".replace("{data}", ".optimizer/inputs/hidden/b/data.txt")
CHECK_FILES = {
    "repo/mylib.py": """\
        def count(text):
            return sum(1 for ch in text if ch == "x")
    """,
    "repo/bench.py": """\
        import mylib

        def setup():
            pass

        def workload():
            return mylib.count("x" * 100000)
    """,
    # No sys.path fix: the work dir is on sys.path for checks. Same bare name, two folders.
    "hidden/check.py": """\
        import mylib

        for which in ("a", "b"):
            text = open(f".optimizer/inputs/hidden/{which}/data.txt").read()
            print(which, mylib.count(text))
    """,
    "hidden/a/data.txt": "xx yy\n",
    "hidden/b/data.txt": "xxxxx\n",
}


def test_check_inputs_keep_their_paths_and_import_the_code(tmp_path):
    """Two inputs with the same bare name both arrive, each at its own path, and a check
    script under .optimizer/inputs/ imports the code under test with no sys.path fix; the
    check then catches a candidate whose results differ."""
    root = write_task(tmp_path / "t", CHECK_TASK, CHECK_FILES)
    task = load_task(root)
    local = GradeOptions(backend="local", **QUICK)
    base = grade(task, Candidate(agent="base"), local)
    assert base.status == "ok", base.reason
    assert [c.name for c in base.checks] == ["both-inputs"] and base.checks[0].passed
    assert [w.name for w in base.measurement.workloads] == ["workload", "other"]
    # Counting "x" or "y" is the same on the workload's input, not on the check's a/data.txt.
    wrong = diff(root / "repo", "mylib.py", 'ch == "x"', 'ch in "xy"')
    result = grade(task, Candidate(patch=wrong), local.model_copy(update={"measure": False}))
    assert result.status == "failed_equivalence", result.reason
    assert "hidden check" in result.reason


def test_an_input_outside_the_task_directory_is_one_line(tmp_path):
    toml = CHECK_TASK.replace('"hidden/a/data.txt", ', '"../a/data.txt", ')
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "data.txt").write_text("x\n")
    task = load_task(write_task(tmp_path / "t", toml, CHECK_FILES))
    with pytest.raises(TaskError, match=r"input file \.\./a/data\.txt is outside the task dir"):
        grade(task, Candidate(agent="base"), GradeOptions(backend="local", measure=False))


PKG_TASK = """\
    id = "pkg"
    kind = "repo"
    [source]
    path = "repo"
    [setup]
    pip = ["pytest==8.3.3"]
    package = "editable"
    [workload]
    file = "bench.py"
    [tests]
    command = "python3 -m pytest -q -p no:cacheprovider --junitxml={junit}"
    protected = ["tests/"]
"""
PKG_FILES = {
    "repo/pyproject.toml": """\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "pkgx"
        version = "0.1"

        [project.entry-points."pkgx.plugins"]
        double = "pkgx:double"

        [tool.setuptools.packages.find]
        where = ["src"]
    """,
    "repo/src/pkgx/__init__.py": """\
        from importlib.metadata import entry_points

        def double(x):
            return 2 * x

        def plugins():
            return {e.name: e.load() for e in entry_points(group="pkgx.plugins")}

        def total(n):
            twice = plugins()["double"]
            return sum(twice(i) for i in range(n))
    """,
    "repo/tests/test_pkgx.py": """\
        import pkgx

        def test_total():
            assert pkgx.total(4) == 12

        def test_the_plugin_is_registered():
            assert "double" in pkgx.plugins()
    """,
    "repo/bench.py": """\
        import pkgx

        def setup():
            pass

        def workload():
            return pkgx.total(100000)
    """,
}


@pytest.mark.docker
def test_the_package_under_test_is_installed_with_one_setting(tmp_path, docker_image):
    """A src layout whose code finds itself through entry points: with `package =
    "editable"` its tests, checks and timed runs see the installed metadata and the patched
    code (editable: the work dir's own source); without it the tests cannot import it."""
    root = write_task(tmp_path / "t", PKG_TASK, PKG_FILES)
    task = load_task(root)
    opts = GradeOptions(backend="docker", metric="instructions", **QUICK)  # load-free
    faster = diff(
        root / "repo", "src/pkgx/__init__.py",
        "    return sum(twice(i) for i in range(n))", "    return n * (n - 1)",
    )  # fmt: skip
    result = grade(task, Candidate(patch=faster), opts)
    assert result.status == "ok", result.reason
    assert result.tests is not None and result.tests.passed and result.tests.total == 2
    assert result.measurement is not None and result.measurement.speedup > 1.5
    bare = load_task(write_task(tmp_path / "bare", PKG_TASK.replace('package = "editable"', ""),
                                PKG_FILES))  # fmt: skip
    result = grade(bare, Candidate(agent="base"), opts.model_copy(update={"measure": False}))
    assert result.status == "error" and "pkgx" in result.reason, result.reason


# The package's own build runs the candidate's code at install time, before the seal: a
# setup.py can leave code that Python runs at every start, before any timer (a .pth line, a
# sitecustomize), or rewrite the harness. Each form must be refused or undone.
WARM = """\
import pkgx
pkgx._CACHE[100000] = pkgx.total(100000)
"""
CACHED_TOTAL = (
    "def total(n):\n    if n in _CACHE:\n        return _CACHE[n]\n",
    "_CACHE = {}\n\n\n",
)
SETUP_PY = """\
import os, site
from setuptools import setup

here = site.getusersitepackages()
os.makedirs(here, exist_ok=True)
{write}
setup()
"""
STARTUP_CHEATS = {  # form: (what setup.py does, how the grade must end)
    "pth-line": (
        'open(os.path.join(here, "zz_warm.pth"), "w").write("import pkgx._warm\\n")',
        "rejected_guard",
    ),
    "sitecustomize": (
        'open(os.path.join(here, "sitecustomize" + ".py"), "w").write("import pkgx._warm\\n")',
        "rejected_guard",
    ),
    # The tests are restored from the base before the install; a build that rewrites them
    # afterwards (here: to accept a wrong total for small n) must find them restored again.
    "test-rewrite": (
        'open("tests/test_pkgx.py", "w").write("def test_total():\\n    pass\\n")',
        "failed_tests",
    ),
}


def cheat_patch(repo: Path, write: str) -> str:
    """Precompute the workload's answer at interpreter start, planted by setup.py."""
    init = repo / "src/pkgx/__init__.py"
    text = init.read_text()
    head = CACHED_TOTAL[0] + ("    if n < 10:\n        return 0\n" if "tests/" in write else "")
    init.write_text(
        text.replace("def total(n):\n", head).replace("def double", CACHED_TOTAL[1] + "def double")
    )
    (repo / "src/pkgx/_warm.py").write_text(WARM)
    (repo / "setup.py").write_text(SETUP_PY.format(write=write))
    try:
        git(repo, "add", "-A")
        return git(repo, "diff", "--cached") + "\n"
    finally:
        git(repo, "reset", "-q", "--hard")
        git(repo, "clean", "-qfd")


@pytest.mark.docker
@pytest.mark.parametrize("form", sorted(STARTUP_CHEATS))
def test_what_the_install_plants_is_refused_or_undone(tmp_path, docker_image, form):
    write, expected = STARTUP_CHEATS[form]
    root = write_task(tmp_path / "t", PKG_TASK, PKG_FILES)
    task = load_task(root)
    patch = cheat_patch(root / "repo", write)
    opts = GradeOptions(backend="docker", metric="instructions", **QUICK)
    result = grade(task, Candidate(patch=patch), opts)
    assert result.status == expected, (result.status, result.reason, result.speedup)
    assert not result.correct
    if expected == "rejected_guard":
        assert "startup" in result.reason


VALIDATE_TASK = """\
    id = "sum-squares"
    kind = "repo"
    [source]
    path = "repo"
    [setup]
    env = { PYTHONPATH = "." }
    [workload]
    file = "bench.py"
    metric = "instructions"
    [[checks]]
    name = "small"
    command = "python3 -c 'import sq; print([sq.total(n) for n in range(20)])'"
    [expert]
    patch = "expert.patch"
    speedup = 40.0
"""
VALIDATE_FILES = {
    "repo/sq.py": """\
        def total(n):
            out = 0
            for i in range(n):
                out += i * i
            return out
    """,
    "repo/bench.py": """\
        import sq

        def setup():
            pass

        def workload():
            return sq.total(60000)
    """,
}


def test_validate_writes_json_and_a_whole_table_when_piped(tmp_path):
    """`tasks validate --json` records per task the tests, the speedup with its CI, the
    declared speedup and whether the CI holds it, the verdict and the time; piped (no
    terminal), the table keeps each row on one line instead of folding at 80 columns."""
    root = write_task(tmp_path / "t", VALIDATE_TASK, VALIDATE_FILES)
    expert = diff(
        root / "repo", "sq.py",
        "    out = 0\n    for i in range(n):\n        out += i * i\n    return out",
        "    return (n - 1) * n * (2 * n - 1) // 6",
    )  # fmt: skip
    (root / "expert.patch").write_text(expert)
    out = tmp_path / "v.json"
    done = subprocess.run(
        [sys.executable, "-m", "optimizer", "tasks", "validate", str(root), "--sandbox",
         "local", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
        env={k: v for k, v in os.environ.items() if k != "COLUMNS"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if "sum-squares" in line)
    assert "faster" in row and "40x cold, outside CI" in row and " s " in row and "ok" in row, row
    report = json.loads(out.read_text())
    assert report["version"] == 1 and report["backend"] == "local" and report["elapsed_s"] > 0
    (v,) = report["tasks"]
    assert v["status"] == "ok" and v["declared_speedup"] == 40.0 and v["consistent"] is False
    m = v["expert"]["measurement"]
    assert m["verdict"] == "faster" and m["metric"] == "instructions"
    assert m["ci"][0] <= m["speedup"] <= m["ci"][1] and m["speedup"] > 2
    assert v["elapsed_s"] > 0 and v["base"]["status"] == "ok"
    assert not list(tmp_path.glob(".v.json.*"))  # written atomically


#: A pytest plugin written so that the static guard does not see it: no `import pytest`, no
#: `def pytest_...`; pluggy finds the hook by its name and its marker attribute.
PLUGIN_CHEAT = """def _wrap(item, call):
    outcome = yield
    outcome.get_result().outcome = "passed"


_wrap.__dict__["py" + "test_impl"] = dict(
    wrapper=False, hookwrapper=True, optionalhook=False, tryfirst=False, trylast=False,
    specname=None,
)
globals()["py" + "test_runtest_makereport"] = _wrap
"""


@pytest.mark.docker
def test_a_pytest_plugin_declared_in_the_packages_entry_points_is_refused(tmp_path, docker_image):
    """With the package installed, its entry points are pytest's too: a `pytest11` entry
    point the candidate adds to pyproject.toml is a plugin pytest loads before any test, free
    to turn every failure into a pass. Entry points that differ from the base's are refused."""
    root = write_task(tmp_path / "t", PKG_TASK, PKG_FILES)
    task = load_task(root)
    repo = root / "repo"
    init = repo / "src/pkgx/__init__.py"
    init.write_text(init.read_text().replace("return sum(twice(i)", "return 1 + sum(twice(i)"))
    (repo / "src/pkgx/_plug.py").write_text(PLUGIN_CHEAT)
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text() + '\n[project.entry-points.pytest11]\nquiet = "pkgx._plug"\n'
    )
    git(repo, "add", "-A")
    patch = git(repo, "diff", "--cached") + "\n"
    git(repo, "reset", "-q", "--hard")
    git(repo, "clean", "-qfd")
    opts = GradeOptions(backend="docker", measure=False)
    result = grade(task, Candidate(patch=patch), opts)
    assert not result.guard, "the guard sees this form now: write one it does not see"
    assert result.status == "rejected_guard", (result.status, result.reason)
    assert "entry points" in result.reason and not result.correct
