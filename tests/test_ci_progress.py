"""`optimizer ci` in a CI log (stderr not a terminal): plain progress lines, one per finished
benchmark, and `--list`. The real CLI in a subprocess on a real git repo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PYPROJECT = """
[project]
name = "demo"
version = "0"

[tool.optimizer.benchmarks.alpha]
workload = "bench/alpha.py"

[tool.optimizer.benchmarks.beta]
workload = "bench/beta.py"
metric = "instructions"
"""
LIB = "def spin(n):\n    return sum(i * i for i in range(n))\n"
BENCH = "from lib import spin\n\ndef workload():\n    spin({n})\n"
#: An asv benchmark discovery finds but cannot run (its params are not a literal).
SKIPPED = (
    "SIZES = [10, 20]\n\n\nclass TimeSizes:\n    params = SIZES\n\n"
    "    def time_sizes(self, n):\n        sum(range(n))\n"
)
ANSI = re.compile(r"\x1b\[")


def _tree(readme: str = "") -> dict[str, str]:
    return {
        "README.md": readme,
        "pyproject.toml": PYPROJECT,
        "lib.py": LIB,
        "bench/alpha.py": BENCH.format(n=2000),
        "bench/beta.py": BENCH.format(n=3000),
        "benchmarks/bench_sizes.py": SKIPPED,
    }


def ci(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    return subprocess.run(
        [sys.executable, "-m", "optimizer", "ci", str(repo), *args],
        capture_output=True, text=True, timeout=600, env={**env, "COLUMNS": "200"},
    )  # fmt: skip


@pytest.fixture
def repo(make_repo) -> Path:
    """Two commits, the same code (counting instructions is slow on a loaded machine; a
    regression would add the hotspot runs too)."""
    return make_repo(_tree(), _tree(readme="docs\n"))


def test_a_ci_log_gets_one_plain_line_per_benchmark_in_order(repo: Path) -> None:
    done = ci(repo, "--base", "HEAD~1", "--sandbox", "local", "--metric", "instructions")
    assert done.returncode in (0, 1, 2), done.stderr + done.stdout
    lines = done.stderr.splitlines()
    ticks = [line for line in lines if re.match(r"\[\d+/\d+\] ", line)]
    assert len(ticks) == 2, done.stderr
    assert re.fullmatch(r"\[1/2\] alpha  instructions \d\.\d{3} \w+  \d+\.\d s", ticks[0]), ticks
    assert re.fullmatch(r"\[2/2\] beta  instructions \d\.\d{3} \w+  \d+\.\d s", ticks[1]), ticks
    # every other line is a message with the elapsed seconds; no ANSI codes, no spinner
    messages = [line for line in lines if line not in ticks]
    assert messages and all(re.match(r"\[ *\d+s\] \S", line) for line in messages), messages
    assert not ANSI.search(done.stderr)
    assert not ANSI.search(done.stdout)
    # stdout is the report alone
    assert done.stdout.startswith("## optimizer ci:")
    assert "alpha (instructions)" in done.stdout and "beta (instructions)" in done.stdout
    assert "[1/2]" not in done.stdout


def test_list_shows_what_would_run_and_what_is_skipped_and_measures_nothing(repo: Path) -> None:
    done = ci(repo, "--list", "--sandbox", "local")
    assert done.returncode == 0, done.stderr + done.stdout
    table = {
        cells[0]: cells[1:]
        for line in done.stdout.splitlines()
        if len(cells := [c.strip() for c in re.split(r"[│|┃]", line.strip(" │┃|")) if c]) == 3
    }
    assert table["alpha"] == ["config", "both (default)"], done.stdout
    assert table["beta"] == ["config", "instructions"], done.stdout
    skipped = [line for line in done.stdout.splitlines() if "time_sizes" in line]
    assert skipped == [
        "- bench_sizes.TimeSizes.time_sizes: params is not a literal, so its combinations "
        "are unknown"
    ], done.stdout
    # nothing measured: no report, no finished-benchmark line
    assert "## optimizer ci" not in done.stdout
    assert not re.search(r"^\[\d+/\d+\]", done.stderr, re.M), done.stderr


def test_list_with_bench_lists_only_the_matching_benchmarks(repo: Path) -> None:
    done = ci(repo, "--list", "--bench", "^beta$", "--metric", "wall", "--sandbox", "local")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "beta" in done.stdout and "alpha" not in done.stdout
    assert "instructions" in done.stdout  # beta's own metric wins over --metric


def test_a_bad_list_is_one_line_with_exit_3(repo: Path) -> None:
    done = ci(repo, "--list", "--bench", "(", "--sandbox", "local")
    assert done.returncode == 3, done.stderr + done.stdout
    # progress lines may come first; the error itself is one line, and the last
    others = [line for line in done.stderr.splitlines() if not re.match(r"\[ *\d+s\] ", line)]
    assert len(others) == 1 and others[0].startswith("error: --bench '('"), done.stderr
    assert done.stderr.splitlines()[-1] == others[0] and "Traceback" not in done.stderr


def test_the_new_options_reach_the_gate(repo: Path, monkeypatch) -> None:
    """--pip (repeatable) and --build land in CIConfig; run_ci gets progress and tick."""
    from typer.testing import CliRunner

    import optimizer.ci_cmd as ci_cmd
    from optimizer.cli import app

    seen = {}

    def fake_run_ci(cfg, progress=None, tick=None):
        seen.update(cfg=cfg, progress=progress, tick=tick)
        raise ci_cmd.UserError("stopped before measuring", "nothing to fix")

    monkeypatch.setattr(ci_cmd, "run_ci", fake_run_ci)
    args = ["ci", str(repo), "--pip", "numpy", "--pip", "attrs==23.1", "--build", "make all"]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 3, done.output
    assert seen["cfg"].pip == ["numpy", "attrs==23.1"] and seen["cfg"].build == "make all"
    assert callable(seen["progress"]) and callable(seen["tick"])
    CliRunner().invoke(app, ["ci", str(repo)])
    assert seen["cfg"].pip == [] and seen["cfg"].build is None


def test_a_failing_build_from_the_command_line_exits_3(repo: Path) -> None:
    done = ci(repo, "--base", "HEAD~1", "--sandbox", "local", "--build", "echo broken >&2; exit 7")
    assert done.returncode == 3, done.stderr + done.stdout
    error = done.stderr.splitlines()[-1]
    assert error.startswith("error: the build command failed on base") and "broken" in error


def test_the_terminal_bar_counts_ticks_and_prints_their_lines_above_it() -> None:
    """In a terminal: the bar's total comes from the first tick, its ETA from the finished
    benchmarks' seconds; each tick's line is printed (scrolling above the bar)."""
    import io

    from rich.console import Console

    from optimizer.ci import BenchmarkDone
    from optimizer.ci_cmd import CIProgress

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    with CIProgress(console, bar=True) as shown:
        assert shown.bar is not None
        shown.say("copying base (HEAD~1) [into] a local sandbox")
        (task,) = shown.bar.tasks
        assert task.total is None and "[into]" in task.description
        shown.tick(BenchmarkDone(index=1, total=4, name="alpha", seconds=10.0,
                                 metrics=[("instructions", 1.0, "same")]))  # fmt: skip
        assert (task.total, task.completed) == (4, 1)
        eta = shown.bar.columns[-1].render(task).plain
        assert eta in ("0:00:30", "0:00:29"), eta  # 3 more benchmarks of 10 s
    assert "[1/4] alpha  instructions 1.000 same  10.0 s" in buf.getvalue()


def test_the_plain_log_stamps_messages_and_writes_ticks_as_is(capsys) -> None:
    from rich.console import Console

    from optimizer.ci import BenchmarkDone
    from optimizer.ci_cmd import CIProgress

    with CIProgress(Console(stderr=True), bar=False) as shown:
        assert shown.bar is None
        shown.say("2 benchmarks; base HEAD~1, head HEAD")
        shown.say("two\nlines")
        shown.tick(BenchmarkDone(index=1, total=2, name="a [x]", seconds=1.25,
                                 metrics=[("wall", 1.031, "slower")], error=None))  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "[   0s] 2 benchmarks; base HEAD~1, head HEAD",
        "[   0s] two",
        "[   0s] lines",
        "[1/2] a [x]  wall 1.031 slower  1.2 s",
    ]
