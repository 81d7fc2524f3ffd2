"""From results-file records to score tables: grouping, the first k samples, metric rows.

Results are grouped by (agent, model), then by task; a task's samples are ordered by their
``sample`` index. At each k:

- ``passk`` / ``effk`` use the unbiased estimators over all n samples of a task (n >= k).
- ``optk`` uses the first k runs (``run``, defaulting to ``sample``).
- ``sr``, ``fastp`` and ``pie`` use the first k samples, keeping the best correct one (the
  highest speedup); with k = 1 that is each paper's own single-sample number.

Problems with the file's content raise :class:`~optimizer.errors.UserError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from optimizer.errors import UserError
from optimizer.results import SampleResult
from optimizer.scoring.efficiency import eff_at_k, pass_at_k
from optimizer.scoring.speed import (
    Generation,
    GsoRun,
    KernelResult,
    PerTestTimes,
    PieProgram,
    SRTask,
    aggregate_sr,
    fast_p,
    geomean_speedup,
    kernel_speedup,
    opt_at_k,
    pie_metrics,
)

#: The metrics ``optimizer score --metric`` knows, with a one-line description each.
METRICS: dict[str, str] = {
    "sr": "SWE-fficiency speedup ratio: harmonic mean (published), geomean, fractions",
    "effk": "ENAMEL eff@k (unbiased estimator), with pass@k beside it",
    "passk": "Codex/HumanEval pass@k (unbiased estimator)",
    "optk": "GSO opt@k (opt_commit), with opt_base@k beside it",
    "fastp": "KernelBench fast_p against torch eager and torch.compile, with geomean speedup",
    "pie": "PIE speedup best@k, %Opt (>= 1.10x) and %Correct",
}
#: Default fast_p thresholds.
DEFAULT_PS: tuple[float, ...] = (0.0, 1.0, 2.0)

Cell = float | int | str | None
Tasks = dict[str, list[SampleResult]]

_HINT = "see the results-file schema under 'optimizer score' in the README"


@dataclass(frozen=True)
class ScoreTable:
    """A metric's numbers: one row per (agent, model, k[, p]), keyed by ``columns``."""

    metric: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, Cell], ...]
    n_tasks: int
    n_results: int


def _missing(r: SampleResult, field: str, metric: str) -> UserError:
    return UserError(
        f"task {r.task_id!r} sample {r.sample} has no {field}, which --metric {metric} needs",
        f"add it to that line; {_HINT}",
    )


def _first_k(tasks: Tasks, k: int, unit: str = "samples") -> dict[str, list[SampleResult]]:
    out: dict[str, list[SampleResult]] = {}
    for task_id, samples in tasks.items():
        if k > len(samples):
            raise UserError(
                f"k={k} is larger than the {len(samples)} {unit} of task {task_id!r} "
                f"(agent {samples[0].agent!r})",
                f"pass -k at most {len(samples)}, or evaluate more {unit}",
            )
        out[task_id] = samples[:k]
    return out


def _speedup(r: SampleResult, metric: str) -> float:
    value = r.resolved_speedup()
    if value is None:
        raise _missing(r, "speedup (or base_time_s and candidate_time_s)", metric)
    return value


def _best_correct(
    samples: Sequence[SampleResult], key: Callable[[SampleResult], float]
) -> SampleResult | None:
    correct = [s for s in samples if s.correct]
    return max(correct, key=key) if correct else None


def _rows_passk(tasks: Tasks, k: int) -> list[dict[str, Cell]]:
    _first_k(tasks, k)
    values = [pass_at_k(len(s), sum(r.correct for r in s), k) for s in tasks.values()]
    return [{"k": k, "tasks": len(tasks), "pass@k": math.fsum(values) / len(values)}]


def _efficiency(r: SampleResult) -> float:
    if r.efficiency is not None:
        return r.efficiency
    if not r.correct:
        return 0.0
    raise _missing(r, "efficiency", "effk")


def _rows_effk(tasks: Tasks, k: int) -> list[dict[str, Cell]]:
    _first_k(tasks, k)
    eff = [eff_at_k([_efficiency(r) for r in s], k) for s in tasks.values()]
    passes = [pass_at_k(len(s), sum(r.correct for r in s), k) for s in tasks.values()]
    n = len(tasks)
    return [{"k": k, "tasks": n, "eff@k": math.fsum(eff) / n, "pass@k": math.fsum(passes) / n}]


def _rows_sr(tasks: Tasks, k: int) -> list[dict[str, Cell]]:
    inputs: list[SRTask] = []
    for samples in _first_k(tasks, k).values():
        best = _best_correct(samples, lambda r: _speedup(r, "sr"))
        chosen = best or samples[0]
        expert = chosen.resolved_expert_speedup()
        if expert is None:
            raise _missing(chosen, "expert_speedup (or base_time_s and expert_time_s)", "sr")
        speedup = _speedup(chosen, "sr") if best else None
        inputs.append(SRTask(speedup, expert, best is not None))
    s = aggregate_sr(inputs)
    return [
        {
            "k": k,
            "tasks": s.n_tasks,
            "sr_harmonic_mean": s.harmonic_mean,
            "sr_geometric_mean": s.geometric_mean,
            "frac_sr_ge_0.95": s.frac_sr_ge_095,
            "frac_correct_not_faster": s.frac_correct_not_faster,
            "frac_incorrect": s.frac_incorrect,
        }
    ]


def _gso_run(r: SampleResult) -> GsoRun:
    if not r.correct:
        return GsoRun(correct=False)
    if r.per_test is None:
        raise _missing(r, "per_test", "optk")
    if any(t.expert is None for t in r.per_test):
        raise _missing(r, "expert time in every per_test entry", "optk")
    return GsoRun(True, tuple(PerTestTimes(t.base, t.patch, t.expert) for t in r.per_test))


def _runs_by_task(tasks: Tasks) -> Tasks:
    out: Tasks = {}
    for task_id, samples in tasks.items():
        ordered = sorted(samples, key=lambda r: (r.run_index, r.sample))
        for a, b in zip(ordered, ordered[1:], strict=False):
            if a.run_index == b.run_index:
                raise UserError(
                    f"task {task_id!r} has two results for run {a.run_index} "
                    f"(samples {a.sample} and {b.sample})",
                    "give each run of a task one result: set 'run' on every line",
                )
        out[task_id] = ordered
    return out


def _rows_optk(tasks: Tasks, k: int) -> list[dict[str, Cell]]:
    runs = _first_k(_runs_by_task(tasks), k, unit="runs")
    gso = {task_id: [_gso_run(r) for r in samples] for task_id, samples in runs.items()}
    return [
        {
            "k": k,
            "tasks": len(tasks),
            "opt@k": opt_at_k(gso, k),
            "opt_base@k": opt_at_k(gso, k, against="base"),
        }
    ]


def _kernel(r: SampleResult, compile_ref: bool) -> KernelResult:
    if not r.correct:
        return KernelResult(False)
    if r.ref_times is None:
        raise _missing(r, "ref_times", "fastp")
    if r.candidate_time_s is None:
        raise _missing(r, "candidate_time_s", "fastp")
    t_ref = r.ref_times.t_ref_compile if compile_ref else r.ref_times.t_ref
    return KernelResult(True, t_ref, r.candidate_time_s)


def _best_kernels(tasks: Tasks, compile_ref: bool) -> list[KernelResult]:
    out: list[KernelResult] = []
    for samples in tasks.values():
        kernels = [_kernel(r, compile_ref) for r in samples if r.correct]
        best = max(kernels, key=kernel_speedup, default=None)
        out.append(best or KernelResult(False))
    return out


def _make_rows_fastp(ps: Sequence[float]) -> Callable[[Tasks, int], list[dict[str, Cell]]]:
    def rows(tasks: Tasks, k: int) -> list[dict[str, Cell]]:
        chosen = _first_k(tasks, k)
        eager = _best_kernels(chosen, compile_ref=False)
        has_compile = all(
            r.ref_times is not None and r.ref_times.t_ref_compile is not None
            for s in tasks.values()
            for r in s
            if r.correct
        )
        compiled = _best_kernels(chosen, compile_ref=True) if has_compile else None
        return [
            {
                "k": k,
                "p": p,
                "tasks": len(tasks),
                "fast_p_eager": fast_p(eager, p),
                "fast_p_compile": fast_p(compiled, p) if compiled else None,
                "geomean_speedup_eager": geomean_speedup(eager),
                "geomean_speedup_compile": geomean_speedup(compiled) if compiled else None,
            }
            for p in ps
        ]

    return rows


def _generation(r: SampleResult) -> Generation:
    # The runtime is taken relative to the base time measured with this sample: with
    # t_src = 1 and runtime = 1 / speedup, best@k = max(1, best correct speedup).
    return Generation(r.correct, 1.0 / _speedup(r, "pie") if r.correct else None)


def _rows_pie(tasks: Tasks, k: int) -> list[dict[str, Cell]]:
    programs = [
        PieProgram(t_src=1.0, generations=[_generation(r) for r in samples])
        for samples in _first_k(tasks, k).values()
    ]
    s = pie_metrics(programs, k)
    return [
        {
            "k": k,
            "tasks": s.n_programs,
            "speedup_best@k": s.speedup,
            "frac_opt": s.frac_opt,
            "frac_correct": s.frac_correct,
        }
    ]


def _group(results: Sequence[SampleResult]) -> dict[tuple[str, str | None], Tasks]:
    groups: dict[tuple[str, str | None], Tasks] = {}
    for r in results:
        groups.setdefault((r.agent, r.model), {}).setdefault(r.task_id, []).append(r)
    for tasks in groups.values():
        for samples in tasks.values():
            samples.sort(key=lambda r: r.sample)
    return groups


def score_results(
    results: Sequence[SampleResult],
    metric: str,
    ks: Sequence[int],
    ps: Sequence[float] = DEFAULT_PS,
) -> ScoreTable:
    """Compute ``metric`` at each k for every (agent, model) in ``results``.

    Raises:
        UserError: an unknown metric, no k, k larger than a task's samples (or runs for
            optk), or a result lacking a field the metric needs.
    """
    builders: dict[str, Callable[[Tasks, int], list[dict[str, Cell]]]] = {
        "sr": _rows_sr,
        "effk": _rows_effk,
        "passk": _rows_passk,
        "optk": _rows_optk,
        "fastp": _make_rows_fastp(ps),
        "pie": _rows_pie,
    }
    if metric not in builders:
        raise UserError(f"unknown metric {metric!r}", f"use one of: {', '.join(METRICS)}")
    if not ks:
        raise UserError("no k given", "pass -k with one or more integers, e.g. -k 1,10")
    if not results:
        raise UserError("no results to score", "run `optimizer evaluate` first")
    rows: list[dict[str, Cell]] = []
    for (agent, model), tasks in _group(results).items():
        for k in ks:
            try:
                built = builders[metric](tasks, k)
            except ValueError as exc:
                raise UserError(
                    f"cannot compute {metric}: {exc}", f"check the file; {_HINT}"
                ) from None
            rows.extend({"agent": agent, "model": model, **row} for row in built)
    columns = tuple(rows[0])
    return ScoreTable(
        metric=metric,
        columns=columns,
        rows=tuple(rows),
        n_tasks=len({r.task_id for r in results}),
        n_results=len(results),
    )
