"""`optimizer ci` next to the tool a user would pick instead, on a real project's own suite.

For one real project, in the same run and side by side, times (``time.monotonic``) and
records the exit code of:

- the competitor on PARENT -> COMMIT (a real performance commit) and on an A/A pair:
  - ``--project rich``: ``asv continuous -E virtualenv:X.Y BASE HEAD`` in a clone checked out
    at HEAD (asv takes the benchmark files from its working directory, as ``ci`` takes head's).
    asv does not refuse ``asv continuous C C``, but both sides then land in one result file and
    it compares that file with itself (every ratio is exactly 1), so the A/A pair is C against
    a commit with C's tree and C as parent (``git commit-tree``, branch ``ci-aa-copy`` in that
    clone): same code, another sha. ``--aa-copy`` gives ``optimizer ci`` that pair too.
  - ``--project pint``: ``pytest --benchmark-only --benchmark-save=...`` in a ``git archive``
    of each revision (the project importable from the tree, as ``python -m pytest`` does),
    then ``pytest-benchmark compare`` of the two saved runs; the A/A pair saves HEAD twice.
    pytest-benchmark gives no verdict; the summary counts tests whose min and whose median
    moved more than ``--pb-threshold`` (default 5%), and what
    ``--benchmark-compare-fail=median:5%`` would do.
- ``optimizer ci CLONE --base PARENT --head COMMIT --json OUT`` and the A/A
  ``optimizer ci CLONE --base COMMIT --head COMMIT``; the summary counts verdicts from the JSON.

Order: competitor A/B, optimizer A/B, competitor A/A, optimizer A/A (so load that drifts
during the run does not favour one tool). Logs, JSON and the table go to ``--out``.

    python benchmarks/ci_real_projects.py --project rich --clone /work/real/rich \\
        --tools-python /work/real/venv/bin/python [--aa-copy] -- --sandbox local [--bench TextSuite]
    python benchmarks/ci_real_projects.py --project pint --clone /work/real/pint \\
        --tools-python /work/real/venv/bin/python -- --sandbox docker \\
        --bench '^(?!.*(test_00_common\\.py::test_import|test_load_definitions_stage_2))'

(pint at 7aa995c9: the local sandbox sees the host's numpy, and numpy 2.x breaks that pint at
collection; test_import never calls ``benchmark`` and test_load_definitions_stage_2 fails in
both tools, and either makes ``optimizer ci`` exit 3.)

``--tools-python`` is a Python with asv, virtualenv, pytest, pytest-benchmark and the
project's runtime dependencies (rich: pygments, markdown-it-py; pint at 7aa995c9:
typing_extensions) but *not* the project itself. Everything after ``--`` is passed to both
``optimizer ci`` runs (e.g. ``--pip pygments``, ``--bench REGEX``, ``--sandbox local``).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.name=ci-real", "-c", "user.email=ci-real@example.com"]


@dataclass(frozen=True)
class Project:
    competitor: str  # "asv" | "pytest-benchmark"
    base: str  # the performance commit's parent
    head: str  # the performance commit
    subject: str
    bench_dir: str  # pytest-benchmark: the tests to run
    deps: tuple[str, ...]


PROJECTS = {
    # Textualize/rich: 32 asv time_* benchmarks (benchmarks/benchmarks.py), asv.conf.json
    # pythons ["3.10"], matrix setuptools 59.2.0, build via pip install poetry + pip wheel.
    # Callgrind truth (warm, per call): TextSuite.time_align_center 0.64x,
    # time_align_center_unicode_heavy 0.91x, StyleSuite.time_parse_hex 0.95x, rest 0.97-1.00.
    "rich": Project(
        competitor="asv",
        base="9e7f363aebe01542210633dd4027ce777bf31e3c",  # "use sets"
        head="46150cdbf61426c4683c59a0e4f45dca23d38202",  # "sum and map is faster"
        subject="sum and map is faster (rich/cells.py)",
        bench_dir="benchmarks",
        deps=("pygments>=2.13.0,<3", "markdown-it-py>=2.2.0"),
    ),
    # hgrecco/pint: pytest-benchmark tests in pint/testsuite/benchmarks, parametrized, with
    # fixtures from pint/testsuite/conftest.py (registry_tiny, ...). 384 collected, 60 need numpy.
    "pint": Project(
        competitor="pytest-benchmark",
        base="98fbda4180756d8710bb9573f8f3694485c1eddb",  # "Improved testsuite"
        head="7aa995c947924f2fb668eff137a3197291a54634",  # "Add a conversion factor cache"
        subject="Add a conversion factor cache (pint/facets/plain/registry.py)",
        bench_dir="pint/testsuite/benchmarks",
        deps=("typing_extensions",),
    ),
}


@dataclass
class Step:
    tool: str
    pair: str
    seconds: float = 0.0
    exit_code: int | None = None
    summary: str = ""
    load: str = ""
    commands: list[str] = field(default_factory=list)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def run(
    cmd: list[str],
    log: Path,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``, append its command line and output to ``log``, never raise on failure."""
    print(f"  $ {shlex.join(cmd)}" + (f"   (in {cwd})" if cwd else ""), file=sys.stderr, flush=True)
    try:
        done = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        done = subprocess.CompletedProcess(cmd, 124, out, f"timed out after {timeout} s")
    except OSError as e:
        done = subprocess.CompletedProcess(cmd, 127, "", str(e))
    with log.open("a") as f:
        f.write(f"$ {shlex.join(cmd)}\n# cwd={cwd} rc={done.returncode}\n")
        f.write(done.stdout or "")
        f.write(done.stderr or "")
        f.write("\n")
    return done


def timed(step: Step, body) -> Step:
    step.load = load()
    t0 = time.monotonic()
    body(step)
    step.seconds = time.monotonic() - t0
    print(
        f"  -> {step.tool} {step.pair}: {step.seconds:.1f} s, exit {step.exit_code}, "
        f"{step.summary}",
        file=sys.stderr,
        flush=True,
    )
    return step


# --- asv -------------------------------------------------------------------------------------

ASV_ROW = re.compile(r"^\|\s*([+\-x!]?)\s*\|")


def asv_counts(text: str) -> str:
    """asv continuous prints only the significant changes: '+' slower, '-' faster, 'x' failed."""
    marks = [m.group(1) for line in text.splitlines() if (m := ASV_ROW.match(line))]
    n = {k: marks.count(k) for k in "+-x!"}
    verdict = next(
        (
            line.strip()
            for line in text.splitlines()
            if line.strip().startswith(("PERFORMANCE", "BENCHMARKS NOT", "SOME BENCH"))
            and "CHANGED SIGNIFICANTLY" not in line
        ),
        "",
    )
    parts = [f"{n['+'] + n['-']} significant ({n['+']} slower, {n['-']} faster)"]
    if n["x"] or n["!"]:
        parts.append(f"{n['x'] + n['!']} failed")
    if verdict:
        parts.append(verdict.rstrip("."))
    return ", ".join(parts)


def work_clone(clone: Path, work: Path, head: str, log: Path) -> tuple[Path, str]:
    """A clone of CLONE checked out at head, with a commit of head's tree whose parent is head
    (branch ``ci-aa-copy``): the A/A pair asv can measure (same code, another sha)."""
    repo = work / "repo"
    run(["git", "clone", "-q", str(clone), str(repo)], log)
    run(["git", "-C", str(repo), "checkout", "-q", head], log)
    tree, message = f"{head}^{{tree}}", f"A/A: the tree of {head}"
    made = run([*GIT, "-C", str(repo), "commit-tree", tree, "-p", head, "-m", message], log)
    copy = made.stdout.strip()
    if made.returncode or not copy:
        raise SystemExit(f"git commit-tree failed in {repo}: {last_line(made)}")
    run(["git", "-C", str(repo), "branch", "-f", "ci-aa-copy", copy], log)
    return repo, copy


def asv_step(
    repo: Path,
    asv: list[str],
    env_spec: str,
    base: str,
    head: str,
    pair: str,
    log: Path,
    timeout: float,
) -> Step:
    def body(step: Step) -> None:
        cmd = [*asv, "continuous", *(["-E", env_spec] if env_spec else []), base, head]
        step.commands.append(shlex.join(cmd))
        done = run(cmd, log, cwd=repo, timeout=timeout)
        step.exit_code = done.returncode
        step.summary = asv_counts(done.stdout + done.stderr)
        if done.returncode not in (0, 1):
            step.summary += f"; error: {last_line(done)}"

    return timed(Step("asv continuous", pair), body)


# --- pytest-benchmark ------------------------------------------------------------------------


def extract(clone: Path, rev: str, dest: Path, log: Path) -> Path:
    """``git archive`` of ``rev`` into ``dest`` (no .git: nothing in the clone changes)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(clone), "archive", rev], capture_output=True)
    if archive.returncode:
        raise SystemExit(f"git archive {rev} failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    with log.open("a") as f:
        f.write(f"# git archive {rev} -> {dest}\n")
    return dest


def pb_save(
    py: str, tree: Path, p: Project, storage: Path, name: str, log: Path, timeout: float
) -> tuple[subprocess.CompletedProcess[str], str]:
    cmd = [
        py,
        "-m",
        "pytest",
        p.bench_dir,
        "--benchmark-only",
        f"--benchmark-storage=file://{storage}",
        f"--benchmark-save={name}",
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    done = run(cmd, log, cwd=tree, timeout=timeout)
    return done, shlex.join(cmd)


def pb_saved(storage: Path, name: str) -> Path | None:
    found = sorted(glob.glob(str(storage / "*" / f"*_{name}.json")))
    return Path(found[-1]) if found else None


def pb_counts(a: Path, b: Path, threshold: float) -> str:
    """Per statistic (min, median) of the tests both runs have: how many moved past the
    threshold each way; and whether ``--benchmark-compare-fail=median:T`` would fail."""

    def stats(path: Path) -> dict[str, dict[str, float]]:
        data = json.loads(path.read_text())
        return {x["fullname"]: x["stats"] for x in data["benchmarks"]}

    sa, sb = stats(a), stats(b)
    common = [k for k in sa if k in sb]
    parts = []
    slower_median = 0
    for stat in ("min", "median"):
        ratios = [sb[k][stat] / sa[k][stat] for k in common if sa[k][stat] > 0]
        slower = sum(r > 1 + threshold for r in ratios)
        faster = sum(r < 1 / (1 + threshold) for r in ratios)
        parts.append(f"{stat}: {slower} slower, {faster} faster")
        slower_median = slower
    only = len(set(sa) ^ set(sb))
    gate = f"compare-fail=median:{threshold:.0%} would {'exit 1' if slower_median else 'pass'}"
    return (
        f"{len(common)} compared, by >{threshold:.0%}: "
        + "; ".join(parts)
        + (f"; {only} in one run only" if only else "")
        + f"; {gate}"
    )


def pb_pair(
    py: str,
    clone: Path,
    work: Path,
    p: Project,
    base: str,
    head: str,
    pair: str,
    threshold: float,
    log: Path,
    timeout: float,
) -> Step:
    def body(step: Step) -> None:
        tag = "aa" if pair.startswith("A/A") else "ab"
        storage = work / f"pb-storage-{tag}"
        trees = {}
        for side, rev in (("base", base), ("head", head)):
            # the A/A pair measures two archives of the same commit
            trees[side] = extract(clone, rev, work / f"pb-{tag}-{side}", log)
        codes, files = [], []
        for side in ("base", "head"):
            name = f"{tag}_{side}"
            done, cmd = pb_save(py, trees[side], p, storage, name, log, timeout)
            step.commands.append(f"(cd {trees[side]} && {cmd})")
            codes.append(done.returncode)
            files.append(pb_saved(storage, name))
        cmp = [
            py,
            "-m",
            "pytest_benchmark",
            "--storage",
            f"file://{storage}",
            "compare",
            *(str(f) for f in files if f),
            "--columns=min,median,mean,stddev,rounds",
            "--sort=name",
            "--group-by=param",
        ]
        step.commands.append(shlex.join(cmp))
        done = run(cmp, log)
        codes.append(done.returncode)
        step.exit_code = max(codes)
        if all(files):
            step.summary = pb_counts(files[0], files[1], threshold)
        else:
            step.summary = "no saved run"
        step.summary += f"; exit codes pytest base {codes[0]}, head {codes[1]}, compare {codes[2]}"

    return timed(Step("pytest-benchmark save+save+compare", pair), body)


# --- optimizer ci ----------------------------------------------------------------------------


def optimizer_counts(path: Path) -> str:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return f"no JSON ({type(e).__name__})"
    verdicts = [b.get("verdict", "?") for b in record.get("benchmarks", [])]
    names = ("improvement", "regression", "unchanged", "inconclusive", "error")
    parts = [f"{verdicts.count(v)} {v}" for v in names]
    other = len(verdicts) - sum(verdicts.count(v) for v in names)
    if other:
        parts.append(f"{other} other")
    skipped = len(record.get("skipped", []))
    return f"{len(verdicts)} run: " + ", ".join(parts) + (f"; {skipped} skipped" if skipped else "")


def optimizer_step(
    optimizer: list[str],
    clone: Path,
    base: str,
    head: str,
    pair: str,
    out: Path,
    extra: list[str],
    log: Path,
    timeout: float,
) -> Step:
    def body(step: Step) -> None:
        cmd = [
            *optimizer,
            "ci",
            str(clone),
            "--base",
            base,
            "--head",
            head,
            "--json",
            str(out),
            *extra,
        ]
        step.commands.append(shlex.join(cmd))
        done = run(cmd, log, cwd=ROOT, timeout=timeout)
        step.exit_code = done.returncode
        step.summary = optimizer_counts(out)
        if done.returncode == 3 or not out.exists():
            step.summary += f"; last line: {last_line(done)}"

    return timed(Step("optimizer ci", pair), body)


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [
        x for x in (done.stderr or "").splitlines() + (done.stdout or "").splitlines() if x.strip()
    ]
    return lines[-1].strip()[:200] if lines else ""


# --- main ------------------------------------------------------------------------------------


def table(steps: list[Step]) -> str:
    head = ("tool", "pair", "seconds", "exit", "load 1/5/15 at start", "verdict summary")
    rows = [head] + [
        (s.tool, s.pair, f"{s.seconds:.1f}", str(s.exit_code), s.load, s.summary) for s in steps
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 15)
    return "\n".join(lines)


def main() -> None:
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", choices=sorted(PROJECTS), required=True)
    ap.add_argument("--clone", type=Path, required=True, help="A git clone of the project.")
    ap.add_argument("--base", help="Parent of the performance commit (default: the project's).")
    ap.add_argument("--head", help="The performance commit (default: the project's).")
    ap.add_argument(
        "--tools-python",
        default=sys.executable,
        help="Python with asv / pytest-benchmark and the project's deps.",
    )
    ap.add_argument(
        "--optimizer",
        default=None,
        help="The optimizer command (default: `optimizer` on PATH, else "
        "`python3 -m optimizer` run from this checkout).",
    )
    ap.add_argument(
        "--asv-env",
        default=None,
        help="asv -E spec (default: virtualenv:X.Y of --tools-python; '' = the config's pythons).",
    )
    ap.add_argument(
        "--pb-threshold",
        type=float,
        default=0.05,
        help="pytest-benchmark: a min or median change counted as a change.",
    )
    ap.add_argument("--only", choices=["competitor", "optimizer"], help="Run one side only.")
    ap.add_argument("--no-aa", action="store_true", help="Skip the A/A pairs.")
    ap.add_argument(
        "--aa-copy",
        action="store_true",
        help="Also run optimizer ci on head vs a same-tree copy of head (another sha), "
        "the A/A pair asv gets.",
    )
    ap.add_argument("--timeout", type=float, default=3 * 3600, help="Per command (s).")
    ap.add_argument("--out", type=Path, default=None, help="Logs, JSON and table (default: tmp).")
    args = ap.parse_args(argv)

    p = PROJECTS[args.project]
    base, head = args.base or p.base, args.head or p.head
    clone = args.clone.resolve()
    out = (args.out or Path(tempfile.mkdtemp(prefix=f"ci-real-{args.project}-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="work-", dir=out))
    log = out / "commands.log"
    if args.optimizer:
        optimizer = shlex.split(args.optimizer)
    elif shutil.which("optimizer"):
        optimizer = [shutil.which("optimizer") or "optimizer"]
    else:
        optimizer = ["python3", "-m", "optimizer"]
    py = args.tools_python
    pyver = subprocess.run(
        [py, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    asv = [py, "-m", "asv"]
    env_spec = f"virtualenv:{pyver}" if args.asv_env is None else args.asv_env
    for rev in (base, head):
        check = ["git", "-C", str(clone), "cat-file", "-e", f"{rev}^{{commit}}"]
        if subprocess.run(check).returncode:
            raise SystemExit(f"{rev} is not a commit in {clone}")

    print(f"{args.project}: {base[:10]} -> {head[:10]} ({p.subject}); out: {out}", file=sys.stderr)
    t_all = time.monotonic()
    steps: list[Step] = []
    competitor = args.only in (None, "competitor")
    ours = args.only in (None, "optimizer")
    asv_repo, aa_copy = None, ""
    if (competitor and p.competitor == "asv") or (ours and args.aa_copy):
        asv_repo, aa_copy = work_clone(clone, work, head, log)
    if competitor and p.competitor == "asv":
        assert asv_repo is not None
        run([*asv, "machine", "--yes"], log, cwd=asv_repo)

    def competitor_step(pair: str) -> Step:
        b, h = (base, head) if pair == "A/B" else (head, head)
        if p.competitor == "asv":
            assert asv_repo is not None
            h = h if pair == "A/B" else aa_copy
            label = "A/B" if pair == "A/B" else f"A/A ({head[:8]} vs {aa_copy[:8]}, same tree)"
            return asv_step(asv_repo, asv, env_spec, b, h, label, log, args.timeout)
        return pb_pair(
            py,
            clone,
            work,
            p,
            b,
            h,
            pair if pair == "A/B" else "A/A (head twice)",
            args.pb_threshold,
            log,
            args.timeout,
        )

    def our_step(pair: str) -> Step:
        b, h = (base, head) if pair == "A/B" else (head, head)
        path = out / f"optimizer-{'ab' if pair == 'A/B' else 'aa'}.json"
        label = pair if pair == "A/B" else f"A/A ({head[:8]} vs itself)"
        return optimizer_step(optimizer, clone, b, h, label, path, extra, log, args.timeout)

    def our_copy_step() -> Step:
        assert asv_repo is not None
        label = f"A/A ({head[:8]} vs {aa_copy[:8]}, same tree)"
        path = out / "optimizer-aa-copy.json"
        return optimizer_step(optimizer, asv_repo, head, aa_copy, label, path, extra, log,
                              args.timeout)  # fmt: skip

    pairs = ["A/B"] + ([] if args.no_aa else ["A/A"])
    for pair in pairs:
        if competitor:
            steps.append(competitor_step(pair))
        if ours:
            steps.append(our_step(pair))
        if ours and pair == "A/A" and args.aa_copy:
            steps.append(our_copy_step())

    text = table(steps)
    footer = (
        f"{args.project}: base {base} head {head} ({p.subject})\n"
        f"python {pyver} ({py}); optimizer: {shlex.join(optimizer)}"
        f"{' ' + shlex.join(extra) if extra else ''}\n"
        f"machine: {platform.machine()} x{os.cpu_count()}; load now {load()}; "
        f"total {time.monotonic() - t_all:.0f} s; logs: {log}"
    )
    print(text)
    print(footer)
    (out / "table.txt").write_text(text + "\n" + footer + "\n")
    (out / "steps.json").write_text(json.dumps([s.__dict__ for s in steps], indent=2) + "\n")


if __name__ == "__main__":
    main()
