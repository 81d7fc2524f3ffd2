"""The timed region and the clocks: work moved out of workload() is still timed, and a
workload that fools the clock inside its own process does not come out faster.

These work below the grader (profilers.compare), on real git repos, real subprocesses and
the local sandbox, so that the cheats reach the harness even where the static guard would
have refused their patch first. No timings are asserted: the counts are deterministic and
the cheats are large.
"""

from __future__ import annotations

import pytest

from profilers import Workload, install, measure_instructions, measure_wall
from profilers.common import ProfileError
from profilers.compare import Sampler, compare_metric
from sandbox import Limits, Source, open_sandbox
from tests.test_profilers import make_repo

WORK = "def compute(n):\n    return sum(i * i % 7 for i in range(n))\n"
BENCH = "import lib\n\ndef setup():\n    pass\n\ndef workload():\n    return lib.compute(300_000)\n"
#: The same work done at import time, the answer stored for the workload's call.
AT_IMPORT = (
    WORK
    + "_ANSWER = compute(300_000)\n_real = compute\ndef compute(n):\n"
    + ("    return _ANSWER if n == 300_000 else _real(n)\n")
)
#: Rebinds the harness's clock (it runs as __main__) to one that runs 100x slow from now on.
FAKE_CLOCK = WORK + (
    "import sys\n_main = sys.modules['__main__']\n"
    "if hasattr(_main, '_clock'):\n"
    "    _real = _main._clock\n    _t0 = _real()\n"
    "    _main._clock = lambda: _t0 + (_real() - _t0) // 100\n"
)


def _pair(tmp_path, head_lib: str, region: str, bench: str = BENCH):
    base = make_repo(tmp_path / "base", {"lib.py": WORK, "bench.py": bench})
    head = make_repo(tmp_path / "head", {"lib.py": head_lib, "bench.py": bench})
    out = []
    for name, repo in (("base", base), ("head", head)):
        sb = open_sandbox(Source(repo=repo), "local", limits=Limits(wall_s=120))
        w = install(sb, Workload(kind="file", target="bench.py"))
        sb.seal()
        out.append(Sampler(name, sb, w, region=region))
    return out


def test_import_time_work_is_timed_in_the_total_region(tmp_path):
    base, head = _pair(tmp_path, AT_IMPORT, "total")
    try:
        fooled = measure_wall(head.sb, head.workload, region="workload")
        honest = measure_wall(head.sb, head.workload, region="total")
        assert honest.import_ns > 20 * max(1, fooled.samples_ns[0])  # the work sits in import
        counted = compare_metric("instructions", base, head, budget_s=60)
        assert counted.deterministic or counted.pairs >= 3
        assert counted.speedup < 1.05, counted  # the same work, moved: no gain to speak of
    finally:
        base.sb.close()
        head.sb.close()


def test_the_workload_region_alone_would_have_been_fooled(tmp_path):
    """The control: timing workload() alone calls the import-time cheat much faster."""
    base, head = _pair(tmp_path, AT_IMPORT, "workload")
    try:
        counted = compare_metric("instructions", base, head, budget_s=60)
        assert counted.verdict == "faster" and counted.speedup > 10
    finally:
        base.sb.close()
        head.sb.close()


def test_a_fake_clock_in_the_workload_process_is_caught_by_the_host_clock(tmp_path):
    heavier = BENCH.replace("300_000", "3_000_000")  # the saving stands out of process noise
    base, head = _pair(tmp_path, FAKE_CLOCK, "total", heavier)
    try:
        faked = measure_wall(head.sb, head.workload, region="total")
        real = measure_wall(base.sb, base.workload, region="total")
        assert faked.seconds < real.seconds / 4  # the cheat works on the in-process clock...
        result = compare_metric("wall", base, head, pairs=(10, 10), budget_s=60)
        assert result.ratio < 0.25  # ...which reads it as >4x faster,
        assert result.clocks and result.clocks.startswith("disagree"), result.clocks
        assert result.verdict == "inconclusive"  # but the host's clock does not agree
    finally:
        base.sb.close()
        head.sb.close()


def test_cutting_the_callgrind_region_short_is_refused(tmp_path):
    cheat = WORK.replace(
        "    return", "    import os\n    os.getpriority(os.PRIO_PROCESS, 0)\n    return"
    )
    repo = make_repo(tmp_path / "r", {"lib.py": cheat, "bench.py": BENCH})
    with open_sandbox(Source(repo=repo), "local", limits=Limits(wall_s=120)) as sb:
        w = install(sb, Workload(kind="file", target="bench.py"))
        with pytest.raises(ProfileError, match="getpriority"):
            measure_instructions(sb, w, region="total")
    resetting = WORK.replace("    return", "    import os\n    os.getsid(0)\n    return")
    repo = make_repo(tmp_path / "s", {"lib.py": resetting, "bench.py": BENCH})
    base = make_repo(tmp_path / "b", {"lib.py": WORK, "bench.py": BENCH})
    counts = []
    for r in (base, repo):
        with open_sandbox(Source(repo=r), "local", limits=Limits(wall_s=120)) as sb:
            w = install(sb, Workload(kind="file", target="bench.py"))
            counts.append(measure_instructions(sb, w, region="total").instructions)
    assert counts[1] >= counts[0]  # zeroing the counters mid-region no longer hides work


#: An honest algorithmic speedup: i*i % 7 repeats every 7 values.
CLOSED_FORM = (
    "def compute(n):\n"
    "    pattern = [i * i % 7 for i in range(7)]\n"
    "    return n // 7 * sum(pattern) + sum(pattern[: n % 7])\n"
)


def test_an_honest_speedup_is_seen_by_both_clocks(tmp_path):
    heavier = BENCH.replace("300_000", "3_000_000")
    base, head = _pair(tmp_path, CLOSED_FORM, "total", heavier)
    try:
        result = compare_metric("wall", base, head, pairs=(10, 10), budget_s=60)
        assert result.clocks == "agree", result.clocks
    finally:
        base.sb.close()
        head.sb.close()
