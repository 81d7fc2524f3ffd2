"""How honest is `optimizer bench`? A/A false positives and 3% detection, per metric.

Makes a throwaway git repository with three revisions (base, an identical copy, and one that
does 3% more work), then runs the same interleaved, adaptive comparison `optimizer bench`
uses, many times, and prints a table:

- A/A false-positive rate: how often base vs an identical candidate is called faster or
  slower (target: at most 1 in 20 for wall, 0 for instructions);
- 3% detection rate: how often a 3% slowdown is called slower (target: 100% for
  instructions, 80% or more for wall on a quiet machine);
- the time taken.

    .venv/bin/python benchmarks/noise.py [--trials 20] [--sandbox local|docker]
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from optimizer.bench import machine_info  # noqa: E402
from profilers import Workload, install, measure_instructions, measure_wall  # noqa: E402
from profilers.compare import INSTRUCTION_PAIRS  # noqa: E402
from profilers.stats import ALPHAS, FLOORS, adaptive  # noqa: E402
from sandbox import Limits, Source, open_sandbox  # noqa: E402

WORK = """
N = {n}
def step():
    return sum(range(40))
def workload():
    for _ in range(N):
        step()
"""
GIT = ["git", "-c", "user.email=n@example.com", "-c", "user.name=n"]


def make_repo(root: Path, n: int) -> Path:
    repo = root / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for size in (n, n, round(n * 1.03)):  # base, identical copy, 3% more work
        (repo / "work.py").write_text(WORK.format(n=size))
        subprocess.run([*GIT, "-C", str(repo), "add", "work.py"], check=True)
        subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", "w", "--allow-empty"], check=True)
    return repo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20, help="Trials per wall scenario.")
    ap.add_argument("--instruction-trials", type=int, default=20)
    ap.add_argument("--budget", type=float, default=120.0, help="Seconds per trial for more pairs.")
    ap.add_argument(
        "--pairs",
        type=int,
        nargs=2,
        default=(10, 200),
        metavar=("START", "MOST"),
        help="Wall-clock pairs to start with, and the most (bench's defaults).",
    )
    ap.add_argument("--sandbox", choices=["local", "docker"], default="local")
    ap.add_argument("--n", type=int, default=4000, help="Steps of work (~2 ms per 4000).")
    args = ap.parse_args()
    console = Console(highlight=False, width=140)
    t_all = time.monotonic()
    limits = Limits(wall_s=120)
    with tempfile.TemporaryDirectory(prefix="optimizer-noise-") as tmp:
        repo = make_repo(Path(tmp), args.n)
        revs = {"base": "HEAD~2", "same": "HEAD~1", "slow": "HEAD"}
        sbs = {k: open_sandbox(Source(repo=repo, rev=r), args.sandbox, limits=limits)
               for k, r in revs.items()}  # fmt: skip
        try:
            w = Workload(kind="file", target="work.py")
            # the real interpreter locally (no shell shims per process); the image's in docker
            py = sys.executable if args.sandbox == "local" else "python3"
            for sb in sbs.values():
                install(sb, w)

            def wall(k: str):
                runs = itertools.count()  # a pair's two runs share a hash seed

                def one() -> float:
                    seed = next(runs)
                    return measure_wall(sbs[k], w, limits=limits, python=py, hash_seed=seed).seconds

                return one

            def instr(k: str):
                return lambda: float(
                    measure_instructions(sbs[k], w, limits=limits, python=py).instructions
                )

            for k in sbs:  # warm-up, discarded
                measure_wall(sbs[k], w, limits=limits, python=py)
            table = Table(title=f"noise check ({args.sandbox} backend)")
            for col in ("metric", "scenario", "trials", "called", "rate", "target", "mean pairs",
                        "time"):  # fmt: skip
                table.add_column(col)
            for metric, make, trials, floor, (start, most) in (
                ("wall", wall, args.trials, FLOORS["wall"], tuple(args.pairs)),
                ("instructions", instr, args.instruction_trials, FLOORS["instructions"],
                 INSTRUCTION_PAIRS),
            ):  # fmt: skip
                for scenario, other, want, target in (
                    ("A/A false positives", "same", ("faster", "slower"),
                     "<= 1/20" if metric == "wall" else "0"),
                    ("3% slowdown detected", "slow", ("slower",),
                     ">= 80% (quiet)" if metric == "wall" else "100%"),
                ):  # fmt: skip
                    t0 = time.monotonic()
                    hits, pairs = 0, 0
                    for _ in range(trials):
                        cmp, bs, _, _, _ = adaptive(
                            make("base"), make(other), floor=floor, start=start, most=most,
                            budget_s=args.budget, parallel=metric == "instructions",
                            alpha=ALPHAS[metric], paired=metric == "wall",
                        )  # fmt: skip
                        hits += cmp.verdict.value in want
                        pairs += len(bs)
                    row = (
                        metric, scenario, str(trials), str(hits),
                        f"{hits / max(trials, 1):.0%}", target, f"{pairs / max(trials, 1):.1f}",
                        f"{time.monotonic() - t0:.0f} s",
                    )  # fmt: skip
                    table.add_row(*row)
                    print("  ".join(row), file=sys.stderr, flush=True)
        finally:
            for sb in sbs.values():
                sb.close()
    console.print(table)
    env = machine_info(args.sandbox)
    console.print(
        f"cpu: {env['cpu']} x{env['cores']}; load (1 min): {env['load_1m']}; "
        f"total time: {time.monotonic() - t_all:.0f} s; pid {os.getpid()}"
    )


if __name__ == "__main__":
    main()
