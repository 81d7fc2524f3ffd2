"""`optimizer grade` agrees with `optimizer tasks validate`, and a no-op reads `same`.

    python benchmarks/grade_agreement.py [--sandbox docker] [--metric wall]
        [--noop-metric instructions] [--budget 60]

For every runnable built-in task it runs, as a user would, `optimizer tasks validate
builtin --task ID`, `optimizer grade builtin/ID --patch expert.patch` and `optimizer grade
builtin/ID` (no patch: a no-op candidate), and prints one row per task: validate's status,
the expert's grade (exit code, status, verdict, speedup), the no-op's grade (verdict,
speedup), and whether they agree (the expert correct and faster exactly when validate says
ok; the no-op `same`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.model import Kind  # noqa: E402
from tasks.suite import load_suite  # noqa: E402


def optimizer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optimizer", *args], capture_output=True, text=True, timeout=1800
    )


def graded(task_id: str, out: Path, common: list[str], patch: Path | None) -> dict:
    args = ["grade", f"builtin/{task_id}", *common, "--json", str(out)]
    if patch is not None:
        args += ["--patch", str(patch)]
    done = optimizer(*args)
    if not out.exists():
        return {"exit": done.returncode, "status": "-", "verdict": "-", "speedup": None,
                "error": (done.stderr or done.stdout).strip()[-200:]}  # fmt: skip
    g = json.loads(out.read_text())
    m = g.get("measurement") or {}
    return {"exit": done.returncode, "status": g["status"], "verdict": m.get("verdict", "-"),
            "speedup": m.get("speedup"), "ci": m.get("ci")}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sandbox", default="docker")
    ap.add_argument("--metric", default="wall", help="for the expert's grade (validate's)")
    ap.add_argument(
        "--noop-metric", default="instructions",
        help="for the no-op's grade: instruction counts say `same` without noise",
    )  # fmt: skip
    ap.add_argument("--budget", default="60")
    ap.add_argument("--task", action="append", default=[])
    args = ap.parse_args()
    tasks = [t for t in load_suite("builtin") if t.kind is not Kind.KERNEL]
    tasks = [t for t in tasks if not args.task or t.id in args.task]
    common = ["--sandbox", args.sandbox, "--metric", args.metric, "--budget", args.budget]
    noop = ["--sandbox", args.sandbox, "--metric", args.noop_metric, "--budget", args.budget]
    table = Table(
        title=f"grade vs validate ({args.sandbox}; expert {args.metric}, no-op "
        f"{args.noop_metric}; budget {args.budget} s)"
    )
    for col in ("task", "validate", "expert grade", "no-op grade", "agree", "s"):
        table.add_column(col)
    agreeing = 0
    with tempfile.TemporaryDirectory() as tmp:
        for t in tasks:
            started = time.monotonic()
            v = optimizer("tasks", "validate", "builtin", "--task", t.id, "--sandbox", args.sandbox)
            valid = "ok" if v.returncode == 0 else "failed"
            e = graded(t.id, Path(tmp) / f"{t.id}-expert.json", common, t.root / "expert.patch")
            n = graded(t.id, Path(tmp) / f"{t.id}-noop.json", noop, None)
            expert_ok = e["exit"] == 0 and e["verdict"] == "faster"
            agree = (expert_ok == (valid == "ok")) and n["verdict"] == "same"
            agreeing += agree

            def cell(g: dict) -> str:
                sp = f"{g['speedup']:.2f}x" if g.get("speedup") else "-"
                return f"exit {g['exit']} {g['status']} {g['verdict']} {sp}" + (
                    f" {g['error']}" if g.get("error") else ""
                )

            table.add_row(t.id, valid, cell(e), cell(n), "yes" if agree else "NO",
                          f"{time.monotonic() - started:.0f}")  # fmt: skip
    Console().print(table)
    print(f"{agreeing}/{len(tasks)} tasks agree")


if __name__ == "__main__":
    main()
