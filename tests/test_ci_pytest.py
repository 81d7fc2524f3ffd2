"""Tests for optimizer/ci_pytest.py and its sandbox side, ci_pytest_runner.py: a real project
on disk, real git, the local sandbox, the real harness (wall, callgrind, cProfile) and the real
pytest, with pytest-benchmark installed (the runner must keep it out of the way)."""

from __future__ import annotations

import statistics
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from optimizer.ci_pytest import (
    RUNNER_PATH,
    candidate_files,
    collect,
    conftest_files,
    runner_file,
)
from optimizer.errors import UserError
from profilers import ProfileError, Workload, install, measure_wall, profile_hotspots
from profilers.common import run_harness
from sandbox import Limits, Sandbox, Source, open_sandbox
from tests.conftest import git

BENCH = "tests/test_bench.py"
SIZES = [f"{BENCH}::test_sizes[10]", f"{BENCH}::test_sizes[1000]"]
#: A conftest fixture, setup_method, pedantic with a setup.
CONTEXT = [f"{BENCH}::test_fixture", f"{BENCH}::TestX::test_method", f"{BENCH}::test_pedantic"]
#: In pytest's order: the files as given (sorted), each in definition order.
EXPECTED = [
    "tests/a/test_dup.py::test_dup",
    "tests/b/test_dup.py::test_dup",
    *SIZES,
    *CONTEXT,
    f"{BENCH}::test_wrong",
]
WRONG = f"{BENCH}::test_wrong"
SKIPPED = f"{BENCH}::test_skipped"

TEST_BENCH = """
import pytest


def work(n):
    return sum(i * i for i in range(n))


@pytest.mark.parametrize("n", [10, 1000])
def test_sizes(benchmark, n):
    assert benchmark(work, n) == sum(i * i for i in range(n))


def test_fixture(benchmark, numbers):
    assert benchmark(sorted, numbers)[:2] == [1, 2]


class TestX:
    def setup_method(self):
        self.data = list(range(100))

    def test_method(self, benchmark):
        assert benchmark(sum, self.data) == 4950


def test_pedantic(benchmark):
    def setup():  # a fresh list before every measured call, as pytest-benchmark does
        return ([3, 1, 2],), {"reverse": True}

    def consume(xs, reverse):
        assert xs == [3, 1, 2], "a call saw the list an earlier call sorted"
        xs.sort(reverse=reverse)
        return xs

    assert benchmark.pedantic(consume, setup=setup, rounds=5) == [3, 2, 1]


def test_wrong(benchmark):
    assert benchmark(work, 10) == -1


@pytest.mark.skip(reason="not today")
def test_skipped(benchmark):
    benchmark(work, 10)


def test_plain():
    pass
"""

DUP = """
def test_dup(benchmark, letter):
    assert benchmark(str.upper, letter) == letter.upper()
"""

PROJECT = {
    # the runner must clear addopts (the real plugin is blocked, so --benchmark-skip would
    # be an unknown option) yet keep --import-mode: the two test_dup.py need importlib mode
    "pyproject.toml": """
        [tool.pytest.ini_options]
        addopts = "--benchmark-skip --import-mode=importlib"
        """,
    "conftest.py": """
        import pytest

        @pytest.fixture
        def numbers():
            return list(range(2000, 0, -1))
        """,
    BENCH: TEST_BENCH,
    "tests/a/conftest.py": """
        import pytest

        @pytest.fixture
        def letter():
            return "a"
        """,
    "tests/a/test_dup.py": DUP,
    "tests/b/test_dup.py": DUP.replace("letter", "word"),
    "tests/b/conftest.py": "import pytest\n\n\n@pytest.fixture\ndef word():\n    return 'b'\n",
    "tests/test_broken.py": "def test_broken(benchmark:\n    pass\n",
    "tests/test_other.py": "def test_other():\n    pass\n",
    ".hidden/test_hidden.py": "def test_hidden(benchmark):\n    pass\n",
    "venv/test_env.py": "def test_env(benchmark):\n    pass\n",
}


def make_repo(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project")
    return root


def prepared(repo: Path) -> Sandbox:
    """A sealed local sandbox of ``repo`` with the harness and the runner written into it."""
    sb = open_sandbox(Source(repo=repo, rev="HEAD"), "local", limits=Limits(wall_s=300))
    install(sb, Workload(kind="command", target="true"))
    sb.write_file(RUNNER_PATH, runner_file())
    sb.seal()
    return sb


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("ci-pytest") / "repo", PROJECT)


@pytest.fixture(scope="module")
def sb(project: Path) -> Iterator[Sandbox]:
    with prepared(project) as sandbox:
        yield sandbox


def case(nodeid: str) -> Workload:
    return Workload(kind="file", target=RUNNER_PATH, name=nodeid)


def test_candidates_are_test_files_that_mention_benchmark(project: Path) -> None:
    files = candidate_files(project)
    assert files == [
        "tests/a/test_dup.py",
        "tests/b/test_dup.py",
        "tests/test_bench.py",
        "tests/test_broken.py",
    ]
    assert conftest_files(project, files) == [
        "conftest.py",
        "tests/a/conftest.py",
        "tests/b/conftest.py",
    ]
    assert conftest_files(project, [BENCH]) == ["conftest.py"]


def test_collect_finds_each_parametrized_case_and_says_what_it_skipped(
    sb: Sandbox, project: Path
) -> None:
    benchmarks, skipped = collect(sb, candidate_files(project))
    assert [b.name for b in benchmarks] == EXPECTED
    assert skipped == [
        "tests/test_broken.py: cannot be collected (SyntaxError: '(' was never closed)",
        f"{SKIPPED}: skipped (not today)",
    ]
    by_name = {b.name: b for b in benchmarks}
    assert by_name[SIZES[1]].model_dump(exclude_none=True) == {
        "name": SIZES[1],
        "origin": "pytest-benchmark",
        "kind": "file",
        "path": RUNNER_PATH,
        "files": [BENCH, "conftest.py"],
    }
    dup = by_name["tests/a/test_dup.py::test_dup"]
    assert dup.files == ["tests/a/test_dup.py", "conftest.py", "tests/a/conftest.py"]
    assert collect(sb, []) == ([], [])


def test_wall_times_one_case_inside_its_pytest_run(sb: Sandbox) -> None:
    runs = {n: measure_wall(sb, case(n), inner=3, warmup=1) for n in SIZES}
    assert all(len(r.samples_ns) == 3 for r in runs.values())
    small, large = (statistics.median(runs[n].samples_ns) for n in SIZES)
    assert large > small
    assert runs[SIZES[0]].output != runs[SIZES[1]].output  # each returned its own sum
    for nodeid in CONTEXT:
        assert len(measure_wall(sb, case(nodeid), inner=2).samples_ns) == 2


def test_a_test_that_fails_after_its_benchmark_is_an_error_naming_it(sb: Sandbox) -> None:
    with pytest.raises(ProfileError, match=r"test_wrong failed: assert 285 == -1"):
        measure_wall(sb, case(WRONG), inner=2)
    with pytest.raises(ProfileError, match=r"test_skipped failed: skipped \(not today\)"):
        measure_wall(sb, case(SKIPPED))
    with pytest.raises(ProfileError, match=r"test_plain failed: passed without calling bench"):
        measure_wall(sb, case(f"{BENCH}::test_plain"))


def batch(sb: Sandbox, names: list[str]) -> dict:
    """One callgrind process over ``names`` (the harness's batch mode, as ci.py will run it).

    Plugin autoloading is off here only to keep pytest's start-up under valgrind short (the
    wall and hotspots tests run with pytest-benchmark and the rest installed)."""
    return run_harness(
        sb, "batch", Workload(kind="file", target=RUNNER_PATH), step_timeout_s=300, warmup=1,
        env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        targets=[{"name": "pytest", "target": RUNNER_PATH, "names": names}],
    )  # fmt: skip


def test_batch_counts_every_case_in_one_pytest_session_deterministically(sb: Sandbox) -> None:
    gone = f"{BENCH}::test_gone"
    names = [*EXPECTED, SKIPPED, gone]
    first, second = batch(sb, names), batch(sb, names)
    assert first["stuck"] is None, first
    # test_wrong's region was counted, and the test failed after it: it is in both, and
    # the error is what counts (ci.py reports it as failed)
    assert sorted(first["counts"]) == sorted(EXPECTED)
    assert first["counts"] == second["counts"]
    assert first["counts"][SIZES[1]] > first["counts"][SIZES[0]] > 0
    assert first["errors"] == {
        WRONG: "assert 285 == -1",
        SKIPPED: "skipped (not today)",
        gone: "no such test at this revision",
    }


def test_hotspots_profile_only_the_measured_call(sb: Sandbox) -> None:
    report = profile_hotspots(sb, case(SIZES[1]))
    places = [h.location for h in report.top]
    assert any(p.startswith(f"{BENCH}:") and "genexpr" in p for p in places), places
    assert not any("_pytest" in p or "pluggy" in p for p in places), places


def test_a_conftest_that_does_not_import_is_a_user_error(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {"conftest.py": "import not_installed_anywhere\n", "test_b.py": TEST_BENCH},
    )
    with prepared(repo) as sandbox, pytest.raises(UserError) as info:
        collect(sandbox, ["test_b.py"])
    line = str(info.value)
    assert "collecting the pytest-benchmark tests failed (exited with code 4)" in line
    assert "not_installed_anywhere" in line and "\n" not in line and ". Fix: " in line
