"""Samples per hour of `optimizer evaluate` on a suite with the oracle, for 1 and 2 workers.

    python benchmarks/evaluate_throughput.py [--suite builtin] [--agent oracle] [-k 1]
                                             [--workers 1,2] [--sandbox local|docker]
                                             [--executor local|ray]

Each worker count runs the real CLI (``python -m optimizer evaluate``, in a subprocess) into
a fresh ``--out``, so every run pays for the experts' references too (one grade per task,
then one per sample). Columns:

- ``jobs``: references + samples graded; ``wall``: the whole command, start to exit;
- ``samples/h``: samples over wall, per hour (references included in the wall);
- ``workload``: seconds the timed workloads themselves ran, summed over every measurement
  of every sample (both sides; from each record's ``workload_s``);
- ``overhead/sample``: (wall x workers - workload) / samples: the harness's own time per
  sample (sandboxes, installs, tests, checks, process launches, statistics, bookkeeping),
  in worker-seconds, so it is comparable across worker counts;
- ``SR`` the harmonic mean over tasks, which must not move with the worker count.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optimizer.evaluate_records import EvalDir  # noqa: E402


def run(args: argparse.Namespace, workers: int, out: Path) -> dict[str, float]:
    cmd = [
        sys.executable, "-m", "optimizer", "evaluate", "--suite", args.suite,
        "--agent", args.agent, "-k", str(args.k), "--workers", str(workers),
        "--sandbox", args.sandbox, "--executor", args.executor, "--out", str(out),
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "160"})  # fmt: skip
    wall = time.monotonic() - started
    if done.returncode not in (0, 1):
        sys.exit(f"evaluate failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr}")
    recs = list(EvalDir(out).samples().values())
    refs = EvalDir(out).references()
    workload = sum(r.workload_s for r in recs)
    file = out / "summary.json"
    summary = json.loads(file.read_text()) if file.is_file() else {}
    return {
        "jobs": len(recs) + len(refs),
        "samples": len(recs),
        "wall": wall,
        "workload": workload,
        "grade": sum(r.grade_s for r in recs) / max(1, len(recs)),
        "sr": _sr(summary),
        "ok": sum(r.result.correct for r in recs),
    }


def _sr(summary: dict) -> float | None:
    """The first group's SR (harmonic mean over tasks, mean over runs)."""
    for group in summary.get("groups", []):
        value = (group.get("scores", {}).get("sr_hmean") or {}).get("value")
        if isinstance(value, int | float):
            return float(value)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="builtin")
    parser.add_argument("--agent", default="oracle")
    parser.add_argument("-k", type=int, default=1)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--sandbox", default="local", choices=["local", "docker"])
    parser.add_argument("--executor", default="local", choices=["local", "ray"])
    args = parser.parse_args()
    title = (f"optimizer evaluate --suite {args.suite} --agent {args.agent} -k {args.k}, "
             f"{args.sandbox} sandbox, {args.executor} executor")  # fmt: skip
    table = Table(title=title)
    for col in ("workers", "jobs", "ok", "wall s", "samples/h", "grade s/sample",
                "workload s", "overhead s/sample", "SR (harmonic)"):  # fmt: skip
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory(prefix="evaluate-throughput-") as tmp:
        for workers in (int(w) for w in args.workers.split(",")):
            r = run(args, workers, Path(tmp) / f"w{workers}")
            overhead = (r["wall"] * workers - r["workload"]) / max(1, r["samples"])
            table.add_row(
                str(workers), str(r["jobs"]), f"{r['ok']}/{r['samples']}", f"{r['wall']:.0f}",
                f"{r['samples'] / r['wall'] * 3600:.0f}", f"{r['grade']:.1f}",
                f"{r['workload']:.1f}", f"{overhead:.1f}",
                f"{r['sr']:.3f}" if r["sr"] is not None else "-",
            )  # fmt: skip
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
