"""`optimizer ci` end to end: real git repos, real sandboxes, the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from optimizer.ci import BenchmarkResult, default_base, exit_code, holm
from tests.conftest import git

PYPROJECT = """
[project]
name = "demo"
version = "0"

[tool.optimizer.benchmarks.parse]
workload = "bench/parse.py"

[tool.optimizer.benchmarks.render]
workload = "bench/render.py"

[tool.optimizer.benchmarks.sort]
workload = "bench/sort.py"
threshold = "5%"
"""
LIB = """
def spin(n):
    total = 0
    for i in range(n):
        total += i * i
    return total

def parse():
    return spin({parse})

def render():
    return spin({render})

def sort():
    return sorted(range({sort}, 0, -1))
"""
BENCH = "from lib import {name}\n\ndef workload():\n    {name}()\n"
SIZES = {"parse": 20000, "render": 20000, "sort": 20000}


def _files(**sizes: int) -> dict[str, str]:
    files = {"pyproject.toml": PYPROJECT, "lib.py": LIB.format(**{**SIZES, **sizes})}
    files.update({f"bench/{n}.py": BENCH.format(name=n) for n in SIZES})
    return files


def run_ci(repo: Path, *args: str, env: dict[str, str] | None = None):
    cmd = [sys.executable, "-m", "optimizer", "ci", str(repo), *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=900, env={**os.environ, **(env or {})}
    )


@pytest.fixture
def slowed_repo(make_repo):
    """Three benchmarks; the second commit makes `render` do 10% more work."""
    return make_repo(_files(), _files(render=22000))


def test_a_10pct_slowdown_in_one_of_three_benchmarks_exits_1_and_names_it(
    slowed_repo: Path, tmp_path: Path
) -> None:
    out, junit, summary = tmp_path / "ci.json", tmp_path / "ci.xml", tmp_path / "summary.md"
    done = run_ci(
        slowed_repo, "--base", "HEAD~1", "--metric", "instructions", "--sandbox", "local",
        "--json", str(out), "--junit", str(junit), env={"GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr + done.stdout
    record = json.loads(out.read_text())
    verdicts = {b["name"]: b["verdict"] for b in record["benchmarks"]}
    assert verdicts == {"parse": "unchanged", "render": "regression", "sort": "unchanged"}
    render = next(b for b in record["benchmarks"] if b["name"] == "render")
    (mv,) = render["metrics"]
    assert 1.08 < mv["result"]["ratio"] < 1.12
    # constant counts decide at once (a re-run would count the same); otherwise a re-run confirms
    if mv["result"]["deterministic"]:
        assert mv["confirm"] is None and mv["result"]["ci"] == [mv["result"]["ratio"]] * 2
    else:
        assert mv["confirm"]["verdict"] == "slower"
    assert mv["p_holm"] < 0.05 and mv["result"]["base_samples"]
    # the hotspot diff was taken (its content is cProfile time: asserted where the change is
    # large enough for a loaded machine's noise, in the test below)
    assert render["hotspots"] is not None and not render.get("hotspots_note"), render
    # markdown on stdout (asv-style), appended to the GitHub step summary
    assert "| + |" in done.stdout and "render (instructions)" in done.stdout
    assert "| + |" not in done.stdout.split("render (instructions)")[1].split("\n")[0]
    assert summary.read_text() == done.stdout
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "1" and suite.get("tests") == "3"
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["render"]


def test_the_hotspot_diff_of_a_regression_points_at_the_function_that_got_heavier(
    make_repo, tmp_path: Path
) -> None:
    """cProfile seconds move with load; a function that does three times the work stands
    out of that noise, and the diff names it first."""
    repo = make_repo(_files(), _files(render=60000))
    out = tmp_path / "ci.json"
    done = run_ci(repo, "--base", "HEAD~1", "--metric", "instructions", "--sandbox", "local",
                  "--bench", "^render$", "--json", str(out))  # fmt: skip
    assert done.returncode == 1, done.stderr + done.stdout
    (render,) = json.loads(out.read_text())["benchmarks"]
    assert render["verdict"] == "regression"
    assert render["hotspots"] and "spin" in render["hotspots"][0]["location"], render
    assert render["hotspots"][0]["head_s"] > render["hotspots"][0]["base_s"]


def test_base_vs_base_exits_0_after_one_round_of_counts(slowed_repo: Path, tmp_path: Path):
    """With both metrics, counts gate: one callgrind process per side counted every benchmark
    the same to the instruction, which settles it; no wall clock is needed to confirm."""
    out = tmp_path / "aa.json"
    (slowed_repo / "lib.py").write_text("def parse():\n    return 0\n")  # not committed
    done = run_ci(
        slowed_repo, "--base", "HEAD", "--head", "HEAD", "--sandbox", "local",
        "--budget", "5", "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    said = done.stdout + done.stderr
    assert "are the same commit" in said and "1 uncommitted change(s)" in said, said
    assert "lib.py" in said and "not measured" in said
    record = json.loads(out.read_text())
    assert {b["verdict"] for b in record["benchmarks"]} == {"unchanged"}
    for b in record["benchmarks"]:
        (m,) = b["metrics"]
        assert (m["metric"], m["result"]["stopped"], m["result"]["pairs"]) == (
            "instructions", "identical", 1,
        )  # fmt: skip
    assert "round 2" not in done.stderr
    assert "no regressions" in done.stdout


def test_a_benchmark_that_crashes_at_head_exits_3_and_names_it(make_repo, tmp_path: Path):
    broken = _files()
    broken["lib.py"] += "\ndef sort():\n    raise ValueError('sort is broken')\n"
    repo = make_repo(_files(), broken)
    out = tmp_path / "ci.json"
    done = run_ci(
        repo, "--base", "HEAD~1", "--metric", "instructions", "--sandbox", "local",
        "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 3, done.stderr + done.stdout
    record = json.loads(out.read_text())
    sort = next(b for b in record["benchmarks"] if b["name"] == "sort")
    assert sort["verdict"] == "error"
    assert "benchmark sort failed on head" in sort["error"] and "sort is broken" in sort["error"]
    assert "regression" not in {b["verdict"] for b in record["benchmarks"]}
    assert "Error: sort" in done.stdout and "sort is broken" in done.stdout


@pytest.mark.docker
def test_docker_backend_catches_the_regression(
    slowed_repo: Path, tmp_path: Path, docker_image: str
) -> None:
    out = tmp_path / "ci.json"
    done = run_ci(
        slowed_repo, "--base", "HEAD~1", "--metric", "instructions", "--sandbox", "docker",
        "--bench", "render|parse", "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr + done.stdout
    record = json.loads(out.read_text())
    assert record["backend"] == "docker"
    assert {b["name"]: b["verdict"] for b in record["benchmarks"]} == {
        "parse": "unchanged",
        "render": "regression",
    }


def test_user_errors_are_one_line_with_exit_3(make_repo, tmp_path: Path) -> None:
    repo = make_repo({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})
    done = run_ci(repo, "--sandbox", "local")
    assert done.returncode == 3
    assert done.stderr.startswith("error: no benchmarks found") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = run_ci(repo, "--threshold", "five", "--sandbox", "local")
    assert done.returncode == 3 and "--threshold" in done.stderr
    done = run_ci(repo, "--base", "nope", "--sandbox", "local")
    assert done.returncode == 3 and "unknown revision" in done.stderr
    done = run_ci(tmp_path / "missing", "--sandbox", "local")
    assert done.returncode == 3 and "no such directory" in done.stderr
    done = run_ci(repo, "--bench", "(", "--sandbox", "local")
    assert done.returncode == 3 and "not a regular expression" in done.stderr
    assert "Fix: fix it" not in done.stderr


def test_a_bench_regex_that_matches_nothing_lists_what_there_is(slowed_repo: Path) -> None:
    done = run_ci(slowed_repo, "--bench", "nothing-like-this", "--sandbox", "local")
    assert done.returncode == 3, done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]  # after the progress lines
    assert last.startswith("error: ") and "matching --bench 'nothing-like-this'" in last, last
    assert "pick from: parse, render, sort" in last


def test_default_base_is_the_merge_base_or_the_parent(make_repo) -> None:
    repo = make_repo({"a.txt": "1"}, {"a.txt": "2"})
    main_tip = git(repo, "rev-parse", "HEAD")
    assert default_base(repo, "HEAD") == git(repo, "rev-parse", "HEAD~1")  # on main: parent
    git(repo, "checkout", "-q", "-b", "feature")
    for i in range(2):
        (repo / "a.txt").write_text(f"feature {i}")
        git(repo, "commit", "-qam", f"f{i}")
    assert default_base(repo, "HEAD") == main_tip


def test_holm_adjustment() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_exit_code_precedence() -> None:
    def results(*verdicts: str) -> list[BenchmarkResult]:
        return [
            BenchmarkResult(name=str(i), origin="config", workload="w", verdict=v)
            for i, v in enumerate(verdicts)
        ]

    assert exit_code(results("unchanged", "improvement")) == 0
    assert exit_code(results("unchanged", "regression", "inconclusive")) == 1
    assert exit_code(results("unchanged", "inconclusive")) == 2
    assert exit_code(results("unchanged", "inconclusive"), fail_on_inconclusive=True) == 1
    assert exit_code(results("regression", "error")) == 3


def test_discovered_pytest_benchmark_and_asv_suites_need_no_config(make_repo) -> None:
    lib = "def work(n):\n    return sum(i * i for i in range(n))\n"
    test_file = (
        "from lib import work\n\ndef test_work(benchmark):\n    assert benchmark(work, {n}) > 0\n"
    )
    asv_file = (
        "from lib import work\n\n"
        "class TimeWork:\n    params = [1000, 2000]\n\n"
        "    def setup(self, n):\n        self.n = n * 10\n\n"
        "    def time_work(self, n):\n        work(self.n)\n"
    )

    def tree(n: int, lib_text: str = lib) -> dict[str, str]:
        return {
            "lib.py": lib_text,
            "tests/test_perf.py": test_file.format(n=n),
            "benchmarks/bench_work.py": asv_file,
        }

    # head slows lib.work by 15% for every caller; the pytest test itself is unchanged
    slower = lib.replace("range(n)", "range(n + n * 15 // 100)")
    repo = make_repo(tree(20000), tree(20000, slower))
    done = run_ci(repo, "--base", "HEAD~1", "--metric", "instructions", "--sandbox", "local")
    assert done.returncode == 1, done.stderr + done.stdout
    for name in (
        "tests/test_perf.py::test_work",
        "bench_work.TimeWork.time_work(1000)",
        "bench_work.TimeWork.time_work(2000)",
    ):
        row = next(line for line in done.stdout.splitlines() if name in line)
        assert row.startswith("| + |"), row


def test_an_improvement_is_confirmed_and_exits_0(slowed_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "ci.json"
    done = run_ci(
        slowed_repo, "--base", "HEAD", "--head", "HEAD~1", "--metric", "instructions",
        "--bench", "render", "--sandbox", "local", "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    (render,) = json.loads(out.read_text())["benchmarks"]
    (mv,) = render["metrics"]
    assert render["verdict"] == mv["verdict"] == "improvement"
    assert mv["result"]["ratio"] < 0.93
    assert mv["result"]["deterministic"] or mv["confirm"]["verdict"] == "faster"
    assert "| - |" in done.stdout


def test_with_both_metrics_wall_clock_confirms_only_what_the_counts_flag(
    make_repo, tmp_path: Path
) -> None:
    """``both``: counts gate every benchmark; the wall clock runs for the regressed one alone.
    Where it firmly says the opposite (more instructions, but a shorter sleep: wall clock
    faster), the verdict is inconclusive, not a regression, and the report says why."""
    lib = "import time\n\ndef nap(n={n}, s={s}):\n    sum(i * i for i in range(n))\n"
    lib += "    time.sleep(s)\n"
    files = {
        "pyproject.toml": PYPROJECT.split("[tool.optimizer.benchmarks.render]")[0]
        + '[tool.optimizer.benchmarks.napper]\nworkload = "bench/nap.py"\n',
        "bench/parse.py": "from lib import nap\n\ndef workload():\n    nap(2000, 0)\n",
        "bench/nap.py": "from lib import nap\n\ndef workload():\n    nap()\n",
    }
    repo = make_repo(
        {**files, "lib.py": lib.format(n=2000, s=0.05)},
        {**files, "lib.py": lib.format(n=4000, s=0.01)},
    )
    out = tmp_path / "ci.json"
    done = run_ci(repo, "--base", "HEAD~1", "--sandbox", "local", "--json", str(out))
    assert done.returncode == 2, done.stderr + done.stdout  # inconclusive
    record = {b["name"]: b for b in json.loads(out.read_text())["benchmarks"]}
    assert [m["metric"] for m in record["parse"]["metrics"]] == ["instructions"]
    napper = record["napper"]
    by = {m["metric"]: m for m in napper["metrics"]}
    assert by["instructions"]["verdict"] == "regression"
    assert by["wall"]["verdict"] == "improvement" and by["wall"]["result"]["ratio"] < 0.5
    assert napper["verdict"] == "inconclusive"
    assert "the wall clock says improvement" in napper["note"]
    assert "### Inconclusive: napper" in done.stdout
