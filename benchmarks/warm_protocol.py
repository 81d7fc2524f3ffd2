"""The tool's `warm` protocol next to the warm speedup a user would time by hand, on real tasks.

For each real task given (``benchmarks/real_tasks/<id>/``: a real performance commit's parent as
the base, the commit as ``expert.patch``, a ``workload.py``), in one run:

1. **Hand timing**, the method of the hand-timing scripts these tasks were made with. Two
   temporary git worktrees of the clone: the task's base commit, and the base with
   ``git apply expert.patch`` (``test.patch`` is not needed). Each sample is a fresh
   ``python3`` with ``PYTHONPATH=<that tree>`` (cwd outside both trees, ``PYTHONHASHSEED``
   unset) that loads ``workload.py`` with importlib, which imports the library; the child
   checks that every non-stdlib module the workload imports comes from that tree.

   - warm: 3 warm-up calls of ``setup(); workload()``, then 20 timed calls (``setup()``
     untimed before each, ``workload()`` timed with ``perf_counter_ns``); the process reports
     its median. ``--procs`` processes per side, run as pairs, base then expert back to back.
     Reported: the median of the per-pair ratios base_i / expert_i, and the pooled ratio
     median(base medians) / median(expert medians). GC left on.
   - cold: ``--procs`` fresh processes per side, alternating; each times the workload
     file's execution (the library's import) + ``setup()`` + the first ``workload()`` call
     (interpreter start-up excluded). Reported: median(base) / median(expert).

2. **The tool**: ``optimizer tasks validate benchmarks/real_tasks/<id> --repo CLONE --sandbox S
   --protocol warm --repeats R --json ...``, then the same with ``--protocol cold``; the
   speedup and 95% CI are read from ``tasks[0].expert.measurement``. The tool's warm protocol
   is its own (warm-up and timed call counts, lru_caches cleared); what is compared is its
   speedup with the warm median a user would hand-time, and whether the latter lies in the
   tool's CI. The table's "inside CI?" says it for the paired and the pooled hand figure.

Clones: ``git clone`` the ``[source] git`` URL of each ``task.toml`` (the base commit is there):

    git clone https://github.com/Python-Markdown/markdown ~/src/markdown
    git clone https://github.com/andialbrecht/sqlparse ~/src/sqlparse
    git clone https://github.com/executablebooks/markdown-it-py ~/src/markdown-it-py
    python benchmarks/warm_protocol.py --clone markdown-line-offset=~/src/markdown \\
        --clone sqlparse-group-value=~/src/sqlparse --clone mdit-text-join=~/src/markdown-it-py \\
        [--procs 15] [--repeats 30] [--sandbox local] [--json out.json]

The hand timing runs the library from the tree on the host's ``python3``, so the library's
runtime dependencies must be importable there: ``mdurl`` for markdown-it-py (sqlparse and
markdown need none; ``task.toml``'s ``setup.pip`` lists test dependencies, e.g. PyYAML for
markdown's tests, which the tool installs itself). Run it on a quiet machine: load moves the
figures (the expert's more than the base's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

TASKS = Path(__file__).resolve().parent / "real_tasks"
WARMUP, TIMED = 3, 20

CHILD = r"""
import ast, importlib.util, json, statistics, sys, time
mode, workload_path, tree, warmup, timed = sys.argv[1:6]
t0 = time.perf_counter_ns()
spec = importlib.util.spec_from_file_location("workload", workload_path)
w = importlib.util.module_from_spec(spec)
spec.loader.exec_module(w)
if mode == "cold":
    w.setup(); w.workload()
    res = {"cold_ns": time.perf_counter_ns() - t0}
else:
    for _ in range(int(warmup)):
        w.setup(); w.workload()
    ts = []
    for _ in range(int(timed)):
        w.setup()
        a = time.perf_counter_ns(); w.workload(); ts.append(time.perf_counter_ns() - a)
    res = {"median_ns": statistics.median(ts)}
roots = set()
for node in ast.parse(open(workload_path).read()).body:
    if isinstance(node, ast.Import):
        roots.update(a.name.split(".")[0] for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        roots.add(node.module.split(".")[0])
for name in sorted(roots - set(sys.stdlib_module_names)):
    f = getattr(sys.modules.get(name), "__file__", None) or ""
    assert f.startswith(tree + "/"), (name, f, tree)
print(json.dumps(res))
"""


def git(clone: Path, *args: str) -> None:
    out = subprocess.run(["git", "-C", str(clone), *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"git -C {clone} {' '.join(args)}: {out.stderr.strip()}")


def child(tree: Path, workload: Path, mode: str, cwd: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.pop("PYTHONHASHSEED", None)
    argv = [sys.executable, "-c", CHILD, mode, str(workload), str(tree), str(WARMUP), str(TIMED)]
    out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{mode} child in {tree} failed:\n{out.stderr.strip()[-2000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return res["cold_ns" if mode == "cold" else "median_ns"] / 1e6


def hand(task: Path, spec: dict, clone: Path, procs: int) -> dict:
    """Worktrees at base and base + expert.patch, then the warm pairs and the cold samples."""
    tmp = Path(tempfile.mkdtemp(prefix="warm-protocol-"))
    trees = {"base": tmp / "base", "expert": tmp / "expert"}
    added = []
    try:
        for tree in trees.values():
            git(clone, "worktree", "add", "--detach", str(tree), spec["source"]["commit"])
            added.append(tree)
        patch = (task / spec["expert"]["patch"]).resolve()
        git(trees["expert"], "apply", str(patch))
        workload = (task / spec["workload"]["script"]).resolve()
        warm: dict[str, list[float]] = {"base": [], "expert": []}
        for i in range(procs):
            for rev in ("base", "expert"):
                warm[rev].append(child(trees[rev], workload, "warm", tmp))
            print(
                f"  warm pair {i}: {warm['base'][-1]:.2f} / {warm['expert'][-1]:.2f} ms",
                file=sys.stderr,
            )
        cold: dict[str, list[float]] = {"base": [], "expert": []}
        for _ in range(procs):
            for rev in ("base", "expert"):
                cold[rev].append(child(trees[rev], workload, "cold", tmp))
    finally:
        for tree in added:
            subprocess.run(
                ["git", "-C", str(clone), "worktree", "remove", "--force", str(tree)],
                capture_output=True,
            )
        subprocess.run(["git", "-C", str(clone), "worktree", "prune"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    med = {
        k: {r: statistics.median(v) for r, v in d.items()}
        for k, d in (("warm", warm), ("cold", cold))
    }
    return {
        "warm_ms": warm,
        "cold_ms": cold,
        "medians_ms": med,
        "warm_paired": statistics.median(
            b / e for b, e in zip(warm["base"], warm["expert"], strict=True)
        ),
        "warm_pooled": med["warm"]["base"] / med["warm"]["expert"],
        "cold": med["cold"]["base"] / med["cold"]["expert"],
    }


def tool(task: Path, clone: Path, sandbox: str, protocol: str, repeats: int) -> dict:
    """One `optimizer tasks validate` run; its expert's measurement (or why there is none)."""
    with tempfile.TemporaryDirectory(prefix="warm-protocol-json-") as d:
        out = Path(d) / "validate.json"
        cmd = ["optimizer", "tasks", "validate", str(task), "--repo", str(clone)]
        cmd += ["--sandbox", sandbox, "--protocol", protocol, "--repeats", str(repeats)]
        cmd += ["--json", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if not out.exists():
            return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
        rec = json.loads(out.read_text())["tasks"][0]
    m = (rec.get("expert") or {}).get("measurement")
    if not m or m.get("speedup") is None:
        return {"error": f"{rec.get('status')}: {rec.get('reason')}"}
    keys = ("speedup", "ci", "protocol", "cold_speedup", "pairs", "base_median_s")
    return {k: m.get(k) for k in (*keys, "candidate_median_s")} | {"status": rec.get("status")}


def fmt_ci(t: dict) -> str:
    if "error" in t:
        return f"n/a ({t['error']})"
    lo, hi = t["ci"] or (None, None)
    ci = f" ({lo:.2f}-{hi:.2f})" if lo is not None else ""
    return f"{t['speedup']:.2f}x{ci}, {t['pairs']} pairs"


def inside(x: float, t: dict) -> str:
    if "error" in t or not t.get("ci"):
        return "n/a"
    return "yes" if t["ci"][0] <= x <= t["ci"][1] else "no"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--clone",
        action="append",
        required=True,
        metavar="ID=PATH",
        help="a task id under benchmarks/real_tasks and a git clone of its source",
    )
    ap.add_argument("--procs", type=int, default=15, help="hand-timed processes per side")
    ap.add_argument("--repeats", type=int, default=30, help="the tool's --repeats")
    ap.add_argument("--sandbox", default="local", choices=["local", "docker", "auto"])
    ap.add_argument("--json", type=Path, help="also write every figure here")
    args = ap.parse_args()
    pairs = []
    for item in args.clone:
        tid, sep, path = item.partition("=")
        task, clone = TASKS / tid, Path(path).expanduser().resolve()
        if not sep or not (task / "task.toml").is_file() or not (clone / ".git").exists():
            ap.error(f"--clone {item}: want ID=PATH, a task in {TASKS} and a git clone")
        pairs.append((tid, task, clone))
    results, rows = {}, []
    for tid, task, clone in pairs:
        spec = tomllib.loads((task / "task.toml").read_text())
        print(f"{tid}: hand timing, {args.procs} processes per side", file=sys.stderr)
        h = hand(task, spec, clone, args.procs)
        t = {}
        for protocol in ("warm", "cold"):
            print(f"{tid}: optimizer tasks validate --protocol {protocol}", file=sys.stderr)
            t[protocol] = tool(task, clone, args.sandbox, protocol, args.repeats)
        results[tid] = {"hand": h, "tool": t}
        wm, cm = h["medians_ms"]["warm"], h["medians_ms"]["cold"]
        rows.append(
            f"| {tid} | {h['warm_paired']:.2f}x | {h['warm_pooled']:.2f}x"
            f" ({wm['base']:.1f} / {wm['expert']:.1f} ms) | {fmt_ci(t['warm'])}"
            f" | {inside(h['warm_paired'], t['warm'])} / {inside(h['warm_pooled'], t['warm'])}"
            f" | {h['cold']:.2f}x ({cm['base']:.1f} / {cm['expert']:.1f} ms)"
            f" | {fmt_ci(t['cold'])} |"
        )
    print(
        f"\nhand: {args.procs} processes per side, {WARMUP} warm-up + {TIMED} timed calls each;"
        f" tool: --repeats {args.repeats}, --sandbox {args.sandbox}\n"
    )
    print(
        "| task | hand warm (paired median) | hand warm (pooled) | tool warm (95% CI)"
        " | inside CI? (paired / pooled) | hand cold | tool cold (95% CI) |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
