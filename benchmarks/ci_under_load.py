"""Does `optimizer ci --metric instructions` still call a 10% regression on a loaded machine?

Makes a throwaway git repository with three declared benchmarks (pure-Python workloads of
roughly 50-150 ms each) and two commits: a base, and a head where exactly one benchmark's
library function does 10% more work (10% more loop iterations). Then starts CPU hogs
(``python3 -c "while 1: pass"`` processes, 4 per core by default), waits until the 1-minute
load average has climbed (bounded), and runs the real command

    optimizer ci REPO --base HEAD~1 --head HEAD --metric instructions --sandbox local --json ..

as a subprocess ``--runs`` times, each with a time limit. The hogs are always killed at the
end. Instruction counts do not depend on load: each side's counts are constant, so the
comparison is deterministic and the regression must be called from the start pairs, even
when the time budget runs out early.

Target: every run exits 1 and names exactly the regressed benchmark.

    .venv/bin/python benchmarks/ci_under_load.py [--runs 3] [--hogs N] [--quiet-baseline]

N hogs make the load average converge to N from below (exponentially, time constant one
minute), so the wait is for ``--target-load`` per core, by default 95% of the hogs per
core; the `ci` run's own processes (two valgrinds side by side) then add to the load.
The table records the load at the start and end of every run, and the most seen during it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from optimizer.bench import machine_info  # noqa: E402

PYPROJECT = """
[tool.optimizer.benchmarks.tokenize]
workload = "bench/tokenize.py"

[tool.optimizer.benchmarks.checksum]
workload = "bench/checksum.py"

[tool.optimizer.benchmarks.wordfreq]
workload = "bench/wordfreq.py"
"""
LIB = """
def tokenize(n={tokenize}):
    words = []
    for i in range(n):
        words.extend(f"w{{i % 97}} x{{i}} y{{i % 13}}".split())
    return len(words)


def checksum(n={checksum}):
    total = 0
    for i in range(n):
        total = (total * 31 + i) % 1000003
    return total


def wordfreq(n={wordfreq}):
    counts = {{}}
    for i in range(n):
        key = (i * 7919) % 1009
        counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
"""
BENCH = "from lib import {name}\n\n\ndef workload():\n    {name}()\n"
#: Loop iterations per benchmark: about 50 ms each (CPython 3.11, a 2-core EPYC VM), about
#: 350-550M instructions; callgrind runs them about 50x slower.
SIZES = {"tokenize": 70_000, "checksum": 650_000, "wordfreq": 350_000}
GIT = ["git", "-c", "user.email=n@example.com", "-c", "user.name=n"]
HOG = "while 1: pass"


def make_repo(root: Path, regressed: str, extra: float) -> Path:
    """A repo with a base commit and a head commit where ``regressed`` does more work."""
    repo = root / "repo"
    (repo / "bench").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "pyproject.toml").write_text(PYPROJECT)
    for name in SIZES:
        (repo / "bench" / f"{name}.py").write_text(BENCH.format(name=name))
    slow = {**SIZES, regressed: round(SIZES[regressed] * (1 + extra))}
    for sizes, msg in ((SIZES, "base"), (slow, f"{regressed}: {extra:.0%} more iterations")):
        (repo / "lib.py").write_text(LIB.format(**sizes))
        subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
        subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", msg], check=True)
    return repo


def load1() -> float:
    return os.getloadavg()[0]


def start_hogs(n: int, into: list[subprocess.Popen[bytes]]) -> None:
    """Start ``n`` hogs, appending each to ``into`` at once (so a failure leaks none)."""
    for _ in range(n):
        into.append(subprocess.Popen([sys.executable, "-c", HOG], stdin=subprocess.DEVNULL))


def stop_hogs(hogs: list[subprocess.Popen[bytes]]) -> None:
    for p in hogs:
        if p.poll() is None:
            p.kill()
    for p in hogs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            print(f"warning: hog {p.pid} did not exit", file=sys.stderr)


def wait_for_load(target: float, limit_s: float) -> tuple[float, float]:
    """Poll the 1-minute load average until it reaches ``target``; (load, seconds waited)."""
    t0 = time.monotonic()
    while (load := load1()) < target and time.monotonic() - t0 < limit_s:
        print(f"  load {load:.2f} < {target:.2f}, waiting", file=sys.stderr, flush=True)
        time.sleep(min(10.0, max(0.0, limit_s - (time.monotonic() - t0))))
    return load, time.monotonic() - t0


@dataclass
class Run:
    label: str
    loaded: bool
    load_start: float
    load_end: float = 0.0
    load_max: float = 0.0
    exit_code: int | None = None
    timed_out: bool = False
    wall_s: float = 0.0
    record: dict | None = None
    stderr_tail: str = ""
    flagged: list[str] = field(default_factory=list)


class LoadWatch:
    """Samples the 1-minute load average every few seconds in a thread; keeps the most."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.most = load1()
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.most = max(self.most, load1())

    def __enter__(self) -> LoadWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.most = max(self.most, load1())


def run_ci(repo: Path, out: Path, args: argparse.Namespace, label: str, loaded: bool) -> Run:
    """One `optimizer ci` subprocess, in its own process group, killed whole on timeout."""
    cmd = ["optimizer", "ci", str(repo), "--base", "HEAD~1", "--head", "HEAD"]
    cmd += ["--metric", "instructions", "--sandbox", args.sandbox, "--json", str(out)]
    if args.budget is not None:
        cmd += ["--budget", str(args.budget)]
    run = Run(label=label, loaded=loaded, load_start=load1())
    print(f"{label}: {' '.join(cmd)} (load {run.load_start:.2f})", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    with LoadWatch() as watch:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            _, err = proc.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            run.timed_out = True
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    run.wall_s = time.monotonic() - t0
    run.load_end, run.load_max = load1(), watch.most
    run.exit_code = proc.returncode
    run.stderr_tail = "\n".join((err or "").strip().splitlines()[-5:])
    if out.exists():
        run.record = json.loads(out.read_text())
        run.flagged = [b["name"] for b in run.record["benchmarks"] if b["verdict"] == "regression"]
    print(
        f"{label}: exit {run.exit_code}{' (timed out)' if run.timed_out else ''}, "
        f"regressions {run.flagged}, {run.wall_s:.0f} s, load {run.load_end:.2f}",
        file=sys.stderr,
        flush=True,
    )
    return run


def instructions_of(record: dict | None, name: str) -> tuple[dict | None, dict | None]:
    """The benchmark's record and its instructions MetricVerdict (with result, p_holm)."""
    for b in (record or {}).get("benchmarks", []):
        if b["name"] == name:
            for m in b.get("metrics", []):
                if m["metric"] == "instructions":
                    return b, m
            return b, None
    return None, None


def hit(run: Run, regressed: str) -> bool:
    return run.exit_code == 1 and run.flagged == [regressed]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="Loaded `optimizer ci` runs.")
    ap.add_argument("--hogs", type=int, default=4 * (os.cpu_count() or 1),
                    help="CPU-hog processes (default: 4 x nproc).")  # fmt: skip
    ap.add_argument("--target-load", type=float, default=None,
                    help="Load per core to wait for (default: 0.95 x hogs / nproc).")  # fmt: skip
    ap.add_argument("--settle", type=float, default=300.0,
                    help="Most seconds to wait for the load to climb.")  # fmt: skip
    ap.add_argument("--timeout", type=float, default=1500.0, help="Seconds per `ci` run.")
    ap.add_argument("--budget", type=float, default=None,
                    help="Pass --budget to `optimizer ci` (default: its own, 60 s).")  # fmt: skip
    ap.add_argument("--regressed", choices=sorted(SIZES), default="checksum")
    ap.add_argument("--extra", type=float, default=0.10, help="Extra work in --regressed.")
    ap.add_argument("--sandbox", choices=["local", "docker"], default="local")
    ap.add_argument("--quiet-baseline", action="store_true",
                    help="One run without hogs first, for comparison.")  # fmt: skip
    ap.add_argument("--keep", type=Path, default=None, help="Copy the JSON records here.")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the hogs die in `finally`
    console = Console(highlight=False, width=160)
    cores = os.cpu_count() or 1
    target = (args.target_load or 0.95 * args.hogs / cores) * cores
    t_all = time.monotonic()
    runs: list[Run] = []
    settled = (0.0, 0.0)
    with tempfile.TemporaryDirectory(prefix="optimizer-ciload-") as tmp:
        repo = make_repo(Path(tmp), args.regressed, args.extra)
        if args.quiet_baseline:
            runs.append(run_ci(repo, Path(tmp) / "quiet.json", args, "quiet", False))
        hogs: list[subprocess.Popen[bytes]] = []
        try:
            if args.runs > 0 and args.hogs > 0:
                start_hogs(args.hogs, hogs)
                print(f"{len(hogs)} hogs; waiting for load >= {target:.2f}", file=sys.stderr)
                settled = wait_for_load(target, args.settle)
            for i in range(1, args.runs + 1):
                runs.append(run_ci(repo, Path(tmp) / f"run{i}.json", args, str(i), True))
        finally:
            stop_hogs(hogs)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for r in runs:
                if r.record is not None:
                    (args.keep / f"run-{r.label}.json").write_text(json.dumps(r.record, indent=1))

    table = Table(
        title=f"optimizer ci --metric instructions under load: {args.regressed} "
        f"+{args.extra:.0%} work, {args.hogs} hogs on {cores} cores ({args.sandbox})"
    )
    for col in ("run", "hogs", "load start", "load end", "load max", "exit",
                "called regression", f"{args.regressed} ratio [95% CI]", "pairs",
                "stopped", "wall s"):  # fmt: skip
        right = col.startswith(("load", "pairs", "wall"))
        table.add_column(col, justify="right" if right else "left")
    for r in runs:
        _, mv = instructions_of(r.record, args.regressed)
        res = (mv or {}).get("result") or {}
        ratio = f"{res['ratio']:.4f} [{res['ci'][0]:.4f}, {res['ci'][1]:.4f}]" if res else "-"
        exit_s = f"{r.exit_code}" + (" (timeout)" if r.timed_out else "")
        table.add_row(
            r.label, str(args.hogs) if r.loaded else "0", f"{r.load_start:.2f}",
            f"{r.load_end:.2f}", f"{r.load_max:.2f}", exit_s, ", ".join(r.flagged) or "-",
            ratio, str(res.get("pairs", "-")), str(res.get("stopped", "-")), f"{r.wall_s:.0f}",
        )  # fmt: skip
    console.print(table)

    detail = Table(title="per benchmark (instructions): what each run decided")
    for col in ("run", "benchmark", "verdict", "result.verdict", "deterministic", "ratio",
                "pairs", "stopped", "p_holm", "cv base / head"):  # fmt: skip
        detail.add_column(col)
    for r in runs:
        for b in (r.record or {}).get("benchmarks", []):
            _, mv = instructions_of(r.record, b["name"])
            res = (mv or {}).get("result") or {}
            detail.add_row(
                r.label, b["name"], b["verdict"] + (f" ({b['error']})" if b.get("error") else ""),
                str(res.get("verdict", "-")), str(res.get("deterministic", "-")),
                f"{res['ratio']:.4f}" if res else "-", str(res.get("pairs", "-")),
                str(res.get("stopped", "-")), f"{mv['p_holm']:.3g}" if mv else "-",
                f"{res['cv_base']:.1e} / {res['cv_head']:.1e}" if res else "-",
            )  # fmt: skip
        if r.record is None:
            detail.add_row(r.label, "-", f"no record: {r.stderr_tail}", *["-"] * 7)
    console.print(detail)

    loaded = [r for r in runs if r.loaded]
    quiet = [r for r in runs if not r.loaded]
    got = sum(hit(r, args.regressed) for r in loaded)
    met = got == len(loaded) and all(hit(r, args.regressed) for r in quiet)
    line = (
        f"target: exit 1 naming exactly {args.regressed!r} in every run: "
        f"{'MET' if met else 'NOT MET'} (loaded {got}/{len(loaded)}"
    )
    if quiet:
        line += f", quiet {sum(hit(r, args.regressed) for r in quiet)}/{len(quiet)}"
    console.print(line + ")")
    env = machine_info(args.sandbox)
    console.print(
        f"cpu: {env['cpu']} x{env['cores']} (allowed {env['cpus_allowed']}); python "
        f"{env['host_python']}; {env['valgrind_host']}; load after settling: "
        f"{settled[0]:.2f} (target {target:.2f}, waited {settled[1]:.0f} s); load now: "
        f"{env['load_1m']}; total time: {time.monotonic() - t_all:.0f} s"
    )
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
