"""The scores of an `optimizer evaluate` directory: its records in, one :class:`EvalSummary` out.

Pure: no files, no clock. The formulas are :mod:`optimizer.scoring`'s; this module chooses
what they run on and adds how much each number can be trusted.

- **Groups.** Samples are grouped by (agent, model). A sample the harness failed
  (``fault == "harness"``) is not the agent's outcome: it is listed and left out of every
  score (``--retry-failed`` redoes it).
- **Runs.** Run j is the j-th scored sample (in sample order) of every task of the group,
  for j < k, k being the smallest number of scored samples of a task. A per-run score is
  computed on each run; the score shown is the mean over the k runs.
- **SR** (SWE-fficiency) is computed on the tasks whose :class:`Reference` is usable (the
  expert graded ok with a measured speedup); the others are listed with why. A sample is
  *faster* when the judge's verdict is ``faster``; a correct sample without that verdict is
  *correct, not faster*.
- **k-curves**: pass@k, opt@k, eff@k and best-of-k SR for k = 1..k from
  :func:`~optimizer.scoring.report.score_results` (the unbiased estimators use every sample).
- **Noise, signal, SNR** (Signal and Noise, 2025): noise is the sample standard deviation
  (ddof=1) of a score across the k runs (k >= 3); signal is the range (max - min) of the
  groups' scores; SNR = signal / noise.

Every float in the summary is finite: what would be infinite or undefined is None, with
``infinite`` or a note saying which.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from optimizer.errors import UserError
from optimizer.evaluate_records import Reference, SampleRecord
from optimizer.results import SampleResult
from optimizer.scoring import SRTask, aggregate_sr, speedup_ratio, sr_interval
from optimizer.scoring.report import DEFAULT_PS, score_results

#: A finite float (NaN and infinities are refused: they have no place in summary.json).
Num = Annotated[float, Field(allow_inf_nan=False)]

#: How few runs a noise estimate needs.
MIN_RUNS = 3
NOISE = "sample standard deviation (ddof=1) of the score across the k runs"
SIGNAL = "range (max - min) of the score across the (agent, model) groups"
ONE_GROUP = "SNR needs >= 2 agents or models in the same --out (e.g. add --agent noop)"

_FAST = {f"fast_{p:g}": p for p in DEFAULT_PS}

#: The per-run scores in report order, with their labels.
SCORES: dict[str, str] = {
    "sr_hmean": "SR, harmonic mean (published)",
    "sr_gmean": "SR, geometric mean",
    "frac_sr_ge_0.95": "fraction SR >= 0.95",
    "frac_incorrect": "fraction incorrect",
    "frac_correct_not_faster": "fraction correct, not faster",
    "pass@1": "pass@1",
    "opt@1": "opt@1 (GSO opt_commit)",
    "eff@1": "eff@1 (ENAMEL)",
    **{name: f"{name} (KernelBench, eager)" for name in _FAST},
    **{f"{name}_compile": f"{name} (KernelBench, torch.compile)" for name in _FAST},
    "perf@1": "Perf@1 (TritonGym: expert kernel time / kernel time, 0 if wrong)",
    "dps": "DPS (EvalPerf)",
    "dps_norm": "DPS_norm (EvalPerf)",
    "cost_of_pass_usd": "Cost-of-Pass ($ per verified speedup)",
    "tokens_per_pass": "tokens per verified speedup",
}
#: The k-curves, in report order, with their labels.
CURVES: dict[str, str] = {
    "pass@k": "pass@k",
    "opt@k": "opt@k (GSO opt_commit)",
    "opt_base@k": "opt_base@k (GSO)",
    "eff@k": "eff@k (ENAMEL)",
    "sr@k": "SR of the best of k, harmonic mean",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Score(_Model):
    """One score of one group: its value, its per-run values and how far they can be trusted."""

    value: Num | None = Field(
        description="The mean over the k runs (for the cost ratios: the ratio over all scored "
        "samples). None when infinite (see `infinite`)."
    )
    infinite: bool = Field(False, description="The value is infinite (no verified speedup).")
    runs: list[Num | None] = Field(description="The score of each run; None: infinite there.")
    noise: Num | None = Field(None, description=NOISE)
    noise_note: str | None = Field(None, description="Why there is no noise.")
    signal: Num | None = Field(None, description=SIGNAL)
    snr: Num | None = Field(None, description="signal / noise.")
    snr_note: str | None = Field(None, description="Why there is no SNR.")


class CurvePoint(_Model):
    k: int
    value: Num


class Dispersion(_Model):
    """The dispersion measures behind noise, signal and SNR."""

    noise: str = NOISE
    signal: str = SIGNAL
    snr: str = "signal / noise"
    min_runs: int = MIN_RUNS


class GroupSummary(_Model):
    """The scores of one (agent, model) group."""

    agent: str
    model: str | None
    label: str
    tasks: int = Field(description="Tasks with at least one scored sample.")
    samples: int = Field(description="Scored samples (harness failures left out).")
    k: int = Field(description="Scored samples per task: the smallest over its tasks.")
    harness_failed: int = Field(description="Samples the harness failed: not scored.")
    sr_tasks: int = Field(description="Tasks with a usable expert: the ones SR is over.")
    correct: int
    faster: int = Field(description="Correct samples the judge found faster (its verdict).")
    cost_usd: Num | None = Field(
        description="Dollars spent on the scored samples (None: none recorded)."
    )
    cost_per_sample_usd: Num | None
    tokens: int | None = Field(description="Prompt plus completion tokens (None: none recorded).")
    tokens_per_sample: Num | None
    scores: dict[str, Score] = Field(description="Keyed as in SCORES.")
    curves: dict[str, list[CurvePoint]] = Field(description="k = 1..k, keyed as in CURVES.")
    notes: list[str] = Field(default_factory=list)


class TaskCell(_Model):
    """One group's samples of one task."""

    agent: str
    model: str | None
    label: str
    samples: int
    correct: int
    faster: int
    harness_failed: int
    statuses: dict[str, int] = Field(description="Grade statuses of the scored samples.")
    best_sample: int | None = Field(description="The correct sample with the best speedup.")
    best_speedup: Num | None
    best_ci: tuple[Num, Num] | None
    best_verdict: str | None
    sr: Num | None = Field(
        description="The best correct sample's SR (1 / expert when none is correct); None "
        "when the task has no usable expert."
    )
    sr_ci: tuple[Num, Num] | None = Field(
        None, description="95% interval on that SR, from the sample's and the expert's."
    )
    srs: list[Num] = Field(description="Every scored sample's SR, in sample order.")
    cost_usd: Num | None = Field(description="Mean dollars per scored sample.")


class TaskRow(_Model):
    """One task: its expert, measured once, and each group's samples."""

    task_id: str
    expert_status: str = Field(description="The reference's grade status; 'missing': none.")
    expert_reason: str = ""
    expert_speedup: Num | None
    expert_ci: tuple[Num, Num] | None
    expert_verdict: str | None
    sr_scored: bool = Field(description="The expert is usable: the task counts in SR.")
    cells: list[TaskCell]


class ExcludedTask(_Model):
    task_id: str
    reason: str


class HarnessFailure(_Model):
    agent: str
    model: str | None
    task_id: str
    sample: int
    reason: str


class EvalSummary(_Model):
    """Everything the reports of `optimizer evaluate` show (summary.json)."""

    v: int = 1
    dispersion: Dispersion = Field(default_factory=Dispersion)
    metrics: list[str] = Field(description="The metrics that decided the experts' speedups.")
    protocols: list[str] = Field(
        default_factory=list, description="How the experts' speedups were timed: cold, warm."
    )
    groups: list[GroupSummary]
    tasks: list[TaskRow]
    sr_excluded: list[ExcludedTask] = Field(description="Tasks left out of SR, and why.")
    harness_failures: list[HarnessFailure]
    notes: list[str]


def group_label(agent: str, model: str | None) -> str:
    return agent if model is None else f"{agent} ({model})"


def is_faster(r: SampleResult) -> bool:
    """Verified correct and faster: the judge's verdict is 'faster'."""
    return r.correct and r.verdict == "faster"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _exclusion(ref: Reference | None) -> str | None:
    """Why SR cannot be computed against ``ref``, or None when it is usable."""
    if ref is None:
        return "no reference recorded"
    if ref.usable:
        return None
    if ref.status == "none":
        return ref.reason or "no expert"
    if ref.status == "ok":
        return ref.reason or "the expert's speedup was not measured"
    return f"the expert did not grade ok ({ref.status}{': ' + ref.reason if ref.reason else ''})"


def _prepared(r: SampleResult, ref: Reference | None) -> SampleResult:
    """``r`` with its speedup resolved (a correct sample without one counts as 1.0x) and,
    when the reference is usable, the reference's expert speedup."""
    update: dict[str, object] = {}
    if r.correct:
        update["speedup"] = r.resolved_speedup() or 1.0
    if ref is not None and ref.usable:
        update.update(expert_speedup=ref.speedup, expert_speedup_ci=ref.ci)
    return r.model_copy(update=update)


def _sr_run(samples: Sequence[SampleResult]) -> dict[str, float]:
    s = aggregate_sr([SRTask(r.speedup, r.expert_speedup or 0.0, r.correct) for r in samples])
    not_faster = sum(1 for r in samples if r.correct and not is_faster(r))
    return {
        "sr_hmean": s.harmonic_mean,
        "sr_gmean": s.geometric_mean,
        "frac_sr_ge_0.95": s.frac_sr_ge_095,
        "frac_incorrect": s.frac_incorrect,
        "frac_correct_not_faster": not_faster / len(samples),
    }


def _column(results: Sequence[SampleResult], metric: str, ks: Sequence[int], col: str) -> list[Any]:
    return [row[col] for row in score_results(results, metric, ks).rows]


def _ratio(num: float, den: int) -> float | None:
    return num / den if den else None


def _dps(field: str) -> Callable[[Sequence[SampleResult]], float | None]:
    def mean(samples: Sequence[SampleResult]) -> float | None:
        values = [getattr(r, field) for r in samples]
        # An incorrect sample scores 0; a correct one on a task without levels has no DPS.
        scored = [
            0.0 if v is None else v
            for v, r in zip(values, samples, strict=True)
            if v is not None or not r.correct
        ]
        return _mean(scored)

    return mean


class _Group:
    """One group's samples, arranged for scoring."""

    def __init__(self, records: Sequence[SampleRecord], refs: Mapping[str, Reference]) -> None:
        first = records[0].result
        self.agent, self.model = first.agent, first.model
        self.label = group_label(self.agent, self.model)
        self.refs = refs
        self.harness = sorted(
            (r.result for r in records if r.result.fault == "harness"),
            key=lambda r: (r.task_id, r.sample),
        )
        self.by_task: dict[str, list[SampleResult]] = {}
        for rec in sorted(records, key=lambda x: (x.result.task_id, x.result.sample)):
            r = rec.result
            if r.fault != "harness":
                self.by_task.setdefault(r.task_id, []).append(_prepared(r, refs.get(r.task_id)))
        self.all_tasks = sorted({r.result.task_id for r in records})
        self.scored = [r for samples in self.by_task.values() for r in samples]
        self.sr_ids = [t for t in self.by_task if _exclusion(refs.get(t)) is None]
        self.k = min((len(s) for s in self.by_task.values()), default=0)
        self.runs = [[s[j] for s in self.by_task.values()] for j in range(self.k)]
        self.curves: dict[str, list[float]] = {}
        self.notes: list[str] = []

    def sr_subset(self, samples: Sequence[SampleResult]) -> list[SampleResult]:
        ids = set(self.sr_ids)
        return [r for r in samples if r.task_id in ids]

    def per_run(self) -> dict[str, list[float | None]]:
        """Every score that applies to this group, on each run."""
        out: dict[str, list[float | None]] = {}
        if not self.runs:
            return out

        def add(name: str, fn: Callable[[list[SampleResult]], float | None]) -> None:
            try:
                out[name] = [_finite(fn(run)) for run in self.runs]
            except UserError as exc:  # the samples lack a field this score needs
                self.notes.append(f"{name} left out: {_why(exc)}")

        if self.sr_ids:
            per = [_sr_run(self.sr_subset(run)) for run in self.runs]
            for name in per[0]:
                out[name] = [p[name] for p in per]
        elif self.by_task:
            self.notes.append("SR left out: no task of this group has a usable expert")
        add("pass@1", lambda run: _column(run, "passk", [1], "pass@k")[0])
        if self.sr_ids and "opt@k" in self.curves:
            add("opt@1", lambda run: _column(self.sr_subset(run), "optk", [1], "opt@k")[0])
        if "eff@k" in self.curves:
            add("eff@1", lambda run: _column(run, "effk", [1], "eff@k")[0])
        if any(r.ref_times for r in self.scored):
            for name, p in _FAST.items():
                add(name, lambda run, p=p: _fastp(run, p))
            if any(r.ref_times and r.ref_times.t_ref_compile for r in self.scored):
                for name, p in _FAST.items():
                    add(f"{name}_compile", lambda run, p=p: _fastp(run, p, "compile"))
        kernels = [t for t, ref in self.refs.items() if ref.kernel_time_s and t in self.by_task]
        if kernels:
            add("perf@1", lambda run: _perf1(run, self.refs, set(kernels)))
        for field in ("dps", "dps_norm"):
            if any(getattr(r, field) is not None for r in self.scored):
                add(field, _dps(field))
        if _cost(self.scored) is not None:
            add("cost_of_pass_usd", lambda run: _ratio(_cost(run) or 0.0, _faster(run)))
        if _tokens(self.scored) is not None:
            add("tokens_per_pass", lambda run: _ratio(_tokens(run) or 0, _faster(run)))
        return out

    def build_curves(self) -> None:
        """The k-curves; a curve whose fields the samples lack is left out, with a note."""
        ks = list(range(1, self.k + 1))
        if not ks:
            return
        self.curves["pass@k"] = _column(self.scored, "passk", ks, "pass@k")
        sr_scored = self.sr_subset(self.scored)
        if sr_scored:
            self.curves["sr@k"] = _column(sr_scored, "sr", ks, "sr_harmonic_mean")
            try:
                table = score_results(sr_scored, "optk", ks)
            except UserError as exc:
                self.notes.append(f"opt@k left out: {_why(exc)}")
            else:
                self.curves["opt@k"] = [row["opt@k"] for row in table.rows]
                self.curves["opt_base@k"] = [row["opt_base@k"] for row in table.rows]
        if any(r.efficiency is not None for r in self.scored):
            try:
                self.curves["eff@k"] = _column(self.scored, "effk", ks, "eff@k")
            except UserError as exc:
                self.notes.append(f"eff@k left out: {_why(exc)}")

    def value(self, name: str, runs: list[float | None]) -> tuple[float | None, bool]:
        """A score's value and whether it is infinite."""
        if name == "cost_of_pass_usd":
            v = _ratio(_cost(self.scored) or 0.0, _faster(self.scored))
            return v, v is None
        if name == "tokens_per_pass":
            v = _ratio(_tokens(self.scored) or 0, _faster(self.scored))
            return v, v is None
        finite = [v for v in runs if v is not None]
        return (_mean(finite) if len(finite) == len(runs) else None), False

    def summary(self) -> GroupSummary:
        self.build_curves()
        scores = {}
        for name, runs in self.per_run().items():
            value, infinite = self.value(name, runs)
            noise, note = _noise(runs)
            scores[name] = Score(
                value=value, infinite=infinite, runs=runs, noise=noise, noise_note=note
            )
        if 0 < self.k < MIN_RUNS:
            self.notes.append(
                f"noise (and SNR) need k >= {MIN_RUNS} samples per task; this group has "
                f"k = {self.k}"
            )
        only_harness = [t for t in self.all_tasks if t not in self.by_task]
        if only_harness:
            self.notes.append(
                f"{len(only_harness)} task(s) left out: every sample failed in the harness "
                f"({', '.join(only_harness)})"
            )
        cost, tokens, n = _cost(self.scored), _tokens(self.scored), len(self.scored)
        return GroupSummary(
            agent=self.agent,
            model=self.model,
            label=self.label,
            tasks=len(self.by_task),
            samples=n,
            k=self.k,
            harness_failed=len(self.harness),
            sr_tasks=len(self.sr_ids),
            correct=sum(r.correct for r in self.scored),
            faster=_faster(self.scored),
            cost_usd=cost,
            cost_per_sample_usd=None if cost is None or not n else cost / n,
            tokens=tokens,
            tokens_per_sample=None if tokens is None or not n else tokens / n,
            scores=scores,
            curves={
                name: [CurvePoint(k=i + 1, value=v) for i, v in enumerate(values)]
                for name, values in self.curves.items()
                if all(math.isfinite(v) for v in values)
            },
            notes=self.notes,
        )

    def cell(self, task_id: str) -> TaskCell | None:
        samples = self.by_task.get(task_id, [])
        harness = sum(1 for r in self.harness if r.task_id == task_id)
        if not samples and not harness:
            return None
        ref = self.refs.get(task_id)
        best = max((r for r in samples if r.correct), key=lambda r: r.speedup or 0.0, default=None)
        expert = ref.speedup if ref is not None and ref.usable else None
        srs, sr, sr_ci = [], None, None
        if expert is not None:
            srs = [speedup_ratio(r.speedup, expert, r.correct) for r in samples]
            sr = speedup_ratio(best.speedup if best else None, expert, best is not None)
            if best and best.speedup and best.speedup_ci and ref is not None and ref.ci:
                sr_ci = sr_interval(best.speedup, best.speedup_ci, expert, ref.ci)
        costs = [r.cost_usd for r in samples if r.cost_usd is not None]
        return TaskCell(
            agent=self.agent,
            model=self.model,
            label=self.label,
            samples=len(samples),
            correct=sum(r.correct for r in samples),
            faster=_faster(samples),
            harness_failed=harness,
            statuses=dict(sorted(Counter(str(r.status) for r in samples).items())),
            best_sample=best.sample if best else None,
            best_speedup=best.speedup if best else None,
            best_ci=best.speedup_ci if best else None,
            best_verdict=best.verdict if best else None,
            sr=sr,
            sr_ci=sr_ci,
            srs=srs,
            cost_usd=_mean(costs),
        )


def _why(exc: UserError) -> str:
    """The scoring module's reason, without its pointer to `optimizer score --metric`."""
    return exc.problem.split(", which --metric")[0]


def _fastp(run: Sequence[SampleResult], p: float, against: str = "eager") -> float | None:
    rows = score_results(run, "fastp", [1], ps=[p]).rows
    value = rows[0][f"fast_p_{against}"]
    return float(value) if isinstance(value, int | float) else None


def _perf1(run: Sequence[SampleResult], refs: Mapping[str, Reference], ids: set[str]) -> float:
    """TritonGym's Perf@1 over the kernel tasks with a timed expert: the mean of expert
    kernel time / generated kernel time, an incorrect (or untimed) kernel counting 0."""
    values = [
        (refs[r.task_id].kernel_time_s or 0.0) / r.candidate_time_s
        if r.correct and r.candidate_time_s else 0.0
        for r in run if r.task_id in ids
    ]  # fmt: skip
    return math.fsum(values) / len(values) if values else 0.0


def _faster(samples: Sequence[SampleResult]) -> int:
    return sum(1 for r in samples if is_faster(r))


def _cost(samples: Sequence[SampleResult]) -> float | None:
    costs = [r.cost_usd for r in samples if r.cost_usd is not None]
    return math.fsum(costs) if costs else None


def _tokens(samples: Sequence[SampleResult]) -> int | None:
    counts = [
        (r.prompt_tokens or 0) + (r.completion_tokens or 0)
        for r in samples
        if r.prompt_tokens is not None or r.completion_tokens is not None
    ]
    return sum(counts) if counts else None


def _noise(runs: Sequence[float | None]) -> tuple[float | None, str | None]:
    if len(runs) < MIN_RUNS:
        return None, f"k < {MIN_RUNS}"
    values = [v for v in runs if v is not None]
    if len(values) < len(runs):
        return None, "infinite in a run (no verified speedup there)"
    return statistics.stdev(values), None


def _with_signal(groups: list[GroupSummary]) -> list[GroupSummary]:
    """Each score's signal (range across groups) and SNR (signal / the group's noise)."""
    out = []
    for g in groups:
        scores = {}
        for name, s in g.scores.items():
            others = [x.scores[name] for x in groups if name in x.scores]
            signal, note = None, None
            if len(groups) < 2:
                note = ONE_GROUP
            elif any(x.infinite for x in others):
                note = "infinite in a group: no range"
            elif sum(x.value is not None for x in others) < 2:
                note = "signal needs the score in >= 2 groups"
            else:
                values = [x.value for x in others if x.value is not None]
                signal = max(values) - min(values)
            snr = None
            if signal is not None:
                if s.noise is None:
                    note = f"no noise ({s.noise_note})"
                elif s.noise == 0:
                    note = "noise is 0"
                else:
                    snr = signal / s.noise
            scores[name] = s.model_copy(update={"signal": signal, "snr": snr, "snr_note": note})
        out.append(g.model_copy(update={"scores": scores}))
    return out


def _task_row(task_id: str, ref: Reference | None, groups: list[_Group]) -> TaskRow:
    cells = [c for g in groups if (c := g.cell(task_id)) is not None]
    usable = ref is not None and ref.usable
    return TaskRow(
        task_id=task_id,
        expert_status=ref.status if ref else "missing",
        expert_reason=ref.reason if ref else "",
        expert_speedup=ref.speedup if ref else None,
        expert_ci=ref.ci if ref else None,
        expert_verdict=ref.verdict if ref else None,
        sr_scored=usable,
        cells=cells,
    )


def summarize(records: Sequence[SampleRecord], references: Mapping[str, Reference]) -> EvalSummary:
    """The scores of an evaluation directory's records, against its references.

    ``records`` holds the latest record of each sample; ``references`` each task's expert.
    """
    by_group: dict[tuple[str, str | None], list[SampleRecord]] = {}
    for rec in records:
        by_group.setdefault((rec.result.agent, rec.result.model), []).append(rec)
    groups = [_Group(by_group[key], references) for key in sorted(by_group, key=_group_key)]
    summaries = _with_signal([g.summary() for g in groups])
    task_ids = sorted({r.result.task_id for r in records} | set(references))
    scored_ids = sorted({t for g in groups for t in g.by_task})
    excluded = [
        ExcludedTask(task_id=t, reason=reason)
        for t in scored_ids
        if (reason := _exclusion(references.get(t))) is not None
    ]
    harness = [
        HarnessFailure(
            agent=r.agent,
            model=r.model,
            task_id=r.task_id,
            sample=r.sample,
            reason=r.reason or "(no reason recorded)",
        )
        for g in groups
        for r in g.harness
    ]
    return EvalSummary(
        metrics=sorted({r.metric for r in references.values() if r.usable}),
        protocols=sorted({r.protocol for r in references.values() if r.usable and r.protocol}),
        groups=summaries,
        tasks=[_task_row(t, references.get(t), groups) for t in task_ids],
        sr_excluded=excluded,
        harness_failures=harness,
        notes=_notes(summaries, excluded, harness, records),
    )


def _group_key(key: tuple[str, str | None]) -> tuple[str, str]:
    return (key[0], key[1] or "")


def _notes(
    summaries: list[GroupSummary],
    excluded: list[ExcludedTask],
    harness: list[HarnessFailure],
    records: Sequence[SampleRecord],
) -> list[str]:
    notes: list[str] = []
    if len(summaries) == 1:
        notes.append(ONE_GROUP + ".")
    if harness:
        notes.append(
            f"{len(harness)} sample(s) failed in the harness: left out of every score "
            "(`optimizer evaluate --retry-failed` redoes them)."
        )
    if excluded:
        notes.append(
            f"{len(excluded)} task(s) left out of SR (no usable expert); they still count in "
            "pass@k."
        )
    unmeasured = sum(
        1
        for rec in records
        if (r := rec.result).correct and r.fault != "harness" and r.resolved_speedup() is None
    )
    if unmeasured:
        notes.append(f"{unmeasured} correct sample(s) had no measured speedup: counted as 1.0x.")
    notes.append(
        "Faster: the judge's verdict is 'faster' (a significant speedup); Cost-of-Pass is the "
        "dollars spent on a group's scored samples over its samples verified correct and faster."
    )
    return notes
