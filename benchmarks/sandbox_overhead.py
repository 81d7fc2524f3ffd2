"""The cost of one sandboxed `true`, warm, in each backend, and of pristine runs.

    python benchmarks/sandbox_overhead.py [--runs 30] [--big-files 3000] [--big-mb 60]

Each backend is timed unsealed (runs share the tree) and sealed (every run starts from a
pristine copy of the tree: ``cp -a`` locally, a fresh container of the instance image in
docker), on a one-file repo and on a bigger one (``--big-files`` files, ``--big-mb`` MB).
The "pristine cost" column is the sealed median minus the unsealed one. Target: a median
under 0.5 s for docker. Prints one table row per backend, tree and mode.

With a Docker engine, a second table sets the two ways of making a sealed docker run
pristine side by side, on ``python3 -c pass`` (``--session-runs`` runs each): a fresh
container per run, and a ``docker exec`` per run in one :meth:`Sandbox.session`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sandbox import Source
from sandbox.engine import available
from sandbox.local_sandbox import LocalSandbox, bwrap_path

TARGET_S = {"docker": 0.5}


def make_repo(root: Path, name: str = "repo", files: int = 0, mb: int = 0) -> Path:
    repo = root / name
    repo.mkdir()
    (repo / "main.py").write_text("print('hi')\n")
    chunk = os.urandom(max(1, mb * 1024 * 1024 // max(files, 1)))
    for i in range(files):
        folder = repo / "pkg" / f"d{i % 50}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.bin").write_bytes(chunk)
    env = ["-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), *env, "commit", "-qm", "init"], check=True)
    return repo


def measure(sandbox, runs: int, sealed: bool) -> list[float]:
    if sealed:
        sandbox.seal()
    sandbox.run("true")  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = sandbox.run("true")
        times.append(time.perf_counter() - started)
        assert result.ok, result
    return times


def fresh_vs_session(source: Source, runs: int) -> Table:
    """Median cost of a sealed docker `python3 -c pass`: a fresh container vs a session exec,
    run by turns so that both see the same load."""
    from sandbox.docker_sandbox import DockerSandbox

    table = Table(title=f"docker, sealed: one `python3 -c pass`, warm, {runs} runs by turns")
    for col in ("mode", "median s", "p90 s", "min s", "duration_s", "overhead_s", "speed-up"):
        table.add_column(col)
    cmd = ["python3", "-c", "pass"]
    with DockerSandbox(source) as sb:
        sb.seal()
        with sb.session(writable=(".optimizer-out",)) as session:
            modes = {"fresh container": sb, "session exec": session}
            rows: dict[str, list] = {mode: [] for mode in modes}
            for i in range(runs + 1):  # the first round warms up
                for mode, sandbox in modes.items():
                    started = time.perf_counter()
                    result = sandbox.run(cmd)
                    assert result.ok, result
                    if i:
                        rows[mode].append((time.perf_counter() - started, result))
    fresh = statistics.median(t for t, _ in rows["fresh container"])
    for mode, got in rows.items():
        times = sorted(t for t, _ in got)
        median = statistics.median(times)
        table.add_row(
            mode, f"{median:.4f}", f"{times[int(0.9 * (len(times) - 1))]:.4f}", f"{times[0]:.4f}",
            f"{statistics.median(r.duration_s for _, r in got):.4f}",
            f"{statistics.median(r.overhead_s for _, r in got):.4f}", f"{fresh / median:.1f}x",
        )  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--big-files", type=int, default=3000)
    parser.add_argument("--big-mb", type=int, default=60)
    parser.add_argument("--session-runs", type=int, default=20)
    args = parser.parse_args()
    table = Table(title=f"sandbox overhead: one `true`, warm, {args.runs} runs")
    for col in ("backend", "tree", "mode", "median s", "p90 s", "min s", "pristine cost s"):
        table.add_column(col)
    table.add_column("target")
    with tempfile.TemporaryDirectory() as tmp:
        trees = {
            "1 file": Source(repo=make_repo(Path(tmp))),
            f"{args.big_files} files, {args.big_mb} MB": Source(
                repo=make_repo(Path(tmp), "big", args.big_files, args.big_mb)
            ),
        }
        backends = [("local (plain)", lambda s: LocalSandbox(s, confine=False))]
        if bwrap_path():
            backends.append(("local (bubblewrap)", lambda s: LocalSandbox(s, confine=True)))
        if available():
            from sandbox.docker_sandbox import DockerSandbox

            backends.append(("docker", DockerSandbox))
        for name, make in backends:
            for tree, source in trees.items():
                unsealed = 0.0
                for sealed in (False, True):
                    with make(source) as sb:
                        times = sorted(measure(sb, args.runs, sealed))
                    median = statistics.median(times)
                    target = TARGET_S.get(name)
                    verdict = "" if target is None else ("OK" if median < target else "SLOW")
                    table.add_row(
                        name, tree, "sealed" if sealed else "unsealed", f"{median:.4f}",
                        f"{times[int(0.9 * (len(times) - 1))]:.4f}", f"{times[0]:.4f}",
                        f"{median - unsealed:+.4f}" if sealed else "-",
                        f"< {target} {verdict}" if target else "-",
                    )  # fmt: skip
                    unsealed = median
        Console().print(table)
        if available():
            Console().print(fresh_vs_session(trees["1 file"], args.session_runs))


if __name__ == "__main__":
    main()
