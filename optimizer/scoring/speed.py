"""Speedup metrics: SWE-fficiency's SR, GSO's opt@k, KernelBench's fast_p and PIE's best@k.

Sources:

- SWE-fficiency (2025): speedup ratio SR = candidate speedup / expert speedup, a failed
  candidate counting as speedup 1.0; published aggregate = harmonic mean over tasks.
- GSO: Shetty et al., "GSO: Challenging Software Optimization Tasks for Evaluating
  SWE-Agents" (2025): opt_base / opt_commit per run, opt@k over k runs.
- KernelBench: Ouyang et al., "KernelBench: Can LLMs Write Efficient GPU Kernels?" (2025):
  fast_p.
- PIE: Shypula et al., "Learning Performance-Improving Code Edits" (ICLR 2024): speedup
  best@k, %Opt, %Correct.

All functions are pure; invalid input raises ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

#: SR at or above this counts as matching the expert (SWE-fficiency's reporting threshold).
SR_MATCH = 0.95
#: GSO: round(geometric-mean speedup over base, 1 decimal) must reach this.
GSO_MIN_SPEEDUP = 1.2
#: GSO: harmonic mean of T_expert / T_patch must be strictly above this.
GSO_OPT_THRESH = 0.95
#: PIE: a program is "optimized" when speedup_best@k >= this.
PIE_OPT = 1.10


def _positive(value: float | None, name: str) -> float:
    if value is None or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number above 0, got {value!r}")
    return float(value)


def _geomean(values: Sequence[float]) -> float:
    return math.exp(math.fsum(math.log(v) for v in values) / len(values))


def _harmonic(values: Sequence[float]) -> float:
    return len(values) / math.fsum(1.0 / v for v in values)


# --- SWE-fficiency ---------------------------------------------------------------------------


def speedup_ratio(candidate_speedup: float | None, expert_speedup: float, correct: bool) -> float:
    """SWE-fficiency's speedup ratio of one task: SR = candidate speedup / expert speedup.

    Speedups are ``T_base / T_candidate`` and ``T_base / T_expert`` on the task's workload. A
    candidate that failed (did not apply, failed a test, timed out) counts as speedup 1.0, so
    its SR is ``1 / expert_speedup``; it is not zeroed. ``candidate_speedup`` is ignored (and
    may be None) when ``correct`` is false.

    Raises:
        ValueError: a non-positive or non-finite speedup where one is needed.
    """
    expert = _positive(expert_speedup, "expert_speedup")
    candidate = _positive(candidate_speedup, "candidate_speedup") if correct else 1.0
    return candidate / expert


@dataclass(frozen=True)
class SRTask:
    """One task's inputs to :func:`aggregate_sr` (see :func:`speedup_ratio`)."""

    candidate_speedup: float | None
    expert_speedup: float
    correct: bool


@dataclass(frozen=True)
class SRSummary:
    """SR over tasks: the published harmonic mean plus the views that keep it honest.

    The harmonic mean is dominated by tasks with huge expert speedups, hence the others.

    Attributes:
        n_tasks: number of tasks.
        harmonic_mean: harmonic mean of SR (SWE-fficiency's published aggregate).
        geometric_mean: geometric mean of SR.
        frac_sr_ge_095: fraction of tasks with SR >= 0.95.
        frac_correct_not_faster: fraction correct with candidate speedup <= 1.0.
        frac_incorrect: fraction of tasks whose candidate failed.
    """

    n_tasks: int
    harmonic_mean: float
    geometric_mean: float
    frac_sr_ge_095: float
    frac_correct_not_faster: float
    frac_incorrect: float


def aggregate_sr(tasks: Sequence[SRTask]) -> SRSummary:
    """Aggregate SWE-fficiency speedup ratios over tasks (one :class:`SRTask` each).

    Reports the harmonic mean of SR (the published number), the geometric mean, the fraction
    with SR >= 0.95, the fraction correct but not faster (candidate speedup <= 1.0) and the
    fraction incorrect.

    Raises:
        ValueError: no tasks, or an invalid speedup (see :func:`speedup_ratio`).
    """
    if len(tasks) == 0:
        raise ValueError("aggregate_sr needs at least one task")
    ratios = [speedup_ratio(t.candidate_speedup, t.expert_speedup, t.correct) for t in tasks]
    n = len(tasks)
    not_faster = sum(
        1 for t in tasks if t.correct and _positive(t.candidate_speedup, "speedup") <= 1.0
    )
    return SRSummary(
        n_tasks=n,
        harmonic_mean=_harmonic(ratios),
        geometric_mean=_geomean(ratios),
        frac_sr_ge_095=sum(1 for r in ratios if r >= SR_MATCH) / n,
        frac_correct_not_faster=not_faster / n,
        frac_incorrect=sum(1 for t in tasks if not t.correct) / n,
    )


def sr_interval(
    speedup: float, ci: Sequence[float], expert: float, expert_ci: Sequence[float]
) -> tuple[float, float]:
    """A 95% interval on SR = speedup / expert from the two speedups' independent intervals.

    On the log scale the ratio's half-widths add in quadrature, each side on its own (the
    lower bound pairs the candidate's lower half-width with the expert's upper one).
    """
    s, e = _positive(speedup, "speedup"), _positive(expert, "expert speedup")
    lo, hi = (_positive(v, "speedup CI") for v in ci)
    elo, ehi = (_positive(v, "expert CI") for v in expert_ci)
    down = math.hypot(math.log(s / min(lo, s)), math.log(max(ehi, e) / e))
    up = math.hypot(math.log(max(hi, s) / s), math.log(e / min(elo, e)))
    return (s / e) * math.exp(-down), (s / e) * math.exp(up)


# --- GSO -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerTestTimes:
    """One GSO performance test's mean times in seconds: base, candidate patch, expert commit."""

    base: float
    patch: float
    expert: float | None = None


@dataclass(frozen=True)
class GsoRun:
    """One run's attempt at one GSO task.

    Attributes:
        correct: every hidden test's equivalence check passed.
        per_test: the timings of each performance test (needed when ``correct``).
    """

    correct: bool
    per_test: Sequence[PerTestTimes] = ()


def opt_base(run: GsoRun) -> bool:
    """GSO's opt_base: a correct run that beats the base.

    GSO (Shetty et al., 2025): the candidate is faster on average (mean over tests of
    T_patch < mean of T_base) AND ``round(geomean over tests of T_base / T_patch, 1) >= 1.2``.

    Raises:
        ValueError: a correct run without per-test timings, or a non-positive time.
    """
    if not run.correct:
        return False
    if len(run.per_test) == 0:
        raise ValueError("a correct GSO run needs per-test timings")
    base = [_positive(t.base, "base time") for t in run.per_test]
    patch = [_positive(t.patch, "patch time") for t in run.per_test]
    faster = math.fsum(base) / len(base) > math.fsum(patch) / len(patch)
    gm = _geomean([b / p for b, p in zip(base, patch, strict=True)])
    return faster and round(gm, 1) >= GSO_MIN_SPEEDUP


def opt_commit(run: GsoRun) -> bool:
    """GSO's opt_commit: opt_base AND the run matches the expert commit.

    GSO (Shetty et al., 2025): in addition to :func:`opt_base`, the harmonic mean over tests
    of ``T_expert / T_patch`` is strictly above 0.95.

    Raises:
        ValueError: as :func:`opt_base`, or a test without an expert time.
    """
    if not opt_base(run):
        return False
    ratios = [
        _positive(t.expert, "expert time") / _positive(t.patch, "patch time") for t in run.per_test
    ]
    return _harmonic(ratios) > GSO_OPT_THRESH


def opt_at_k(
    tasks: Mapping[str, Sequence[GsoRun]],
    k: int,
    against: Literal["commit", "base"] = "commit",
) -> float:
    """GSO's opt@k: the fraction of tasks that at least one of the first k runs optimizes.

    GSO (Shetty et al., 2025): ``|union over k runs of tasks where opt_commit succeeds| /
    number of tasks``. Each task maps to its runs in order; the first k are used.
    ``against="base"`` uses :func:`opt_base` instead (a looser, diagnostic number).

    Raises:
        ValueError: no tasks, k < 1, or a task with fewer than k runs.
    """
    if len(tasks) == 0:
        raise ValueError("opt_at_k needs at least one task")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    check = opt_commit if against == "commit" else opt_base
    hits = 0
    for task_id, runs in tasks.items():
        if len(runs) < k:
            raise ValueError(f"task {task_id!r} has {len(runs)} runs, fewer than k={k}")
        hits += any(check(run) for run in runs[:k])
    return hits / len(tasks)


# --- KernelBench -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelResult:
    """One KernelBench task: correctness and times (seconds) of the reference and the kernel.

    ``t_ref`` and ``t_new`` are needed only when ``correct``.
    """

    correct: bool
    t_ref: float | None = None
    t_new: float | None = None


def kernel_speedup(result: KernelResult) -> float:
    """``t_ref / t_new`` of one KernelBench result (both must be valid times)."""
    return _positive(result.t_ref, "t_ref") / _positive(result.t_new, "t_new")


def fast_p(results: Sequence[KernelResult], p: float) -> float:
    """KernelBench's fast_p: the fraction of tasks that are correct AND faster than p.

    KernelBench (Ouyang et al., 2025): ``fast_p = (1/N) * sum_i [correct_i and
    t_ref_i / t_new_i > p]``. The comparison is strict and N counts every task, failed ones
    included, so fast_0 is the correctness rate. Use it once with the eager-PyTorch reference
    times and once with the torch.compile ones.

    Raises:
        ValueError: no results, a non-finite p, or a correct result without valid times.
    """
    if len(results) == 0:
        raise ValueError("fast_p needs at least one result")
    if not math.isfinite(p):
        raise ValueError(f"p must be finite, got {p!r}")
    return sum(1 for r in results if r.correct and kernel_speedup(r) > p) / len(results)


def geomean_speedup(results: Sequence[KernelResult]) -> float | None:
    """Geometric-mean speedup ``t_ref / t_new`` over the correct tasks (None if none).

    KernelBench (Ouyang et al., 2025) reports it beside fast_p.
    """
    speedups = [kernel_speedup(r) for r in results if r.correct]
    return _geomean(speedups) if speedups else None


# --- PIE -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generation:
    """One generated program: whether it is fully correct, and its runtime (seconds)."""

    correct: bool
    runtime: float | None = None


@dataclass(frozen=True)
class PieProgram:
    """One source program: its runtime ``t_src`` and its generations in order."""

    t_src: float
    generations: Sequence[Generation]


@dataclass(frozen=True)
class PieSummary:
    """PIE's metrics at one k (fractions in 0..1; multiply by 100 for the paper's %).

    Attributes:
        n_programs: number of programs.
        speedup: arithmetic mean over programs of speedup_best@k.
        frac_opt: fraction with speedup_best@k >= 1.10 (%Opt).
        frac_correct: fraction with a fully correct generation among the first k (%Correct).
    """

    n_programs: int
    speedup: float
    frac_opt: float
    frac_correct: float


def pie_best_speedup(program: PieProgram, k: int) -> float:
    """PIE's speedup_best@k of one program.

    ``max(1.0, t_src / min runtime over the first k correct generations)``; an incorrect
    generation's runtime is infinite, so a program without a correct one scores 1.0.
    """
    t_src = _positive(program.t_src, "t_src")
    runtimes = [_positive(g.runtime, "runtime") for g in program.generations[:k] if g.correct]
    return max(1.0, t_src / min(runtimes, default=math.inf))


def pie_metrics(programs: Sequence[PieProgram], k: int) -> PieSummary:
    """PIE's speedup best@k, %Opt and %Correct over programs.

    PIE (Shypula et al., ICLR 2024): speedup is the arithmetic mean over programs of
    :func:`pie_best_speedup`; %Opt the fraction with speedup_best@k >= 1.10; %Correct the
    fraction with at least one fully correct generation among the first k.

    Raises:
        ValueError: no programs, k < 1, a program with fewer than k generations, or an
            invalid time.
    """
    if len(programs) == 0:
        raise ValueError("pie_metrics needs at least one program")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    best: list[float] = []
    correct = 0
    for i, program in enumerate(programs):
        if len(program.generations) < k:
            raise ValueError(
                f"program {i} has {len(program.generations)} generations, fewer than k={k}"
            )
        best.append(pie_best_speedup(program, k))
        correct += any(g.correct for g in program.generations[:k])
    n = len(programs)
    return PieSummary(
        n_programs=n,
        speedup=math.fsum(best) / n,
        frac_opt=sum(1 for s in best if s >= PIE_OPT) / n,
        frac_correct=correct / n,
    )


# --- DPS (EvalPerf) ------------------------------------------------------------------------

#: Two reference solutions whose speedups differ by less than this factor share a cluster,
#: and a candidate within it of a cluster's speed reaches that cluster.
DPS_TOLERANCE = 0.10


@dataclass(frozen=True)
class DpsCluster:
    """A performance level: its slowest member's speedup and its cumulative ratio (0..1)."""

    speedup: float
    size: int
    cumulative: float


def dps_clusters(speedups: Sequence[float], tolerance: float = DPS_TOLERANCE) -> list[DpsCluster]:
    """EvalPerf's performance levels from the reference solutions' speedups over the base.

    Sorted slowest to fastest; a solution within ``tolerance`` of the cluster's slowest member
    joins it. Each cluster's cumulative ratio is the share of solutions in it and in every
    slower cluster.
    """
    values = sorted(_positive(s, "reference speedup") for s in speedups)
    if not values:
        raise ValueError("DPS needs at least one reference solution")
    groups: list[list[float]] = []
    for s in values:
        if groups and s <= groups[-1][0] * (1 + tolerance):
            groups[-1].append(s)
        else:
            groups.append([s])
    out, seen = [], 0
    for g in groups:
        seen += len(g)
        out.append(DpsCluster(speedup=g[0], size=len(g), cumulative=seen / len(values)))
    return out


def dps(
    candidate_speedup: float | None,
    correct: bool,
    clusters: Sequence[DpsCluster],
    tolerance: float = DPS_TOLERANCE,
) -> tuple[float, float]:
    """(DPS, DPS_norm) of one candidate, in 0..100 (EvalPerf, Liu et al. 2024).

    The candidate is matched to the fastest cluster whose speed it reaches (within
    ``tolerance``); DPS is that cluster's cumulative ratio x 100 and DPS_norm its rank /
    number of clusters x 100. An incorrect candidate, or one slower than every cluster,
    scores 0.
    """
    if not clusters:
        raise ValueError("DPS needs at least one cluster")
    if not correct or candidate_speedup is None:
        return 0.0, 0.0
    s = _positive(candidate_speedup, "candidate speedup")
    reached = [i for i, c in enumerate(clusters) if s * (1 + tolerance) >= c.speedup]
    if not reached:
        return 0.0, 0.0
    best = reached[-1]
    return clusters[best].cumulative * 100, (best + 1) / len(clusters) * 100
