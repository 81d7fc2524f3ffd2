"""The harness's own time per candidate in `optimizer run`, against doing it by hand.

    python benchmarks/run_overhead.py [--candidates 3] [--sandbox local|docker|both]
                                      [--repeats 2] [--budget 5] [--no-winner] [--keep]

A tiny git repository (one module, two fast pytest tests, a ``bench.py`` whose workload
is a few ms) is optimized by the real CLI (``python -m optimizer run``, in a subprocess,
``--rounds 0 --no-ideas`` and the given ``--repeats``, ``--budget``) against a scripted model
(``tests/chat_server.py``) that answers at once: every candidate is one ``edit`` and a
``submit``. The edits keep the tests passing; all but the last are neutral (a renamed
local), and the last removes a deliberate 5 ms sleep, so the run has a winner and goes
through confirmation and minimization (``--no-winner``: all neutral; in docker, where a
timed process costs more, 5 s of budget may not buy the 8 pairs a verdict needs, and the
run then ends with no winner). Model time is ~0 and
workload time is small, so what is left is the harness: sandboxes, installs, test runs,
process launches, statistics and bookkeeping.

The run's ``events.jsonl`` splits the wall time (columns, in seconds):

- ``startup``: from launching the CLI to its first model call (imports, the base's
  profile, the first workspace);
- ``agent/c``: per candidate, from the end of the previous candidate's grading (the first
  model call for c1) to its ``candidate`` record: workspace, tool runs in the sandbox;
- ``correct``, ``quick``, ``full``: the mean ``elapsed_s`` of each grading stage;
- ``confirm``, ``minim.``: the winner's steps (``-``: no winner, or one hunk to keep);
- ``pairs``: the timed base/candidate pairs of every measurement, all stages together;
- ``workload``: the workload's own share, estimated as every timed pair (2 processes) of
  every measurement times the host's median time of one workload process;
- ``harness/c``: (total - workload) / candidates, the harness's amortized time (startup and
  the winner's steps included);
- ``by hand``: the floor, what a person would pay per candidate: the tests once and the
  workload twice, timed on the host; ``x floor`` is harness/c over it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.engine import available  # noqa: E402
from tests.chat_server import ScriptedServer, call, reply  # noqa: E402

TESTS = "python3 -m pytest -q"
WORKLOAD = "import bench; bench.setup(); bench.workload()"
MODULE = '''\
"""Sums, slowly: the module the benchmark's scripted model edits."""

import time


def total(n):
    time.sleep(0.005)
    acc = 0
    for i in range(n):
        acc += i * 2
    return acc
'''
TEST_FILE = """\
from calc import total


def test_small():
    assert total(4) == 12


def test_zero():
    assert total(0) == 0
"""
BENCH = """\
from calc import total

N = 0


def setup():
    global N
    N = 5000


def workload():
    return total(N)
"""
LOOP = "    acc = 0\n    for i in range(n):\n        acc += i * 2\n    return acc\n"
SLEEP = "    time.sleep(0.005)\n"
#: A grade step saying the candidate's tests ran (not "not run again").
TESTED = re.compile(r"tests: \d+/\d+ passed")


def make_repo(dest: Path) -> Path:
    """The tiny repository, committed once."""
    (dest / "tests").mkdir(parents=True)
    (dest / "calc.py").write_text(MODULE)
    (dest / "tests" / "test_calc.py").write_text(TEST_FILE)
    (dest / "bench.py").write_text(BENCH)
    env = ["-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], [*env, "commit", "-qm", "calc"]):
        subprocess.run(["git", "-C", str(dest), *args], check=True, capture_output=True)
    return dest


def script(candidates: int, winner: bool) -> list[dict]:
    """Each candidate's conversation: one correct edit, then submit."""
    steps = []
    for k in range(1, candidates + 1):
        if winner and k == candidates:
            edit = call("edit", path="calc.py", search=SLEEP, replace="")
        else:
            edit = call("edit", path="calc.py", search=LOOP, replace=LOOP.replace("acc", f"a{k}"))
        steps += [reply("editing", [edit]), reply("submitting", [call("submit", summary="x")])]
    return steps


def timed(command: str, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, shell=True, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def by_hand(repo: Path, tries: int = 3) -> tuple[float, float]:
    """(the floor: tests once + the workload twice, one workload process), host medians."""
    workload = f'python3 -c "{WORKLOAD}"'
    timed(TESTS, repo)  # warm the file cache and __pycache__
    tests = statistics.median(timed(TESTS, repo) for _ in range(tries))
    one = statistics.median(timed(workload, repo) for _ in range(2 * tries + 1))
    return tests + 2 * one, one


def run_cli(repo: Path, runs: Path, backend: str, args: argparse.Namespace) -> dict:
    """Run `optimizer run` against the scripted model; its wall time, exit and run dir."""
    with ScriptedServer(script(args.candidates, not args.no_winner), model="scripted") as srv:
        argv = [
            sys.executable, "-m", "optimizer", "run", str(repo), "--workload", "bench.py",
            "--tests", TESTS, "--base-url", srv.base_url, "--model", "scripted",
            "--sandbox", backend, "--metric", "wall", "--no-ideas", "--rounds", "0",
            "--candidates", str(args.candidates), "--runs-dir", str(runs), "--no-commit",
            "--repeats", str(args.repeats), "--budget", str(args.budget), "--retries", "0",
        ]  # fmt: skip
        env = {**os.environ, "OPENAI_API_KEY": "", "OPTIMIZER_API_KEY": "", "COLUMNS": "160"}
        started = time.time()
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.time() - started
    dirs = [p for p in runs.iterdir() if (p / "events.jsonl").is_file()] if runs.is_dir() else []
    if not dirs:
        sys.exit(f"{backend}: no run directory (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return {"started": started, "wall": wall, "rc": done.returncode, "dir": dirs[0]}


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def analyse(run: dict, one_workload: float) -> dict:
    """Split the run's wall time by its event log."""
    events = [json.loads(line) for line in (run["dir"] / "events.jsonl").read_text().splitlines()]
    calls = [e for e in events if e["type"] == "model_call"]
    made = {e["id"]: e for e in events if e["type"] == "candidate"}
    grades = [e for e in events if e["type"] == "grade"]
    ended = next((e for e in events if e["type"] == "run_ended"), {})
    won = any(e["type"] == "winner" for e in events)
    first = min(e["t"] for e in calls) if calls else run["started"]
    agent = []
    for cid, cand in made.items():
        before = [g["t"] for g in grades if g["t"] <= cand["t"]]
        thread = [e["t"] for e in calls if e["thread"].split("~")[0] == cid]
        start = max(before) if before else min(thread, default=first)
        agent.append(cand["t"] - start)
    by_stage: dict[str, list[float]] = {}
    pairs = 0
    test_runs = sum(any(TESTED.match(s) for s in g["grade"].get("steps", [])) for g in grades)
    for g in grades:
        by_stage.setdefault(g["stage"], []).append(g["elapsed_s"])
        for w in (g["grade"].get("measurement") or {}).get("workloads", []):
            pairs += sum(m["pairs"] for m in w["metrics"] if m["metric"] == "wall")
    n = len(made) or 1
    workload = 2 * pairs * one_workload
    return {
        "candidates": len(made),
        "total": run["wall"],
        "startup": first - run["started"],
        "agent": mean(agent),
        **{stage: mean(by_stage.get(stage, [])) for stage in ("correctness", "quick", "full")},
        "confirm": sum(by_stage["confirm"]) if "confirm" in by_stage else None,
        "minimize": sum(by_stage["minimize"]) if "minimize" in by_stage else None,
        "workload": workload,
        "test_runs": test_runs,
        "harness": (run["wall"] - workload) / n,
        "pairs": pairs,
        "ended": "winner" if won else ended.get("reason", f"exit {run['rc']}"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--sandbox", default="local", choices=["local", "docker", "both"])
    parser.add_argument("--repeats", type=int, default=2, help="optimizer run --repeats")
    parser.add_argument("--budget", type=float, default=5.0, help="optimizer run --budget")
    parser.add_argument("--no-winner", action="store_true", help="every edit neutral")
    parser.add_argument("--keep", action="store_true", help="keep the temporary repo and runs")
    args = parser.parse_args()
    backends = ["local", "docker"] if args.sandbox == "both" else [args.sandbox]
    notes = []
    if "docker" in backends and not available():
        backends.remove("docker")
        notes.append("docker skipped: no Docker engine answers")
    tmp = Path(tempfile.mkdtemp(prefix="run-overhead-"))
    repo = make_repo(tmp / "calc")
    floor, one = by_hand(repo)
    table = Table(title=f"`optimizer run` harness time, {args.candidates} candidates (seconds)")
    columns = (
        "backend", "cands", "total", "startup", "agent/c", "correct", "quick", "full",
        "confirm", "minim.", "pairs", "workload", "harness/c", "by hand", "x floor", "ended",
    )  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col in ("backend", "ended") else "right")
    rows = []
    for backend in backends:
        print(f"running {backend} ...", file=sys.stderr, flush=True)
        run = run_cli(repo, tmp / f"runs-{backend}", backend, args)
        r = analyse(run, one)
        rows.append((backend, r))

        def f(value: float | None) -> str:
            return "-" if value is None else f"{value:.2f}"

        table.add_row(
            backend, str(r["candidates"]), f(r["total"]), f(r["startup"]), f(r["agent"]),
            f(r["correctness"]), f(r["quick"]), f(r["full"]), f(r["confirm"]),
            f(r["minimize"]), str(r["pairs"]), f(r["workload"]), f(r["harness"]), f(floor),
            f"{r['harness'] / floor:.0f}x", r["ended"],
        )  # fmt: skip
    console = Console(width=max(Console().width, 170))
    console.print(table)
    for note in notes:
        console.print(note)
    for backend, r in rows:
        stages = sum(r[s] or 0.0 for s in ("correctness", "quick", "full"))
        console.print(
            f"{backend}: {r['harness']:.1f} s of harness per candidate against {floor:.2f} s by "
            f"hand ({r['harness'] / floor:.0f}x); its grading stages take {stages:.1f} s "
            f"({r['correctness'] or 0:.1f} + {r['quick'] or 0:.1f} + {r['full'] or 0:.1f}), "
            f"the agent phase {r['agent'] or 0:.2f} s, startup {r['startup']:.1f} s once; "
            f"the candidates' tests ran {r['test_runs']} times (by hand: {r['candidates']})."
        )
    if args.keep:
        console.print(f"kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
