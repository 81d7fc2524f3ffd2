"""Many benchmarks' instruction counts in one callgrind process (``count_batch``): each
region counted apart, deterministically, failures kept to their own benchmark, and a step
that hangs stopped and named. Real valgrind, real subprocesses, the local sandbox."""

from __future__ import annotations

import time

import pytest

from profilers import Workload, install
from profilers.common import ProfileError
from profilers.instructions import BatchTarget, count_batch
from sandbox import Limits, Source, open_sandbox

FILES = {
    "small.py": "def workload():\n    return sum(i * i for i in range(2000))\n",
    "big.py": "def workload():\n    return sum(i * i for i in range(20000))\n",
    "broken.py": "def setup():\n    raise ValueError('no setup')\n\ndef workload():\n    pass\n",
    "child.py": (
        "import subprocess, sys\n\ndef workload():\n"
        "    subprocess.run([sys.executable, '-c', 'sum(range(300000))'], check=True)\n"
    ),
    "driven.py": (
        "def drive(region):\n"
        "    for n in (1000, 4000):\n"
        "        region(f'sum[{n}]', lambda: sum(range(n)))\n"
        "    region.failed('sum[bad]', 'assert 1 == 2')\n"
    ),
    "hang.py": "def workload():\n    while True:\n        pass\n",
    "marker.py": "import os\n\ndef workload():\n    os.getpriority(os.PRIO_PROCESS, 0)\n",
}


@pytest.fixture
def sandbox(make_repo):
    repo = make_repo(FILES)
    with open_sandbox(Source(repo=repo, rev="HEAD"), "local", limits=Limits(wall_s=600)) as sb:
        install(sb, Workload(kind="command", target="true"))
        sb.seal()
        yield sb


def _targets(*names: str) -> list[BatchTarget]:
    return [BatchTarget(name=n, target=f"{n}.py") for n in names]


def test_each_region_is_counted_apart_and_the_same_twice(sandbox) -> None:
    targets = _targets("small", "big", "broken", "child", "driven")
    first = count_batch(sandbox, targets, step_timeout_s=300)
    again = count_batch(sandbox, targets, step_timeout_s=300)
    assert first.counts == again.counts  # deterministic: PYTHONHASHSEED=0, ASLR off
    c = first.counts
    assert set(c) == {"small", "big", "child", "sum[1000]", "sum[4000]"}
    assert 5 < c["big"] / c["small"] < 15  # ten times the loop, give or take the call
    assert c["sum[4000]"] > c["sum[1000]"]
    # the child process's work is counted for the benchmark that started it, not the next
    assert c["child"] > 3 * c["big"]
    assert first.errors["broken"] == "ValueError: no setup"
    assert first.errors["sum[bad]"] == "assert 1 == 2"
    assert first.stuck is None


def test_counts_are_the_same_with_instrumentation_off_outside_the_regions(sandbox) -> None:
    """Callgrind's instrumentation runs only inside the regions (x86-64): start-up, imports
    and setups at Valgrind's 4x, not 30x; the counts do not change, warm-up calls included."""
    targets = _targets("small", "big", "driven")
    on = count_batch(sandbox, targets, step_timeout_s=300, toggle=False, warmup=1)
    toggled = count_batch(sandbox, targets, step_timeout_s=300, warmup=1)
    assert toggled.counts == on.counts
    assert min(on.counts.values()) > 0


def test_a_step_that_hangs_is_stopped_named_and_the_rest_kept(sandbox) -> None:
    started = time.monotonic()
    got = count_batch(sandbox, _targets("small", "hang", "big"), step_timeout_s=10)
    assert time.monotonic() - started < 300
    assert got.phase == "measuring hang"
    assert (got.stuck or "").startswith("measuring hang took more than 1")  # 10 s, 11 s
    assert set(got.counts) == {"small"}  # counted before the hang; big never reached


def test_a_workload_that_calls_the_marker_is_refused(sandbox) -> None:
    with pytest.raises(ProfileError, match="getpriority"):
        count_batch(sandbox, _targets("small", "marker"), step_timeout_s=300)
