"""Tests for profilers/: wall clock, instruction counts, hotspots and memory, on the local
sandbox backend with real git repositories and real subprocesses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from profilers import (
    ProfileError,
    Workload,
    install,
    measure_instructions,
    measure_memory,
    measure_wall,
    profile_hotspots,
)
from profilers.hotspots import report
from sandbox import Limits, Source, open_sandbox

GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]


def make_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    for name, text in files.items():
        (path / name).write_text(text)
    subprocess.run([*GIT, "-C", str(path), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(path), "commit", "-qm", "c"], check=True)
    return path


LOOP = """
N = {n}
def setup():
    {setup}
def step():
    return sum(range(50))
def workload():
    for _ in range(N):
        step()
"""


def _sandbox(repo: Path):
    return open_sandbox(Source(repo=repo), "local", limits=Limits(wall_s=120))


def test_wall_times_only_the_workload_and_keeps_raw_samples(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r", {"w.py": LOOP.format(n=100, setup="import time; time.sleep(0.4)")}
    )
    with _sandbox(repo) as sb:
        w = install(sb, Workload(kind="file", target="w.py"))
        run = measure_wall(sb, w, inner=5, warmup=1)
    assert len(run.samples_ns) == 5
    assert all(0 < s < 0.2e9 for s in run.samples_ns)  # the 0.4 s setup is not timed
    assert run.seconds == sorted(run.samples_ns)[2] / 1e9
    assert run.maxrss_kb > 1000


def test_each_repeat_is_a_fresh_process(tmp_path: Path) -> None:
    # A workload that caches its result in memory is slow on the first call of a process.
    src = (
        "import time\n_memo = {}\n"
        "def workload():\n"
        "    if 'x' not in _memo:\n"
        "        time.sleep(0.15)\n"
        "        _memo['x'] = 1\n"
    )
    repo = make_repo(tmp_path / "r", {"w.py": src})
    with _sandbox(repo) as sb:
        w = install(sb, Workload(kind="file", target="w.py"))
        runs = [measure_wall(sb, w) for _ in range(3)]
    assert all(r.seconds >= 0.14 for r in runs)


def test_command_workload_is_timed_and_failures_raise(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "x"})
    with _sandbox(repo) as sb:
        install(sb, Workload(kind="command", target="true"))
        run = measure_wall(sb, Workload(kind="command", target="sleep 0.2"), inner=2)
        assert len(run.samples_ns) == 2 and all(s >= 0.19e9 for s in run.samples_ns)
        with pytest.raises(ProfileError, match="exited with code 3"):
            measure_wall(sb, Workload(kind="command", target="exit 3"))


def test_missing_result_file_is_garbage(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"w.py": "import os\ndef workload():\n    os._exit(0)\n"})
    with _sandbox(repo) as sb:
        w = install(sb, Workload(kind="file", target="w.py"))
        with pytest.raises(ProfileError, match="garbage: the harness result file is missing"):
            measure_wall(sb, w)


def test_crash_names_the_exception(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"w.py": "def workload():\n    1 / 0\n"})
    with _sandbox(repo) as sb:
        w = install(sb, Workload(kind="file", target="w.py"))
        with pytest.raises(ProfileError, match="ZeroDivisionError"):
            measure_wall(sb, w)


def test_instruction_counts_are_deterministic_and_region_only(tmp_path: Path) -> None:
    heavy_setup = "global junk; junk = [str(i) for i in range(200000)]"
    repo = make_repo(
        tmp_path / "r",
        {
            "a.py": LOOP.format(n=1000, setup="pass"),
            "b.py": LOOP.format(n=1000, setup=heavy_setup),
            "c.py": LOOP.format(n=1030, setup="pass"),
        },
    )
    with _sandbox(repo) as sb:
        install(sb, Workload(kind="file", target="a.py"))
        a = [measure_instructions(sb, Workload(kind="file", target="a.py")) for _ in range(2)]
        b = measure_instructions(sb, Workload(kind="file", target="b.py"))
        c = measure_instructions(sb, Workload(kind="file", target="c.py"))
    counts = [r.instructions for r in a]
    assert len(set(counts)) == 1  # CV exactly 0 < 1e-6
    # a heavy setup() is outside the counted region
    assert abs(b.instructions - counts[0]) / counts[0] < 0.01
    # 3% more work reads as 3% more instructions
    assert c.instructions / counts[0] == pytest.approx(1.03, abs=0.003)


def test_instruction_count_of_a_command(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "x"})
    with _sandbox(repo) as sb:
        install(sb, Workload(kind="command", target="true"))
        runs = [measure_instructions(sb, Workload(kind="command", target="true")) for _ in range(2)]
    assert runs[0].instructions == runs[1].instructions > 0


def test_hotspots_text_json_and_speedscope(tmp_path: Path) -> None:
    src = (
        "def slow_part(n):\n    return sum(i * i for i in range(n))\n"
        "def fast_part():\n    return 1\n"
        "def workload():\n    for _ in range(20):\n        slow_part(20000)\n        fast_part()\n"
    )
    repo = make_repo(tmp_path / "r", {"w.py": src})
    with _sandbox(repo) as sb:
        w = install(sb, Workload(kind="file", target="w.py"))
        rep = profile_hotspots(sb, w)
    text = rep.text(10)
    assert len(text.splitlines()) <= 12
    assert "w.py:2(<genexpr>)" in text
    names = [h.location for h in rep.top]
    assert names.index("w.py:2(<genexpr>)") < names.index("w.py:3(fast_part)")
    assert sum(h.own_share for h in rep.top) == pytest.approx(1.0, abs=0.01)
    doc = json.loads(json.dumps(rep.speedscope))
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    prof = doc["profiles"][0]
    assert prof["type"] == "sampled" and len(prof["samples"]) == len(prof["weights"])
    nframes = len(doc["shared"]["frames"])
    assert all(0 <= i < nframes for s in prof["samples"] for i in s)
    assert json.loads(rep.model_dump_json())["top"][0]["location"]


def test_speedscope_stacks_follow_heaviest_callers() -> None:
    rows = [
        {"file": "w.py", "line": 1, "func": "workload", "calls": 1, "primitive_calls": 1,
         "own_s": 0.1, "cum_s": 1.0, "callers": []},
        {"file": "w.py", "line": 5, "func": "leaf", "calls": 3, "primitive_calls": 3,
         "own_s": 0.9, "cum_s": 0.9,
         "callers": [{"file": "w.py", "line": 1, "func": "workload", "calls": 3, "cum_s": 0.9}]},
    ]  # fmt: skip
    rep = report(rows)
    frames = [f["name"] for f in rep.speedscope["shared"]["frames"]]
    stacks = [[frames[i] for i in s] for s in rep.speedscope["profiles"][0]["samples"]]
    assert ["w.py:1(workload)", "w.py:5(leaf)"] in stacks
    assert rep.top[0].location == "w.py:5(leaf)" and rep.top[0].own_share == pytest.approx(0.9)


def test_memory_reports_the_workload_peak(tmp_path: Path) -> None:
    src = (
        "def workload():\n"
        "    x = bytearray(60 * 1024 * 1024)\n"
        "    x[::4096] = b'1' * len(x[::4096])\n"
    )
    repo = make_repo(tmp_path / "r", {"w.py": src})
    with _sandbox(repo) as sb:
        w = install(sb, Workload(kind="file", target="w.py"))
        mem = measure_memory(sb, w)
    assert mem.peak_rss_kb >= 60 * 1024
    assert mem.workload_rss_kb >= 50 * 1024
