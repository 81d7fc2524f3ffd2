"""The warm measurement protocol: steady-state timing, and the caches it must not credit.

Warm timing runs the workload many times in one process, which opens a door cold timing
keeps shut: a candidate that remembers results across calls. Each cheat below is a patch
to the built-in ``spans`` task that does the same work as the base on the first call and
remembers it for the next: none may be credited. The expert patch (a real algorithmic fix)
must be, under warm as under cold.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from profilers import Protocol, Workload, install, measure_instructions, measure_wall
from profilers.compare import Sampler, warm_check
from sandbox import Source, open_sandbox
from tasks.grade import Candidate, GradeOptions, GradeStatus, grade
from tasks.model import Task, load_task
from tests.test_builtin_suite import TASKS, make_patch
from tests.test_exploits import small_spans

SPANS = TASKS["spans"]
ALL = "__all__ = ["

#: Each cheat wraps the three public functions the workload calls once per call, in
#: spans/__init__.py (the library's own calls to merge stay unwrapped, so nothing is reused
#: within a call): the first call does all the work, later ones only look it up.
CHEATS = {
    # an lru_cache on the hot path (intervals are hashable: a tuple of them is a key)
    "lru_cache": """import functools as _functools


def _remember(fn):
    cached = _functools.lru_cache(maxsize=None)(lambda key, *rest: fn(list(key), *rest))
    return lambda intervals, *rest: cached(tuple(intervals), *rest)


merge, total_length, gaps = _remember(merge), _remember(total_length), _remember(gaps)

""",
    # a module-level dict keyed by the input's value
    "module-dict": """_MEMO = {}


def _remember(fn):
    def wrapper(intervals, *rest):
        items = list(intervals)
        key = (fn.__name__, tuple(items), rest)
        if key not in _MEMO:
            _MEMO[key] = fn(items, *rest)
        return _MEMO[key]

    return wrapper


merge, total_length, gaps = _remember(merge), _remember(total_length), _remember(gaps)

""",
    # a memo on the argument object: the workload passes the same list object each call
    "memo-on-argument": """_LAST = {}


def _remember(fn):
    def wrapper(intervals, *rest):
        if type(intervals) is not list:
            return fn(intervals, *rest)
        key, seen = (fn.__name__, id(intervals), rest), tuple(intervals)
        hit = _LAST.get(key)
        if hit is None or hit[0] != seen:
            hit = _LAST[key] = (seen, fn(intervals, *rest))
        return hit[1]

    return wrapper


merge, total_length, gaps = _remember(merge), _remember(total_length), _remember(gaps)

""",
}


def cheat_patch(task: Task, name: str) -> str:
    return make_patch(task, {"spans/__init__.py": (ALL, CHEATS[name] + ALL)})


def warm(**extra) -> GradeOptions:
    return GradeOptions(backend="local", protocol="warm", metric="wall", hidden=False, **extra)


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_a_cache_across_calls_is_not_credited_warm(name):
    g = grade(SPANS, Candidate(patch=cheat_patch(SPANS, name)), warm(budget_s=40))
    assert g.status == GradeStatus.OK, g.reason  # the results are right: only speed is at stake
    m = g.measurement
    assert m is not None and m.protocol == "warm"
    # Remembered, the later calls would be hundreds of times faster. What is left is the
    # same work with a wrapper around it: a few percent either way, which a wall-clock
    # verdict at alpha 0.005 may still call on a machine with its own biases (CI once read
    # the cleared lru_cache 1.037x [1.019, 1.061]), so the bound is on the size of the gain
    # the measurement vouches for, its CI's low end (under load the memo read 1.10x
    # [0.89, 1.23] inconclusive: nothing credited).
    assert m.ci[0] < 1.1, (name, m.verdict, m.speedup, m.ci, m.caching)
    if name != "lru_cache":  # the lru_cache is cleared between calls: nothing to flag
        assert m.caching and "keeps results across calls" in m.caching, m.caching
    json.loads(g.model_dump_json())  # the grade JSON carries it all


def test_the_expert_is_credited_warm_and_its_cold_reading_is_beside_it():
    g = grade(SPANS, Candidate(patch=SPANS.file(SPANS.expert.patch).read_text()), warm())
    assert g.status == GradeStatus.OK, g.reason
    m = g.measurement
    assert m.verdict == "faster" and m.speedup > 3, m.reading()
    assert m.caching is None
    assert m.cold_speedup is not None and m.cold_speedup > 1.5
    assert m.protocol == "warm" and "median of 10 calls" in m.protocol_label
    data = json.loads(g.model_dump_json())["measurement"]
    assert data["protocol"] == "warm" and data["cold_speedup"] == m.cold_speedup
    assert "(warm)" in m.reading()


def _read(sampler: Sampler, later: float, first: float, n: int = 5) -> list[float]:
    """Fill a sampler's warm readings by hand: n processes, each with that first call."""
    sampler.first[:] = [first] * n
    sampler.cold[:] = [first + 0.05] * n  # import + setup + the first call
    return [later] * n


def _caching(
    b: Sampler, h: Sampler, base: tuple, head: tuple, base_first: list[float] | None = None
) -> str | None:
    """warm_check's verdict on two sides' (later call, first call) times, in seconds
    (``base_first``: the base's first call per process, when they differ)."""
    bs, hs = _read(b, *base), _read(h, *head)
    if base_first:
        b.first[:] = base_first
    cold, caching = warm_check(b, h, bs, hs, warm_ratio=hs[0] / bs[0], floor=0.01,
                               alpha=0.01, paired=True)  # fmt: skip
    assert cold is not None and cold.first_factor[1] == pytest.approx(head[1] / head[0])
    return caching


def test_warm_up_on_a_fast_candidate_is_not_a_cache_but_a_cache_is(tmp_path):
    with _sandbox(tmp_path, {"w.py": "def workload():\n    return 1\n"}) as sb:
        wl = install(sb, Workload(kind="file", target="w.py"))
        b, h = (Sampler(n, sb, wl, protocol=Protocol(name="warm")) for n in ("base", "head"))
        base = (0.250, 0.2625)  # 250 ms a call, its first 12.5 ms (1.05x) slower
        # what a CI machine measured for the spans expert: 9 ms a call, the first 1.41x
        # slower (3.7 ms of warm-up, less than the base's 12.5 ms): no cache
        assert _caching(b, h, base, (0.009, 0.0127)) is None
        # a whole-result cache: the first call does the base's work, the later ones none
        assert "keeps results across calls" in (_caching(b, h, base, (0.0005, 0.25)) or "")
        # the expert's code plus a cache of a tenth of the base's work: 25 ms more on call one
        assert "keeps results across calls" in (_caching(b, h, base, (0.009, 0.034)) or "")
        # a long call with a small one-time excess: neither test fires
        assert _caching(b, h, base, (0.200, 0.205)) is None
        # what CI read under load: the base's first calls 4.5% faster than its later ones
        # (11 ms), the expert's first 1.34x slower (2.5 ms of warm-up): no cache
        loaded = (0.250, 0.239)
        assert _caching(b, h, loaded, (0.0072, 0.0097)) is None
        # against that base, the whole-result cache and the tenth-of-the-work cache still are
        assert "keeps results across calls" in (_caching(b, h, loaded, (0.0005, 0.25)) or "")
        assert "keeps results across calls" in (_caching(b, h, loaded, (0.009, 0.034)) or "")
        # a base whose first calls wander (+-20 ms around a 12.5 ms warm-up) over 5
        # processes: the median's uncertainty (~2 x 9 ms) covers a 20 ms excess on a 40 ms
        # call (1.5x), not 38 ms (1.95x)
        wander = [0.2625 + d for d in (-0.02, -0.01, 0.0, 0.01, 0.02)]
        assert _caching(b, h, base, (0.040, 0.060), wander) is None
        assert "keeps results across calls" in (_caching(b, h, base, (0.040, 0.078), wander) or "")
        # ... and whatever that uncertainty, a first call over twice the later ones is a
        # cache (CI under load read a memo on a 20 us call as 12.8x against a base excess of
        # -46 us, whose uncertainty was wider than the whole 0.2 ms it saved)
        memo = (0.0000192, 0.000227)
        assert "keeps results across calls" in (_caching(b, h, base, memo, wander) or "")


def test_the_task_setting_and_the_flag_choose_the_protocol(tmp_path):
    task = small_spans(tmp_path)
    assert task.workload.timing().name == "cold"
    text = (task.root / "task.toml").read_text()
    assert text.count('"workload" = {') == 1
    text = text.replace(
        '"workload" = {', '"workload" = {protocol = "warm", calls = 5, warmup = 1, '
    )
    (task.root / "task.toml").write_text(text)
    warm_task = load_task(task.root)
    assert warm_task.workload.timing() == Protocol(name="warm", calls=5, warmup=1)
    assert warm_task.workload.timing("cold").name == "cold"
    opts = GradeOptions(backend="local", metric="wall", hidden=False, repeats=3, max_repeats=3)
    m = grade(warm_task, Candidate(patch=""), opts).measurement
    assert m.protocol == "warm" and m.protocol_label.startswith("warm (median of 5 calls")
    raw = m.workloads[0].metrics[0].base_raw_ns
    assert raw and all(len(r) == 5 for r in raw)
    opts = opts.model_copy(update={"protocol": "cold"})
    m = grade(warm_task, Candidate(patch=""), opts).measurement
    assert m.protocol == "cold" and m.cold_speedup is None and m.region == "total"


def _sandbox(tmp_path, files: dict[str, str]):
    repo = tmp_path / "w"
    repo.mkdir()
    for rel, text in files.items():
        (repo / rel).write_text(text)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "w"], check=True)
    return open_sandbox(Source(repo=repo, rev="HEAD"), "local")


CALLS = """
import functools

@functools.lru_cache(maxsize=None)
def slow(n):
    return sum(i * i for i in range(n))

DATA = {}

def setup():
    DATA["n"] = 200_000

def workload():
    return slow(DATA["n"])
"""


def test_warm_timing_clears_the_code_under_tests_caches_and_calls_setup_each_time(tmp_path):
    with _sandbox(tmp_path, {"w.py": CALLS}) as sb:
        wl = install(sb, Workload(kind="file", target="w.py"))
        run = measure_wall(sb, wl, protocol=Protocol(name="warm", warmup=2, calls=4))
    assert len(run.samples_ns) == 4 and run.first_ns is not None
    assert run.caches == ["optimizer_workload.slow"]
    # every timed call computed again (the cache was cleared before it)
    assert sorted(run.samples_ns)[2] > 0.3 * run.first_ns
    assert run.cold_s is not None and run.cold_s >= run.first_ns / 1e9


def test_a_result_that_changes_from_call_to_call_is_an_error(tmp_path):
    text = "N = []\n\ndef workload():\n    N.append(1)\n    return len(N)\n"
    with _sandbox(tmp_path, {"w.py": text}) as sb:
        wl = install(sb, Workload(kind="file", target="w.py"))
        with pytest.raises(Exception, match="changed from call to call"):
            measure_wall(sb, wl, protocol=Protocol(name="warm", warmup=1, calls=3))


def test_warm_instruction_counts_keep_the_first_call_beside_the_counted_one(tmp_path):
    memo = (
        "MEMO = {}\n\ndef setup():\n    pass\n\ndef workload():\n    if 'r' not in MEMO:\n"
        "        MEMO['r'] = sum(i * i for i in range(30_000))\n    return MEMO['r']\n"
    )
    with _sandbox(tmp_path, {"w.py": memo}) as sb:
        wl = install(sb, Workload(kind="file", target="w.py"))
        run = measure_instructions(sb, wl, protocol=Protocol(name="warm", warmup=2, calls=1))
        cold = measure_instructions(sb, wl)
    assert run.first_instructions is not None
    assert run.first_instructions > 10 * run.instructions  # the memo made later calls free
    assert abs(cold.instructions - run.first_instructions) < 0.2 * cold.instructions


# -- an imported SWE-fficiency-style task: its benchmark's protocol by default ----------------
LIB = '''def pairs(values):
    """How many pairs (i < j) have values[i] + values[j] == 0."""
    count = 0
    for i, a in enumerate(values):
        for b in values[i + 1 :]:
            if a + b == 0:
                count += 1
    return count
'''
FAST = '''def pairs(values):
    """How many pairs (i < j) have values[i] + values[j] == 0."""
    from collections import Counter

    seen, count = Counter(), 0
    for a in values:
        count += seen[-a]
        seen[a] += 1
    return count
'''
TEST = "from lib import pairs\n\n\ndef test_pairs():\n    assert pairs([1, -1, 2, -2, 0, 0]) == 3\n"
SCRIPT = """import random
import statistics
import timeit

import lib

VALUES = []


def setup():
    rng = random.Random(3)
    VALUES[:] = [rng.randint(-300, 300) for _ in range(700)]


def workload():
    return lib.pairs(VALUES)


runtimes = timeit.repeat(workload, number=1, repeat=7, setup=setup)
print("Mean:", statistics.mean(runtimes))
print("Std Dev:", statistics.stdev(runtimes))
"""


def imported_task(tmp_path, monkeypatch) -> Task:
    from tasks.importers.common import unified_diff
    from tasks.source import with_repo
    from tasks.suite import load_suite
    from tests.conftest import git

    monkeypatch.setenv("OPTIMIZER_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "proj"
    (repo / "tests").mkdir(parents=True)
    (repo / "lib.py").write_text(LIB)
    (repo / "tests" / "test_lib.py").write_text(TEST)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    row = {
        "repo": "example/proj", "instance_id": "example__proj-1",
        "base_commit": git(repo, "rev-parse", "HEAD"), "workload": SCRIPT,
        "patch": unified_diff("lib.py", LIB, FAST), "speedup": 30.0,
        "covering_tests": ["tests/test_lib.py"], "test_cmd": "python3 -m pytest -q",
        "PASS_TO_PASS": ["tests/test_lib.py::test_pairs"],
    }  # fmt: skip
    data = tmp_path / "swefficiency.jsonl"
    data.write_text(json.dumps(row) + "\n")
    [task] = load_suite(str(data))
    return with_repo(task, repo)


def test_an_imported_swefficiency_task_is_graded_warm_and_its_grade_json_says_so(
    tmp_path, monkeypatch
):
    task = imported_task(tmp_path, monkeypatch)
    assert task.workload.protocol == "warm" and task.workload.calls == 7
    opts = GradeOptions(backend="local", metric="wall", budget_s=30)
    g = grade(task, Candidate(patch=task.file("expert.patch").read_text()), opts)
    assert g.status == GradeStatus.OK, g.reason
    data = json.loads(g.model_dump_json())["measurement"]
    assert data["protocol"] == "warm"
    assert data["protocol_label"] == "warm (median of 7 calls after 1 warm-up)"
    assert data["rule"].startswith("warm: ")
    assert data["verdict"] == "faster" and data["caching"] is None
    assert all(len(r) == 7 for r in data["workloads"][0]["metrics"][0]["base_raw_ns"])
    # the script's own timeit.repeat loop did not run at import: a memo cheat is not warmed
    memo = FAST.replace("def pairs(values):", "_SEEN = {}\n\n\ndef _pairs(values):") + (
        "\n\ndef pairs(values):\n    key = tuple(values)\n    if key not in _SEEN:\n"
        "        _SEEN[key] = _pairs(values)\n    return _SEEN[key]\n"
    )
    from tasks.importers.common import unified_diff

    cheat = unified_diff("lib.py", LIB, memo.replace(FAST.splitlines()[0], "", 0))
    g = grade(task, Candidate(patch=cheat), opts)
    assert g.status == GradeStatus.OK, g.reason
    m = g.measurement
    assert m.caching and "keeps results across calls" in m.caching
    assert m.cold_speedup is not None and abs(m.speedup - m.cold_speedup) < 1e-9


def test_validate_compares_the_declared_speedup_only_under_the_same_protocol(tmp_path, monkeypatch):
    from tasks.validate import validate_task

    task = imported_task(tmp_path, monkeypatch)  # declares 30x, SWE-fficiency's: warm
    v = validate_task(task, GradeOptions(backend="local", metric="wall", budget_s=20))
    assert v.status == "ok", v.reason
    assert v.protocol == "warm" and v.declared_protocol == "warm"
    assert v.consistent is not None
    assert "declared 30x (warm) is " in v.agreement and "the measured 95% CI" in v.agreement
    cold = GradeOptions(backend="local", metric="wall", budget_s=20, protocol="cold")
    v = validate_task(task, cold)
    assert v.protocol == "cold" and v.consistent is None
    assert "not compared (validate with --protocol warm)" in v.agreement
