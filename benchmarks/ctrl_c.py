"""How fast Ctrl-C gives the prompt back, and what it leaves, beside asv, in the same run.

A Ctrl-C in a terminal sends SIGINT to the whole foreground process group, so each tool is
started in a process group of its own and the signal goes to that group (``os.killpg``),
once the tool says it is measuring, plus ``--after`` seconds. Measured:

- seconds from the signal to the tool's exit (the prompt back), and its exit code;
- processes of its group still alive at that moment (a benchmark left running);
- for ``optimizer ci --sandbox docker``: its containers left at exit, and the seconds until
  its instance images are gone too (a detached process removes them after the exit,
  ``sandbox/reap.py``).

The project is made here unless ``--repo`` names one: a git repo of two commits with one
CPU-bound asv benchmark (``benchmarks/bench_busy.py``, about 0.25 s a call). asv runs the
benchmarks with ``-E existing`` (no environment to build: the asv's own Python must import
the project) and ``optimizer ci --base HEAD~1`` discovers the same files; ``--bench`` goes
to both (asv's ``-b``), ``--pip`` to ``optimizer ci``. Rounds alternate between the tools.
What a Ctrl-C costs grows with the tree: each sandbox's instance images hold a copy of it.

    python benchmarks/ctrl_c.py [--rounds 3] [--after 1] [--asv /venv/bin/asv]
    python benchmarks/ctrl_c.py --repo /work/real/rich --bench TextSuite \
        --pip pygments --pip markdown-it-py --asv /venv/bin/asv   # rich installed in /venv

``--asv`` must be an asv whose own Python has ``asv_runner`` (a virtualenv with asv).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = """def time_busy():
    total = 0
    for i in range(3_000_000):
        total += i * i
    return total
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def _project(where: Path) -> Path:
    repo = where / "busy"
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "benchmarks" / "__init__.py").write_text("")
    (repo / "benchmarks" / "bench_busy.py").write_text(BENCH)
    (repo / "asv.conf.json").write_text(json.dumps({
        "version": 1, "project": "busy", "repo": ".", "environment_type": "existing",
        "benchmark_dir": "benchmarks", "branches": ["HEAD"]}))  # fmt: skip
    (repo / "busy.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.name=b", "-c", "user.email=b@b", "add", "-A")
    _git(repo, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "one")
    (repo / "busy.py").write_text("x = 2\n")
    _git(repo, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "two")
    return repo


def _group_alive(pgid: int) -> int:
    alive = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            alive += int(fields[2]) == pgid and fields[0] != "Z"
    return alive


def _docker_ids(kind: str, owner: str) -> list[str]:
    """Ids of the containers (``ps``) or images (``images``) that ``owner`` made."""
    argv = ["docker", kind, "-aq", "--filter", f"label=optimizer.sandbox.owner={owner}"]
    return subprocess.run(argv, capture_output=True, text=True).stdout.split()


def _interrupt(argv, env, cwd, ready: str, after: float) -> dict:
    """Start ``argv`` in its own group; SIGINT the group ``after`` s past the ``ready`` line."""
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = threading.Event()
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if ready in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not seen.wait(600):
        proc.kill()
        raise SystemExit(f"error: {argv[0]} never printed {ready!r}: {''.join(lines)[-500:]}")
    time.sleep(after)
    if proc.poll() is not None:
        raise SystemExit(f"error: {' '.join(argv[:3])} ended before the signal; raise --budget")
    started = time.perf_counter()
    os.killpg(proc.pid, signal.SIGINT)
    rc = proc.wait()
    took = time.perf_counter() - started
    return {"rc": rc, "exit_s": took, "left_processes": _group_alive(proc.pid), "pid": proc.pid,
            "tail": "".join(lines[-2:]).strip()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--after", type=float, default=1.0, help="seconds into measuring")
    parser.add_argument("--asv", default=shutil.which("asv"))
    parser.add_argument("--repo", type=Path, help="a git repo with asv benchmarks (HEAD~1)")
    parser.add_argument("--bench", help="a regex of benchmarks, for both tools")
    parser.add_argument("--pip", action="append", default=[], help="for optimizer ci")
    args = parser.parse_args()
    if args.rounds < 1 or args.after < 0:
        raise SystemExit("error: --rounds must be 1 or more and --after 0 or more")
    if not args.asv:
        raise SystemExit("error: no asv found. Fix: pass --asv /path/to/venv/bin/asv")
    asv_python = str(Path(args.asv).parent / "python")
    host = socket.gethostname()
    work = Path(tempfile.mkdtemp(prefix="ctrl-c-"))
    try:
        repo = args.repo.resolve() if args.repo else _project(work)
        subprocess.run([args.asv, "machine", "--yes"], cwd=repo, capture_output=True, check=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        only = ["--bench", args.bench] if args.bench else []
        pips = [word for req in args.pip for word in ("--pip", req)]
        tools = {
            "asv run (existing env)": (
                [args.asv, "run", "-E", f"existing:{asv_python}", "--show-stderr",
                 *(["-b", args.bench] if args.bench else [])], "Benchmarking"),
            "optimizer ci --sandbox docker": (
                [sys.executable, "-m", "optimizer", "ci", str(repo), "--base", "HEAD~1",
                 "--sandbox", "docker", "--budget", "120", *only, *pips], "round 1,"),
        }  # fmt: skip
        results: dict[str, list[dict]] = {name: [] for name in tools}
        for _ in range(args.rounds):
            for name, (argv, ready) in tools.items():
                row = _interrupt(argv, env, repo, ready, args.after)
                if name.startswith("optimizer"):
                    owner = f"{host}:{row['pid']}"
                    row["containers"] = len(_docker_ids("ps", owner))
                    t0 = time.perf_counter()
                    while _docker_ids("images", owner) and time.perf_counter() - t0 < 60:
                        time.sleep(0.1)
                    row["images_gone_s"] = time.perf_counter() - t0
                    row["images"] = len(_docker_ids("images", owner))
                results[name].append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()[0]
    print(f"Ctrl-C (SIGINT to the process group) {args.after:g} s into measuring, "
          f"{args.rounds} rounds each ({os.cpu_count()} CPUs, load {load:.1f})")  # fmt: skip
    print(f"{'tool':<30} {'exit s (median, max)':>21} {'codes':>9} {'procs left':>10} "
          f"{'containers':>10} {'images gone after exit s':>25}")  # fmt: skip
    for name, rows in results.items():
        exits = [r["exit_s"] for r in rows]
        codes = ",".join(sorted({str(r["rc"]) for r in rows}))
        procs = max(r["left_processes"] for r in rows)
        if "images" in rows[0]:
            conts = str(max(r["containers"] for r in rows))
            gone = [r["images_gone_s"] for r in rows]
            left = max(r["images"] for r in rows)
            images = f"{statistics.median(gone):.2f} (max {max(gone):.2f})" + (
                f", {left} left" if left else ""
            )
        else:
            conts = images = "n/a"
        print(f"{name:<30} {statistics.median(exits):>12.2f}, {max(exits):>6.2f} {codes:>9} "
              f"{procs:>10} {conts:>10} {images:>25}")  # fmt: skip
    for name, rows in results.items():
        print(f"{name}: last lines: {rows[-1]['tail']!r}")


if __name__ == "__main__":
    main()
