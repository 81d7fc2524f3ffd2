"""The records of `optimizer ci`, and the pure rules that judge them (Holm, exit codes).

Versioned (``CIRecord.version``): the JSON that ``--json`` writes is this model.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, Field

from optimizer.bench import Side
from optimizer.ci_benchmarks import MetricChoice
from profilers import HotspotReport
from profilers.compare import Metric, MetricResult
from sandbox import Backend

Verdict = Literal["regression", "improvement", "unchanged", "inconclusive", "error"]

EXIT = {"ok": 0, "regression": 1, "inconclusive": 2, "error": 3}


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
    max_repeats: int = Field(40, ge=2, description="Most wall-clock pairs per comparison.")
    budget_s: float = Field(20.0, gt=0, description="Seconds per benchmark and metric.")
    timeout_s: float = Field(
        60.0, gt=0, description="Limit of one native run; under valgrind it is 30x this."
    )
    select: str | None = Field(None, description="Regex: only benchmarks whose name matches.")
    confirm: bool = Field(True, description="Re-run flagged regressions to confirm them.")
    hotspots: bool = Field(True, description="Diff cProfile hotspots of each regression.")
    fail_on_inconclusive: bool = False
    python: str = "python3"
    pip: list[str] = Field(
        default_factory=list, description="More pip requirements for both sides' image."
    )
    build: str | None = Field(None, description="A build command; overrides [ci] build.")


class BenchmarkDone(BaseModel):
    """A progress event: one benchmark has all its metrics measured (``tick``)."""

    index: int = Field(description="How many benchmarks are done, this one included.")
    total: int
    name: str
    metrics: list[tuple[str, float, str]] = Field(
        description="(metric, ratio, provisional verdict) per metric; Holm may change it."
    )
    error: str | None = None
    seconds: float = Field(description="Time spent measuring this benchmark.")

    def line(self) -> str:
        """One plain log line: ``[3/32] name  instructions 0.982 unchanged  ...  4.1 s``."""
        parts = [f"{m} {r:.3f} {v}" for m, r, v in self.metrics]
        if self.error:
            parts.append(f"error: {self.error}")
        return (
            f"[{self.index}/{self.total}] {self.name}  "
            + "  ".join(parts)
            + (f"  {self.seconds:.1f} s")
        )


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
    note: str | None = Field(None, description="Why the metrics' verdicts were overruled.")


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
