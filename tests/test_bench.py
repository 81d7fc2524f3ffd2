"""Tests for `optimizer bench` (optimizer.bench, optimizer.bench_cmd) on throwaway git repos:
verdicts on real slowdowns and A/A runs, the JSON record, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optimizer.bench import BenchConfig, run_bench
from optimizer.cli import app
from tests.conftest import assert_wall_reads

ROOT = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]

# Fixed work per step, so N steps cost N units (a 3% larger N is 3% more work).
WORK = """
N = {n}
def step():
    return sum(range(40))
def workload():
    for _ in range({scale} * N):
        step()
"""


def commit(repo: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / name).write_text(text)
    subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", "c"], check=True)
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def make_repo(path: Path, *versions: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    for files in versions:
        commit(path, files)
    return path


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real CLI entry point in a subprocess (as a user would)."""
    return subprocess.run(
        [sys.executable, "-m", "optimizer", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def slower_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two commits: the second does 20% more work."""
    repo = tmp_path_factory.mktemp("bench") / "repo"
    return make_repo(
        repo, {"work.py": WORK.format(n=1500, scale=10)}, {"work.py": WORK.format(n=1800, scale=10)}
    )


def test_twenty_percent_more_work_is_slower_on_both_metrics(
    slower_repo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rec.json"
    result = CliRunner().invoke(
        app,
        [
            "bench", str(slower_repo), "--workload", "work.py", "--base", "HEAD~1",
            "--head", "HEAD", "--sandbox", "local", "--repeats", "8", "--json", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "slower" in result.output and "wall" in result.output
    rec = json.loads(out.read_text())
    by = {m["metric"]: m for m in rec["metrics"]}
    assert set(by) == {"wall", "instructions"}
    for m in by.values():
        assert len(m["base_samples"]) == len(m["head_samples"]) >= 2
    assert_wall_reads(by["wall"], "slower")
    m = by["instructions"]  # deterministic: exact, however busy the machine
    assert m["verdict"] == "slower" and m["ci"][0] > 1.0 and 0 <= m["p_value"] < 0.05, m
    assert m["ratio"] == pytest.approx(1.2, abs=0.01)
    assert rec["base"]["sha"] != rec["head"]["sha"] and len(rec["head"]["sha"]) == 40
    assert rec["environment"]["backend"] == "local" and rec["environment"]["cores"] >= 1
    assert not list(tmp_path.glob(".rec.json.*"))  # the temp file was renamed away


def test_a_vs_a_is_same(slower_repo: Path) -> None:
    rec = run_bench(
        BenchConfig(
            repo=slower_repo,
            workload="work.py",
            sandbox="local",
            repeats=8,
            max_repeats=16,
            floors={"wall": 0.10, "instructions": 0.005},
            budget_s=60,
        )
    )
    assert rec.base.sha == rec.head.sha
    by = {m.metric: m for m in rec.metrics}
    assert by["instructions"].verdict == "same"
    assert by["instructions"].ratio == 1.0 and by["instructions"].p_value == 1.0
    # Wall time on a loaded machine may stay inconclusive, but must never claim a change. Its
    # 95% CI alone may miss 1.0 (about one A/A run in 20 by design, more while the load drifts
    # between the runs of a pair), which is why a verdict also needs p < 0.005 and the floor.
    assert by["wall"].verdict in ("same", "inconclusive")
    assert by["wall"].pairs >= 8 and len(by["wall"].base_samples) == by["wall"].pairs
    # each ratio says how it was taken: the wall one is not the ratio of the medians shown
    assert (by["wall"].estimator, by["instructions"].estimator) == ("paired HL", "exact")


def test_three_percent_patch_reads_as_three_percent(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"work.py": WORK.format(n=1000, scale=1)})
    patch = tmp_path / "more.patch"
    (repo / "work.py").write_text(WORK.format(n=1030, scale=1))
    patch.write_text(subprocess.run(["git", "-C", str(repo), "diff"], capture_output=True,
                                    text=True, check=True).stdout)  # fmt: skip
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "work.py"], check=True)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(
        app,
        [
            "bench", str(repo), "-w", "work.py", "--patch", str(patch), "--metric",
            "instructions", "--sandbox", "local", "--json", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (m,) = json.loads(out.read_text())["metrics"]
    assert m["metric"] == "instructions" and m["verdict"] == "slower"
    assert m["ratio"] - 1 == pytest.approx(0.03, abs=0.003)
    assert m["ci"][1] - m["ci"][0] < 0.003
    assert json.loads(out.read_text())["head"]["patched"] is True


def test_workload_file_outside_the_repo_is_copied_to_both_sides(tmp_path: Path) -> None:
    lib_a = "def work(n):\n    return sum(range(n))\n"
    lib_b = "def work(n):\n    return sum(range(2 * n))\n"
    repo = make_repo(tmp_path / "repo", {"lib.py": lib_a}, {"lib.py": lib_b})
    outside = tmp_path / "bench_w.py"
    outside.write_text("import lib\ndef workload():\n    lib.work(20000)\n")
    rec = run_bench(
        BenchConfig(repo=repo, workload=str(outside), base="HEAD~1", head="HEAD",
                    metrics=["instructions"], sandbox="local")
    )  # fmt: skip
    (m,) = rec.metrics
    assert m.verdict == "slower" and m.ratio > 1.8


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    # piped, bench prints a plain line per step first; the error is one line, the last
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    return lines[-1]


@pytest.mark.parametrize(
    "body, cause",
    [
        ("def workload():\n    raise ValueError('boom here')\n", "ValueError: boom here"),
        ("import time\ndef workload():\n    time.sleep(60)\n", "timeout"),
        ("import os\ndef workload():\n    print('PASSED 0.0s')\n    os._exit(0)\n", "garbage"),
    ],
    ids=["crash", "timeout", "garbage"],
)
def test_broken_workload_gives_one_line_naming_the_revision(
    tmp_path: Path, body: str, cause: str
) -> None:
    repo = make_repo(tmp_path / "repo", {"work.py": WORK.format(n=10, scale=1)})
    sha = commit(repo, {"work.py": body})
    proc = cli(
        "bench", str(repo), "-w", "work.py", "--base", "HEAD~1", "--head", "HEAD",
        "--metric", "wall", "--repeats", "2", "--timeout", "3", "--sandbox", "local",
    )  # fmt: skip
    line = _error_line(proc)
    assert line.startswith("error: the workload failed on head HEAD")
    assert sha[:12] in line and cause in line


def test_missing_workload_file_at_base_is_named(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "x"}, {"work.py": WORK.format(n=10, scale=1)})
    proc = cli(
        "bench", str(repo), "-w", "work.py", "--base", "HEAD~1", "--head", "HEAD",
        "--metric", "wall", "--repeats", "2", "--sandbox", "local",
    )  # fmt: skip
    line = _error_line(proc)
    assert "on base HEAD~1" in line and "work.py does not exist" in line


def test_head_and_patch_together_are_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "x"})
    (tmp_path / "p.diff").write_text("")
    proc = cli("bench", str(repo), "-w", "true", "--head", "HEAD", "--patch",
               str(tmp_path / "p.diff"), "--sandbox", "local")  # fmt: skip
    assert "--head and --patch" in _error_line(proc)


def _docker_ready() -> str | None:
    from sandbox import engine
    from sandbox.images import base_tag, image_exists

    if not engine.available():
        return "no Docker engine answers"
    if not image_exists(base_tag()):
        return "the sandbox base image is not built (`optimizer sandbox build`)"
    return None


@pytest.mark.docker
def test_docker_backend_detects_slowdown(slower_repo: Path) -> None:
    why = _docker_ready()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Docker is not usable: {why}")
        pytest.skip(why)
    rec = run_bench(
        BenchConfig(repo=slower_repo, workload="work.py", base="HEAD~1", head="HEAD",
                    sandbox="docker", repeats=5, budget_s=30)
    )  # fmt: skip
    assert rec.backend == "docker"
    by = {m.metric: m for m in rec.metrics}
    assert by["instructions"].verdict == "slower"
    assert by["instructions"].ratio == pytest.approx(1.2, abs=0.01)
    assert_wall_reads(by["wall"], "slower")  # through Docker on a shared 2-core machine
    assert rec.environment["sandbox_python"].startswith("3.")


def test_hotspots_folder_has_text_json_and_speedscope(slower_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "hot"
    proc = cli(
        "bench", str(slower_repo), "--workload", "work.py", "--base", "HEAD~1", "--head", "HEAD",
        "--metric", "instructions", "--sandbox", "local", "--hotspots", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for side in ("base", "head"):
        assert "work.py" in (out / f"{side}.txt").read_text()
        report = json.loads((out / f"{side}.json").read_text())
        assert any("step" in h["location"] for h in report["top"])
        speedscope = json.loads((out / f"{side}.speedscope.json").read_text())
        assert speedscope["$schema"].startswith("https://www.speedscope.app")
    assert "cProfile of workload()" in proc.stdout


def test_a_missing_module_names_pip_and_pip_installs_it(tmp_path: Path, docker_image) -> None:
    """A workload that imports numpy, in Docker (the base image has none): the error says
    how to install it (`--pip`, or [tool.optimizer.ci] pip, which `optimizer ci` reads too),
    and with either it runs."""
    work = "import numpy\n\ndef workload():\n    return int(numpy.arange(5000).sum())\n"
    repo = make_repo(tmp_path / "repo", {"work.py": work})
    args = ("bench", str(repo), "-w", "work.py", "--metric", "wall", "--repeats", "2",
            "--budget", "1", "--sandbox", "docker")  # fmt: skip
    line = _error_line(cli(*args))
    assert "No module named 'numpy'" in line and "`--pip numpy`" in line, line
    assert "[tool.optimizer.ci]" in line  # rich markup did not eat the brackets
    done = cli(*args, "--pip", "numpy", timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "environment: pip ['numpy']" in done.stderr
    commit(repo, {"pyproject.toml": '[tool.optimizer.ci]\npip = ["numpy"]\n'})
    done = cli(*args, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_workload_file_that_is_not_committed_says_so(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "x"})
    (repo / "new_work.py").write_text(WORK.format(n=10, scale=1))  # on disk, not committed
    proc = cli("bench", str(repo), "-w", str(repo / "new_work.py"), "--metric", "wall",
               "--repeats", "2", "--sandbox", "local")  # fmt: skip
    line = _error_line(proc)
    assert "new_work.py does not exist on base HEAD" in line and "not committed" in line, line
    assert "git add new_work.py" in line and line.count("error:") == 1
