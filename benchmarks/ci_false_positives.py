"""Does `optimizer ci` cry wolf? A/A false positives under load, and 3% detection.

Makes a throwaway git repository with two benchmarks and three revisions (base, an
identical copy, one where a benchmark does 3% more work), then runs the whole `ci` gate
(`optimizer.ci.run_ci`, as the command does) many times and prints a table:

- A/A (base vs its identical copy), default metric (instructions gate, wall confirms),
  with a CPU-hog process in the background for half of the runs. Target: 0 confirmed
  regressions; the loaded runs may say `inconclusive`.
- a 3% slowdown with `--metric instructions`. Target: detected (exit 1, the right
  benchmark alone) every time.

    .venv/bin/python benchmarks/ci_false_positives.py [--runs 20] [--sandbox local|docker]
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from optimizer.bench import machine_info  # noqa: E402
from optimizer.ci import CIConfig, run_ci  # noqa: E402

PYPROJECT = """
[tool.optimizer.benchmarks.tokenize]
workload = "bench/tokenize.py"

[tool.optimizer.benchmarks.checksum]
workload = "bench/checksum.py"
"""
LIB = """
def tokenize(n={tokenize}):
    words = []
    for i in range(n):
        words.extend(f"w{{i % 97}} x{{i}}".split())
    return len(words)

def checksum(n={checksum}):
    total = 0
    for i in range(n):
        total = (total * 31 + i) % 1000003
    return total
"""
BENCH = "from lib import {name}\n\ndef workload():\n    {name}()\n"
SIZES = {"tokenize": 6000, "checksum": 30000}
GIT = ["git", "-c", "user.email=n@example.com", "-c", "user.name=n"]


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    (repo / "bench").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "pyproject.toml").write_text(PYPROJECT)
    for name in SIZES:
        (repo / "bench" / f"{name}.py").write_text(BENCH.format(name=name))
    slow = {**SIZES, "checksum": round(SIZES["checksum"] * 1.03)}
    for sizes in (SIZES, SIZES, slow):  # base, identical copy, 3% more work in checksum
        (repo / "lib.py").write_text(LIB.format(**sizes))
        subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
        subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", "c", "--allow-empty"], check=True)
    return repo


def hog() -> None:
    while True:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20, help="Runs per scenario.")
    ap.add_argument("--budget", type=float, default=10.0, help="Seconds per benchmark/metric.")
    ap.add_argument("--sandbox", choices=["local", "docker"], default="local")
    args = ap.parse_args()
    console = Console(highlight=False, width=140)
    t_all = time.monotonic()
    table = Table(title=f"optimizer ci: false positives and detection ({args.sandbox})")
    for col in ("scenario", "metric", "runs", "regressions called", "inconclusive",
                "exit codes", "target", "time"):  # fmt: skip
        table.add_column(col)
    with tempfile.TemporaryDirectory(prefix="optimizer-cifp-") as tmp:
        repo = make_repo(Path(tmp))
        half = args.runs // 2
        scenarios = (
            ("A/A, quiet", "both", "HEAD~1", args.runs - half, False, "0 regressions"),
            ("A/A, CPU hog", "both", "HEAD~1", half, True, "0 regressions"),
            ("3% slowdown", "instructions", "HEAD", args.runs, False, "100% detected"),
        )
        for name, metric, head, runs, loaded, target in scenarios:
            t0 = time.monotonic()
            codes: collections.Counter[int] = collections.Counter()
            regressions = inconclusive = 0
            for _ in range(runs):
                hog_proc = multiprocessing.Process(target=hog, daemon=True) if loaded else None
                if hog_proc:
                    hog_proc.start()
                try:
                    record = run_ci(
                        CIConfig(
                            repo=repo,
                            base="HEAD~2",
                            head=head,
                            metric=metric,
                            sandbox=args.sandbox,
                            budget_s=args.budget,
                            hotspots=False,
                        )  # fmt: skip
                    )
                finally:
                    if hog_proc:
                        hog_proc.terminate()
                        hog_proc.join()
                codes[record.exit_code] += 1
                flagged = [b.name for b in record.benchmarks if b.verdict == "regression"]
                if name == "3% slowdown":
                    regressions += flagged == ["checksum"]
                else:
                    regressions += bool(flagged)
                inconclusive += any(b.verdict == "inconclusive" for b in record.benchmarks)
            row = (
                name, metric, str(runs),
                f"{regressions} ({regressions / max(runs, 1):.0%})" if runs else "0",
                str(inconclusive), " ".join(f"{c}x{n}" for c, n in sorted(codes.items())),
                target, f"{time.monotonic() - t0:.0f} s",
            )  # fmt: skip
            table.add_row(*row)
            print("  ".join(row), file=sys.stderr, flush=True)
    console.print(table)
    env = machine_info(args.sandbox)
    console.print(
        f"cpu: {env['cpu']} x{env['cores']}; load (1 min): {env['load_1m']}; "
        f"total time: {time.monotonic() - t_all:.0f} s"
    )


if __name__ == "__main__":
    main()
