"""How long the `optimizer` command takes to answer `--help`, beside asv and pytest.

Start-up is what a user waits for on every command (and the window in which a Ctrl-C meets
half-imported modules), so it is measured the way a user meets it: a fresh process each
time, the wall clock (``time.perf_counter``) around the whole process. Each round runs every
command once, in one order, so load that drifts over the run falls on all of them alike.

Compared, in the same run:

- ``optimizer --help`` and ``optimizer ci --help`` from this tree (``python -m optimizer``
  with the tree first on ``sys.path``), and from ``--rev REV`` (a ``git worktree`` of that
  revision) when given;
- ``asv --help`` and ``asv continuous --help`` (``--asv PATH``, default: ``asv`` on PATH):
  what a user of ``optimizer ci`` would otherwise run;
- ``pytest --help`` with pytest-benchmark installed (its plugin loads): the other choice.

    python benchmarks/cli_startup.py [--rounds 15] [--rev 6a2c2aa] [--asv /venv/bin/asv]

Prints one row per command: median, min and max of the rounds, in seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _optimizer(tree: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return [sys.executable, "-m", "optimizer", *args], env


def _time(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, cwd=tempfile.gettempdir())
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(argv)} exited {done.returncode}: {done.stderr[-300:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--rev", help="also time the optimizer at this revision")
    parser.add_argument("--asv", default=shutil.which("asv"), help="the asv executable")
    args = parser.parse_args()
    if args.rounds < 1:
        raise SystemExit("error: --rounds must be 1 or more")

    commands: dict[str, tuple[list[str], dict[str, str]]] = {}
    worktree = None
    if args.rev:
        worktree = Path(tempfile.mkdtemp(prefix="startup-")) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach",
                        str(worktree), args.rev], check=True)  # fmt: skip
        commands[f"optimizer --help ({args.rev})"] = _optimizer(worktree, "--help")
        commands[f"optimizer ci --help ({args.rev})"] = _optimizer(worktree, "ci", "--help")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    commands[f"optimizer --help ({head})"] = _optimizer(ROOT, "--help")
    commands[f"optimizer ci --help ({head})"] = _optimizer(ROOT, "ci", "--help")
    if args.asv:
        commands["asv --help"] = ([args.asv, "--help"], dict(os.environ))
        commands["asv continuous --help"] = ([args.asv, "continuous", "--help"], dict(os.environ))
    commands["pytest --help (pytest-benchmark)"] = (
        [sys.executable, "-m", "pytest", "--help"], dict(os.environ))  # fmt: skip

    try:
        for argv, env in commands.values():  # warm the page cache and .pyc files once
            _time(argv, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, (argv, env) in commands.items():
                times[name].append(_time(argv, env))
    finally:
        if worktree is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(worktree)], check=False)  # fmt: skip

    load = os.getloadavg()[0]
    print(f"start-up, wall clock of a fresh process, {args.rounds} rounds "
          f"({os.cpu_count()} CPUs, load average {load:.1f})")  # fmt: skip
    width = max(map(len, times))
    print(f"{'command':<{width}}  {'median s':>9}  {'min s':>7}  {'max s':>7}")
    for name, values in times.items():
        print(f"{name:<{width}}  {statistics.median(values):>9.3f}  {min(values):>7.3f}  "
              f"{max(values):>7.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
