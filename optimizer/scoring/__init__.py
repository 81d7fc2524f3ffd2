"""Scoring: the efficiency and speed metrics of the code-optimization benchmarks.

Pure, typed functions; each cites the benchmark or paper it follows:

- ENAMEL: :func:`eff_at_k`, :func:`efficiency_score`, :func:`hodges_lehmann`.
- Codex / HumanEval: :func:`pass_at_k`.
- SWE-fficiency: :func:`speedup_ratio`, :func:`aggregate_sr`.
- GSO: :func:`opt_base`, :func:`opt_commit`, :func:`opt_at_k`.
- KernelBench: :func:`fast_p`, :func:`geomean_speedup`.
- PIE: :func:`pie_metrics`, :func:`pie_best_speedup`.
- EvalPerf: :func:`dps_clusters`, :func:`dps`.

:mod:`optimizer.scoring.report` turns a results file's records into per-k tables.
"""

from optimizer.scoring.efficiency import (
    DEFAULT_ALPHA,
    DEFAULT_HARDNESS,
    EfficiencyScore,
    LevelRun,
    Outcome,
    eff_at_k,
    efficiency_score,
    hodges_lehmann,
    pass_at_k,
)
from optimizer.scoring.speed import (
    DpsCluster,
    Generation,
    GsoRun,
    KernelResult,
    PerTestTimes,
    PieProgram,
    PieSummary,
    SRSummary,
    SRTask,
    aggregate_sr,
    dps,
    dps_clusters,
    fast_p,
    geomean_speedup,
    kernel_speedup,
    opt_at_k,
    opt_base,
    opt_commit,
    pie_best_speedup,
    pie_metrics,
    speedup_ratio,
    sr_interval,
)

__all__ = [
    "DpsCluster",
    "DEFAULT_ALPHA",
    "DEFAULT_HARDNESS",
    "EfficiencyScore",
    "Generation",
    "GsoRun",
    "KernelResult",
    "LevelRun",
    "Outcome",
    "PerTestTimes",
    "PieProgram",
    "PieSummary",
    "SRSummary",
    "SRTask",
    "aggregate_sr",
    "dps",
    "dps_clusters",
    "eff_at_k",
    "efficiency_score",
    "fast_p",
    "geomean_speedup",
    "hodges_lehmann",
    "kernel_speedup",
    "opt_at_k",
    "opt_base",
    "opt_commit",
    "pass_at_k",
    "pie_best_speedup",
    "pie_metrics",
    "speedup_ratio",
    "sr_interval",
]
