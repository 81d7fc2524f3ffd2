"""The cost of one sandboxed `true`, warm, in each backend.

    python benchmarks/sandbox_overhead.py [--runs 30]

Target: a median under 0.5 s for docker. Prints one table row per backend.
"""

from __future__ import annotations

import argparse
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


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    (repo / "main.py").write_text("print('hi')\n")
    env = ["-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), *env, "commit", "-qm", "init"], check=True)
    return repo


def measure(sandbox, runs: int) -> list[float]:
    sandbox.run("true")  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = sandbox.run("true")
        times.append(time.perf_counter() - started)
        assert result.ok, result
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    table = Table(title=f"sandbox overhead: one `true`, warm, {args.runs} runs")
    for col in ("backend", "median s", "p90 s", "min s", "target", "verdict"):
        table.add_column(col)
    with tempfile.TemporaryDirectory() as tmp:
        source = Source(repo=make_repo(Path(tmp)))
        backends = [("local (plain)", lambda: LocalSandbox(source, confine=False))]
        if bwrap_path():
            backends.append(("local (bubblewrap)", lambda: LocalSandbox(source, confine=True)))
        if available():
            from sandbox.docker_sandbox import DockerSandbox

            backends.append(("docker", lambda: DockerSandbox(source)))
        for name, make in backends:
            with make() as sb:
                times = sorted(measure(sb, args.runs))
            median = statistics.median(times)
            target = TARGET_S.get(name)
            verdict = "" if target is None else ("OK" if median < target else "SLOW")
            table.add_row(
                name,
                f"{median:.4f}",
                f"{times[int(0.9 * (len(times) - 1))]:.4f}",
                f"{times[0]:.4f}",
                f"< {target}" if target else "-",
                verdict,
            )
    Console().print(table)


if __name__ == "__main__":
    main()
