"""The driver of `optimizer evaluate`: plan what is left, run it, record it, score it.

It alone writes the evaluation directory. A re-run with the same ``--out`` plans only what
has no recorded outcome (``--retry-failed``: also what failed by the harness's fault), so a
killed run resumes where it stopped; whatever happens, the scores and reports are written
from what is recorded before it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from optimizer.evaluate import EvalSpec, Job, proposer_for, runnable, suite_tasks
from optimizer.evaluate_exec import Executor, check_ray, plan_workers
from optimizer.evaluate_records import (
    REPORT_HTML,
    REPORT_MD,
    SUMMARY,
    WORKERS_LOG,
    EvalDir,
    Invocation,
    Key,
    Reference,
    SampleRecord,
)
from optimizer.results import SampleResult, write_text_atomic
from sandbox.errors import UserError
from tasks.grade import GradeStatus
from tasks.model import Kind

#: Exit codes of `optimizer evaluate`.
EXIT_DONE, EXIT_HARNESS_FAILED, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130


class Progress(Protocol):
    def say(self, text: str) -> None: ...
    def begin(self, total: int, recorded: int) -> None: ...
    def started(self, job: Job) -> None: ...
    def finished(self, job: Job, line: str, failed: bool, cost: float) -> None: ...


@dataclass
class RunSettings:
    workers: int = 1
    executor: str = "local"
    ray_address: str | None = None
    retry_failed: bool = False
    argv: list[str] = field(default_factory=list)


@dataclass
class EvalOutcome:
    code: int
    out: Path
    planned: int = 0
    recorded_before: int = 0
    harness_failed: int = 0
    summary: Any = None
    skipped: dict[str, str] = field(default_factory=dict)


def evaluate(spec: EvalSpec, run: RunSettings, ui: Progress) -> EvalOutcome:
    """Evaluate ``spec.agent`` on ``spec.suite`` into ``spec.out``; see the module doc."""
    tasks = list(suite_tasks(spec.suite))
    if not tasks:
        raise UserError(f"suite {spec.suite!r} holds no tasks", "pass a suite with tasks")
    proposer = proposer_for(spec)  # a bad predictions file or a missing endpoint fails here
    skipped = {t.id: why for t in tasks if (why := runnable(t))}
    for tid, why in skipped.items():
        ui.say(f"skipping {tid}: {why}")
    todo = [t for t in tasks if t.id not in skipped]
    unmatched = getattr(proposer, "unmatched", lambda _t: [])(tasks)
    if unmatched:
        ui.say(f"warning: {len(unmatched)} prediction(s) name no task of the suite: "
               f"{', '.join(unmatched[:5])}")  # fmt: skip
    workers = run.workers
    if run.executor == "ray":
        check_ray(run.ray_address)
    if run.executor == "local":
        workers, _sets, warning = plan_workers(run.workers)
        if warning:
            ui.say(f"warning: {warning}")
    out = EvalDir.open(Path(spec.out))  # only now: a bad flag above leaves nothing behind
    out.record_invocation(
        Invocation(
            suite=spec.suite, agent=spec.agent, model=proposer.model,
            predictions=spec.predictions, k=spec.k, metric=spec.metric, protocol=spec.protocol,
            sandbox=spec.sandbox,
            executor=run.executor, workers=workers, argv=run.argv,
        )
    )  # fmt: skip
    refs = out.references()
    ref_jobs = [
        Job("reference", t.id)
        for t in todo
        if t.id not in refs or (run.retry_failed and refs[t.id].status == "error")
    ]
    recorded = out.samples()
    sample_jobs: list[Job] = []
    for t in todo:
        for j in range(proposer.samples(t, spec.k)):
            rec = recorded.get((proposer.name, proposer.model, t.id, j))
            if rec is None or (run.retry_failed and rec.result.fault == "harness"):
                sample_jobs.append(Job("sample", t.id, j))
    mine = sum(1 for key in recorded if key[:2] == (proposer.name, proposer.model))
    ui.begin(len(ref_jobs) + len(sample_jobs), mine)
    executor = Executor(
        spec.model_dump_json(), spec.api_key, workers, run.executor, run.ray_address,
        frozenset(t.id for t in todo if t.kind is Kind.KERNEL), str(out.path / WORKERS_LOG),
    )  # fmt: skip
    outcome = EvalOutcome(EXIT_DONE, out.path, len(ref_jobs) + len(sample_jobs), mine,
                          skipped=skipped)  # fmt: skip
    try:
        executor.run([(job, None) for job in ref_jobs], ui.started, _on_reference(out, ui))
        refs = out.references()
        work = [(job, _ref_json(refs.get(job.task_id))) for job in sample_jobs]
        executor.run(work, ui.started, _on_sample(out, ui, proposer.name, proposer.model))
    except KeyboardInterrupt:
        outcome.code = EXIT_INTERRUPTED
    finally:
        outcome.summary = write_reports(out)
    failed = [r for r in out.samples().values() if r.result.fault == "harness"]
    outcome.harness_failed = len(failed)
    if outcome.code == EXIT_DONE and failed:
        outcome.code = EXIT_HARNESS_FAILED
    return outcome


def _ref_json(ref: Reference | None) -> dict[str, Any] | None:
    return ref.model_dump(mode="json") if ref is not None else None


def _on_reference(out: EvalDir, ui: Progress):
    def done(job: Job, result: dict[str, Any] | None, crash: str | None) -> None:
        if result is None:
            ref = Reference(task_id=job.task_id, metric="", status="error", reason=crash or "")
        else:
            ref = Reference.model_validate(result["reference"])
        out.append(ref)
        shown = f"{ref.speedup:.2f}x" if ref.speedup else (ref.reason or ref.status)[:80]
        ui.finished(job, f"expert {ref.status} {shown}", ref.status == "error", 0.0)

    return done


def _on_sample(out: EvalDir, ui: Progress, agent: str, model: str | None):
    def done(job: Job, result: dict[str, Any] | None, crash: str | None) -> None:
        if result is None:
            res = SampleResult(task_id=job.task_id, sample=job.sample, agent=agent, model=model,
                               status=GradeStatus.ERROR, correct=False, fault="harness",
                               reason=(crash or "")[:500])  # fmt: skip
            rec, grade_json = SampleRecord(result=res), ""
        else:
            rec, grade_json = SampleRecord.model_validate(result["sample"]), result["grade"]
        out.append(rec)
        if grade_json:
            out.write_grade(rec.key, grade_json)
        out.write_results()
        failed = rec.result.fault == "harness"
        ui.finished(job, sample_line(rec), failed, rec.result.cost_usd or 0.0)

    return done


def sample_line(rec: SampleRecord) -> str:
    """One sample's outcome in a few words, for the progress lines."""
    r = rec.result
    if not r.correct:
        who = f" [{r.fault}]" if r.fault else ""
        return f"{r.status}{who}: {(r.reason or '')[:90]}"
    text = f"ok {r.speedup:.3f}x" if r.speedup else "ok"
    if r.speedup and r.expert_speedup:
        text += f", SR {r.speedup / r.expert_speedup:.3f}"
    return text + (f" ({r.verdict})" if r.verdict else "")


def write_reports(out: EvalDir) -> Any:
    """summary.json, report.md and report.html from what the directory records."""
    from optimizer.evaluate_report import html, markdown
    from optimizer.evaluate_summary import summarize

    records = list(out.samples().values())
    if not records:
        return None
    summary = summarize(records, out.references())
    write_text_atomic(out.path / SUMMARY, summary.model_dump_json(indent=2) + "\n")
    write_text_atomic(out.path / REPORT_MD, markdown(summary))
    write_text_atomic(out.path / REPORT_HTML, html(summary))
    return summary


__all__ = ["EvalOutcome", "Key", "RunSettings", "evaluate", "write_reports"]
