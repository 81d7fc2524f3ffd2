"""A no-op candidate on every built-in task: its speedup should read about 1 (`same`).

    python benchmarks/noop_tasks.py [--sandbox local|docker] [--repeats 10]

The grader measures the base against an unchanged copy of itself, interleaved; a verdict of
`faster` or `slower` here would be a false positive of the measurement.
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from tasks.grade import Candidate, GradeOptions, grade
from tasks.model import Kind
from tasks.suite import load_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", default="local", choices=["local", "docker", "auto"])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    opts = GradeOptions(backend=args.sandbox, repeats=args.repeats)
    table = Table(title=f"no-op candidates, {args.sandbox} sandbox")
    for col in ("task", "speedup", "95% CI", "p", "pairs", "verdict", "seconds"):
        table.add_column(col)
    false_positives = 0
    for task in load_suite("builtin"):
        if task.kind is Kind.KERNEL:
            continue
        started = time.monotonic()
        result = grade(task, Candidate(agent="noop"), opts)
        m = result.measurement
        if m is None:
            table.add_row(task.id, "-", "-", "-", "-", result.status, "")
            continue
        false_positives += m.verdict in ("faster", "slower")
        table.add_row(
            task.id,
            f"{m.speedup:.3f}",
            f"{m.ci[0]:.3f}-{m.ci[1]:.3f}",
            f"{m.p_value:.3f}",
            str(m.pairs),
            m.verdict,
            f"{time.monotonic() - started:.0f}",
        )
    Console().print(table)
    print(f"false positives (faster/slower on a no-op): {false_positives}")


if __name__ == "__main__":
    main()
