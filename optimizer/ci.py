"""`optimizer ci`: measure a repository's benchmarks at two revisions and gate on regressions.

The steps:

1. The benchmarks are found in the **head** revision (``optimizer.ci_benchmarks``), and head's
   benchmark files are copied over base's, so both sides run the same measurement (as asv
   does): a pull request that edits a benchmark is not mistaken for a slower library.
2. Each side gets its own sandbox (the optional ``build`` command runs once in each), and for
   every benchmark and metric the two sides' runs are interleaved, with adaptive repeats
   (``profilers.compare.compare_metric``, the same path grading and `bench` use).
3. Per metric, the benchmarks form one family: each comparison runs at the Bonferroni level
   ``alpha / m``, and the p-values are then Holm-adjusted. A metric says ``regression`` when
   its comparison says ``slower`` (ratio >= 1 + threshold, the whole CI above 1) with a
   Holm-adjusted p below ``alpha``, **and** a confirming re-run (fresh pairs) says
   ``slower`` again; a flagged but unconfirmed change is ``inconclusive``. ``improvement``
   mirrors it (confirmed too, so noise is not sold as a win); ``unchanged`` means the CI
   sits inside the threshold band.
4. A benchmark's verdict: ``regression`` if any of its metrics has a confirmed regression
   (instruction counts catch small pure-Python regressions without noise; wall clock
   covers I/O and native code). Otherwise the primary metric decides: instruction counts
   where measured (deterministic), else wall clock. A benchmark that fails is ``error``.
5. Exit code: 3 if anything failed (a harness, build or benchmark error), else 1 on a
   confirmed regression, else 2 if anything is inconclusive (1 with
   ``fail_on_inconclusive``), else 0.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, Field

from optimizer.bench import Side, machine_info
from optimizer.ci_benchmarks import Benchmark, MetricChoice, discover
from optimizer.errors import UserError
from profilers import HotspotReport, ProfileError, Workload, install, profile_hotspots
from profilers.common import last_line
from profilers.compare import (
    INSTRUCTION_PAIRS,
    Metric,
    MetricResult,
    Sampler,
    compare_metric,
    metrics_of,
)
from profilers.stats import ALPHAS
from sandbox import Backend, Limits, Sandbox, Source, open_sandbox
from sandbox.images import EnvRecipe, image_for
from sandbox.source import materialize, resolve

Verdict = Literal["regression", "improvement", "unchanged", "inconclusive", "error"]
EXIT = {"ok": 0, "regression": 1, "inconclusive": 2, "error": 3}
#: Most instruction-count pairs in CI: enough for p < alpha / m with dozens of benchmarks.
CI_INSTRUCTION_PAIRS = (INSTRUCTION_PAIRS[0], 10)
#: cProfile runs per side for a regression's hotspot diff (the median is kept).
HOTSPOT_RUNS = 3


class CIConfig(BaseModel):
    """What `optimizer ci` compares, and how hard it tries."""

    repo: Path
    base: str | None = Field(None, description="None: the merge-base with the default branch.")
    head: str = "HEAD"
    metric: MetricChoice = "both"
    threshold: float = Field(0.02, gt=0, lt=1, description="Smallest change that counts.")
    alpha: float | None = Field(None, description="Family-wise level; None: per-metric default.")
    sandbox: Backend = "auto"
    repeats: int = Field(10, ge=2, description="Wall-clock pairs to start with.")
    max_repeats: int = Field(60, ge=2, description="Most wall-clock pairs per comparison.")
    budget_s: float = Field(60.0, gt=0, description="Seconds per benchmark and metric.")
    timeout_s: float = Field(120.0, gt=0, description="Wall-clock limit of one run.")
    select: str | None = Field(None, description="Regex: only benchmarks whose name matches.")
    confirm: bool = Field(True, description="Re-run flagged regressions to confirm them.")
    hotspots: bool = Field(True, description="Diff cProfile hotspots of each regression.")
    fail_on_inconclusive: bool = False
    python: str = "python3"


class MetricVerdict(BaseModel):
    metric: Metric
    verdict: Verdict
    threshold: float
    alpha: float = Field(description="The family-wise level for this metric.")
    p_holm: float = Field(description="Holm-adjusted one-sided p in the ratio's direction.")
    result: MetricResult
    confirm: MetricResult | None = Field(None, description="The confirming re-run, if any.")


class HotspotChange(BaseModel):
    location: str
    base_s: float = Field(description="Own time at base (cProfile, one run).")
    head_s: float
    base_share: float = Field(description="Share of base's own time (0-1).")
    head_share: float
    growth: float = Field(description="(head_s - base_s) / base's total: part of the change.")


class BenchmarkResult(BaseModel):
    name: str
    origin: str
    workload: str
    verdict: Verdict
    error: str | None = None
    metrics: list[MetricVerdict] = Field(default_factory=list)
    hotspots: list[HotspotChange] | None = None
    hotspots_note: str | None = None


class CIRecord(BaseModel):
    version: int = 1
    repo: str
    base: Side
    head: Side
    backend: str
    environment: dict[str, str | int | float | bool | None]
    metric: MetricChoice
    threshold: float
    config_file: str | None
    benchmarks: list[BenchmarkResult]
    skipped: list[str] = Field(description="Discovered tests that cannot run, with why.")
    exit_code: int
    summary: str
    started_at: str
    elapsed_s: float


def default_base(root: Path, head: str) -> str:
    """The merge-base of ``head`` with the default branch, or head's parent on that branch."""
    head_sha = _git(root, "rev-parse", "--verify", f"{head}^{{commit}}")
    refs = []
    origin_head = _git(root, "symbolic-ref", "-q", "refs/remotes/origin/HEAD")
    if origin_head:
        refs.append(origin_head)
    refs += ["refs/remotes/origin/main", "refs/remotes/origin/master", "refs/heads/main"]
    refs += ["refs/heads/master"]
    for ref in refs:
        if not _git(root, "rev-parse", "--verify", "-q", ref):
            continue
        base = _git(root, "merge-base", ref, head_sha)
        if base and base != head_sha:
            return base
    parent = _git(root, "rev-parse", "--verify", "-q", f"{head_sha}^")
    if parent:
        return parent
    raise UserError(f"{head} has no parent and no default branch to compare with", "pass --base")


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    m = len(p_values)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def hotspot_diff(
    base: list[HotspotReport], head: list[HotspotReport], top: int = 5
) -> list[HotspotChange]:
    """The functions whose own time grew most (median over runs), as a share of base's total."""

    def medians(reports: list[HotspotReport]) -> tuple[dict[str, tuple[float, float]], float]:
        own: dict[str, list[tuple[float, float]]] = {}
        for r in reports:
            for h in r.top:
                own.setdefault(h.location, []).append((h.own_s, h.own_share))
        n = len(reports)  # a function missing from a run had no own time in it
        mid = {k: sorted(v + [(0.0, 0.0)] * (n - len(v)))[n // 2] for k, v in own.items()}
        return mid, statistics.median(r.total_s for r in reports)

    before, total = medians(base)
    after, _ = medians(head)
    changes = []
    for loc in after.keys() | before.keys():
        (base_s, base_share), (head_s, head_share) = (
            before.get(loc, (0.0, 0.0)),
            after.get(loc, (0.0, 0.0)),
        )
        growth = (head_s - base_s) / (total or 1e-12)
        changes.append(
            HotspotChange(
                location=loc,
                base_s=base_s,
                head_s=head_s,
                base_share=base_share,
                head_share=head_share,
                growth=growth,
            )
        )
    return sorted((c for c in changes if c.growth > 0.005), key=lambda c: -c.growth)[:top]


def exit_code(results: list[BenchmarkResult], fail_on_inconclusive: bool = False) -> int:
    verdicts = {r.verdict for r in results}
    if "error" in verdicts:
        return EXIT["error"]
    if "regression" in verdicts:
        return EXIT["regression"]
    if "inconclusive" in verdicts:
        return EXIT["regression"] if fail_on_inconclusive else EXIT["inconclusive"]
    return EXIT["ok"]


def summary_line(results: list[BenchmarkResult]) -> str:
    counts = {v: sum(r.verdict == v for r in results) for v in get_args(Verdict)}
    parts = [f"{n} {v}" for v, n in counts.items() if n]
    return f"{len(results)} benchmarks: " + ", ".join(parts)


@dataclass
class _Side:
    """One revision's sandbox, with the harness and head's benchmark files installed."""

    side: Side
    sb: Sandbox


def _metrics(b: Benchmark, default: MetricChoice) -> list[Metric]:
    return metrics_of(b.metric or default)


class _Gate:
    """Measures every benchmark on both sides, then applies Holm and the confirming runs."""

    def __init__(self, cfg: CIConfig, sides: dict[str, _Side], say: Callable[[str], None]):
        self.cfg, self.sides, self.say = cfg, sides, say

    def runners(self, b: Benchmark) -> tuple[Sampler, Sampler]:
        workload = Workload(kind=b.kind, target=b.path if b.kind == "file" else b.command or "")
        made = [
            Sampler(
                s.side.name(),
                s.sb,
                workload,
                timeout_s=b.timeout_s or self.cfg.timeout_s,
                python=self.cfg.python,
                what=f"benchmark {b.name}",
            )
            for s in (self.sides["base"], self.sides["head"])
        ]
        return made[0], made[1]

    def alpha(self, metric: Metric) -> float:
        return self.cfg.alpha if self.cfg.alpha is not None else ALPHAS[metric]

    def measure(
        self, b: Benchmark, metric: Metric, family: int, runners: tuple[Sampler, Sampler]
    ) -> MetricResult:
        pairs = (
            (self.cfg.repeats, self.cfg.max_repeats) if metric == "wall" else CI_INSTRUCTION_PAIRS
        )
        return compare_metric(
            metric, *runners, floor=b.threshold or self.cfg.threshold,
            alpha=self.alpha(metric) / family, pairs=pairs, budget_s=self.cfg.budget_s,
        )  # fmt: skip

    def run(self, benchmarks: list[Benchmark]) -> list[BenchmarkResult]:
        family = {
            m: sum(m in _metrics(b, self.cfg.metric) for b in benchmarks) or 1
            for m in ("wall", "instructions")
        }
        first: dict[str, dict[Metric, MetricResult]] = {}
        errors: dict[str, str] = {}
        runners: dict[str, tuple[Sampler, Sampler]] = {}
        for i, b in enumerate(benchmarks, 1):
            self.say(f"[{i}/{len(benchmarks)}] {b.name}")
            runners[b.name] = self.runners(b)
            first[b.name] = {}
            try:
                for metric in _metrics(b, self.cfg.metric):
                    first[b.name][metric] = self.measure(b, metric, family[metric], runners[b.name])
            except UserError as exc:
                errors[b.name] = str(exc)
                self.say(f"  error: {exc}")
        verdicts = self.judge(benchmarks, first, errors, family, runners)
        return [self.result(b, verdicts.get(b.name, []), errors.get(b.name)) for b in benchmarks]

    def judge(self, benchmarks, first, errors, family, runners) -> dict[str, list[MetricVerdict]]:
        out: dict[str, list[MetricVerdict]] = {b.name: [] for b in benchmarks}
        by_name = {b.name: b for b in benchmarks}
        for metric in ("instructions", "wall"):
            names = [b.name for b in benchmarks if b.name not in errors and metric in first[b.name]]
            adjusted = holm([first[n][metric].p_value for n in names])
            alpha = self.alpha(metric)
            for name, p_holm in zip(names, adjusted, strict=True):
                b = by_name[name]
                res = first[name][metric]
                mv = MetricVerdict(
                    metric=metric, verdict="inconclusive", threshold=b.threshold or
                    self.cfg.threshold, alpha=alpha, p_holm=p_holm, result=res,
                )  # fmt: skip
                if res.verdict == "same":
                    mv.verdict = "unchanged"
                elif res.verdict in ("faster", "slower") and p_holm < alpha:
                    mv.verdict = self.confirm(b, metric, family[metric], runners[name], mv)
                out[name].append(mv)
        return out

    def confirm(self, b, metric, family, runners, mv: MetricVerdict) -> Verdict:
        """A change is called only if a re-run on fresh pairs says the same again."""
        called: Verdict = "regression" if mv.result.verdict == "slower" else "improvement"
        if not self.cfg.confirm or mv.result.deterministic:
            return called  # constant counts on both sides: a re-run would count the same
        self.say(f"{b.name}: {metric} looks {mv.result.ratio - 1:+.1%}; confirming with a re-run")
        try:
            mv.confirm = self.measure(b, metric, family, runners)
        except UserError as exc:
            self.say(f"  the confirming run failed: {exc}")
            return "inconclusive"
        return called if mv.confirm.verdict == mv.result.verdict else "inconclusive"

    def result(self, b: Benchmark, metrics: list[MetricVerdict], error: str | None):
        workload = b.path if b.kind == "file" else b.command
        res = BenchmarkResult(
            name=b.name, origin=b.origin, workload=workload or "", verdict="error", error=error
        )
        res.metrics = metrics
        if error is None:
            by = {m.metric: m for m in metrics}
            primary = by.get("instructions") or by["wall"]
            regressed = any(m.verdict == "regression" for m in metrics)
            res.verdict = "regression" if regressed else primary.verdict
        if res.verdict == "regression" and self.cfg.hotspots:
            self.add_hotspots(b, res)
        return res

    def add_hotspots(self, b: Benchmark, res: BenchmarkResult) -> None:
        if b.kind != "file":
            res.hotspots_note = "hotspots need a Python-file workload (setup/workload)"
            return
        workload = Workload(kind="file", target=b.path or "")
        limits = Limits(wall_s=b.timeout_s or self.cfg.timeout_s)
        reports: dict[str, list[HotspotReport]] = {"base": [], "head": []}
        try:
            for _ in range(HOTSPOT_RUNS):  # interleaved, like the measurements
                for k, got in reports.items():
                    sb = self.sides[k].sb
                    got.append(
                        profile_hotspots(sb, workload, python=self.cfg.python, limits=limits)
                    )
        except ProfileError as exc:
            res.hotspots_note = f"profiling failed: {exc.cause}"
            return
        res.hotspots = hotspot_diff(reports["base"], reports["head"])


def _open_side(
    label: str, src: Source, cfg: CIConfig, image: str | None, files: dict[str, bytes],
    build: str | None, stack: contextlib.ExitStack, say: Callable[[str], None],
) -> _Side:  # fmt: skip
    say(f"copying {label} ({src.rev}) into a {cfg.sandbox} sandbox")
    sb = stack.enter_context(
        open_sandbox(src, cfg.sandbox, limits=Limits(wall_s=cfg.timeout_s), image=image)
    )
    side = Side(label=label, rev=src.rev, sha=sb.sha)  # type: ignore[arg-type]
    install(sb, Workload(kind="command", target="true"))
    for path, data in files.items():
        sb.write_file(path, data)
    if build:
        say(f"building {label}: {build}")
        r = sb.run(build, limits=Limits(wall_s=max(cfg.timeout_s, 600)))
        if not r.ok:
            tail = last_line(r.stderr) or last_line(r.stdout) or r.reason or ""
            raise UserError(
                f"the build command failed on {side.name()}: {r.status.value}: {tail}",
                "fix the [tool.optimizer.ci] build command, or the code it builds",
            )
    sb.seal()  # every measured run starts from the built tree
    return _Side(side, sb)


def run_ci(cfg: CIConfig, progress: Callable[[str], None] | None = None) -> CIRecord:
    """Measure the benchmarks at base and head, and judge each one."""
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    root, head_sha = resolve(Source(repo=cfg.repo, rev=cfg.head))
    base_rev = cfg.base or default_base(root, head_sha)
    resolve(Source(repo=root, rev=base_rev))  # an unknown --base fails here, before any work
    with tempfile.TemporaryDirectory(prefix="optimizer-ci-") as tmp:
        materialize(Source(repo=root, rev=head_sha), Path(tmp))
        found = discover(Path(tmp))
        benchmarks = found.benchmarks
        if cfg.select:
            try:
                pattern = re.compile(cfg.select)
            except re.error as exc:
                raise UserError(f"--bench {cfg.select!r} is not a regex: {exc}", "fix it") from None
            benchmarks = [b for b in benchmarks if pattern.search(b.name)]
        if not benchmarks:
            raise UserError(
                f"no benchmarks found at {cfg.head} ({head_sha[:12]})"
                + (f" matching {cfg.select!r}" if cfg.select else ""),
                "declare them in [tool.optimizer.benchmarks] of pyproject.toml, or add "
                "pytest-benchmark tests or an asv benchmarks/ folder",
            )
        files = {p: (Path(tmp) / p).read_bytes() for b in benchmarks for p in b.files}
        files.update({b.path: b.code.encode() for b in benchmarks if b.code and b.path})
    say(f"{len(benchmarks)} benchmarks; base {base_rev}, head {cfg.head}")
    s = found.settings
    recipe = EnvRecipe(pip=s.pip, apt=s.apt)
    image = image_for(recipe, cfg.sandbox, s.image, log=say)
    with contextlib.ExitStack() as stack:
        sides = {
            label: _open_side(label, Source(repo=root, rev=rev), cfg, image, files, s.build,
                              stack, say)
            for label, rev in (("base", base_rev), ("head", cfg.head))
        }  # fmt: skip
        results = _Gate(cfg, sides, say).run(benchmarks)
        backend = sides["base"].sb.backend
    code = exit_code(results, cfg.fail_on_inconclusive)
    return CIRecord(
        repo=str(root),
        base=sides["base"].side,
        head=sides["head"].side,
        backend=backend,
        environment=machine_info(backend),
        metric=cfg.metric,
        threshold=cfg.threshold,
        config_file=found.config_file,
        benchmarks=results,
        skipped=found.skipped,
        exit_code=code,
        summary=summary_line(results),
        started_at=started_at,
        elapsed_s=round(time.monotonic() - started, 3),
    )
