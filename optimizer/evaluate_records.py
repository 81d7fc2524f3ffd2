"""The evaluation directory of `optimizer evaluate`: append-only logs and what derives from them.

``--out DIR`` holds:

- ``evaluate.json``: the settings of every invocation (suite, agent, model, k, metric...);
- ``references.jsonl``: one :class:`Reference` per task: the expert (and any DPE reference
  levels) graded and measured once, in this evaluation's environment, and shared by every
  agent's samples of that task;
- ``samples.jsonl``: one :class:`SampleRecord` per graded sample, appended (flushed and
  fsynced) the moment it is done; a re-run skips the samples recorded here, so a killed run
  loses at most the samples in flight;
- ``results.jsonl``: the :class:`~optimizer.results.SampleResult` of the latest record of each
  (agent, model, task, sample), in the schema `optimizer score` reads; rewritten atomically
  from the log after every sample;
- ``grades/``: each sample's whole Grade as JSON (the judge's evidence, for ``export``);
- ``summary.json``, ``report.md`` and ``report.html``: the scores, derived at the end;
- ``workers.log``: what the pool's worker processes wrote to stderr.

Records carry ``type`` and ``v`` (the schema version); a reader skips a torn last line.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from optimizer.errors import UserError
from optimizer.results import (
    Positive,
    SampleResult,
    append_line,
    write_json_atomic,
    write_text_atomic,
)

CONFIG, REFERENCES, SAMPLES, RESULTS = (
    "evaluate.json",
    "references.jsonl",
    "samples.jsonl",
    "results.jsonl",
)
SUMMARY, REPORT_MD, REPORT_HTML, GRADES = "summary.json", "report.md", "report.html", "grades"
WORKERS_LOG = "workers.log"  # the pool workers' stderr

#: Identifies one sample: (agent, model, task_id, sample).
Key = tuple[str, str | None, str, int]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = 1
    t: float = Field(default_factory=time.time, description="Unix time it was recorded.")


class WorkloadSpeed(BaseModel):
    """One workload's ratio on the deciding metric: base over the measured side, with its CI."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    hidden: bool = False
    speedup: Positive
    ci: tuple[Positive, Positive]
    base: Positive = Field(description="The base's median, in the metric's unit (s or Ginstr).")


class LevelSpeed(BaseModel):
    """A DPE reference level (EvalPerf): a reference solution's measured speedup."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    speedup: Positive | None = Field(None, description="None: the level did not grade ok.")
    status: str = "ok"


class Reference(_Record):
    """A task's expert, graded and measured against the base once per evaluation directory."""

    type: Literal["reference"] = "reference"
    task_id: str
    metric: str
    protocol: str | None = Field(None, description="How the expert was timed: cold or warm.")
    status: str = Field(description="The expert's grade status ('none': the task has no expert).")
    reason: str = ""
    speedup: Positive | None = None
    ci: tuple[Positive, Positive] | None = None
    verdict: str | None = None
    workloads: list[WorkloadSpeed] = Field(default_factory=list)
    levels: list[LevelSpeed] = Field(default_factory=list)
    kernel_time_s: Positive | None = Field(
        None, description="Kernel tasks on a GPU: the expert Triton kernel's time (Perf@1)."
    )
    elapsed_s: float = 0.0

    @property
    def usable(self) -> bool:
        """The expert graded ok with a measured speedup: SR can be computed against it."""
        return self.status == "ok" and self.speedup is not None


class SampleRecord(_Record):
    """One graded sample: what ``optimizer score`` reads, plus the evidence behind it."""

    type: Literal["sample"] = "sample"
    result: SampleResult
    patch: str = Field("", description="The candidate patch that was graded.")
    workloads: list[WorkloadSpeed] = Field(default_factory=list)
    tests: str | None = Field(None, description="The candidate's tests, e.g. '24/24'.")
    steps: int | None = Field(None, description="Agent steps (llm).")
    exit: str | None = Field(None, description="How the agent ended (llm).")
    run_dir: str | None = Field(None, description="The agent's `optimizer run` directory (llm).")
    agent_s: float = Field(0.0, description="Seconds the agent took to propose.")
    grade_s: float = Field(0.0, description="Seconds the judge took.")
    workload_s: float = Field(
        0.0, description="Seconds the timed workloads themselves ran during the grade."
    )
    worker: str = Field("", description="Which worker ran it (local slot or Ray node).")

    @property
    def key(self) -> Key:
        r = self.result
        return (r.agent, r.model, r.task_id, r.sample)


class Invocation(BaseModel):
    """One `optimizer evaluate` call's settings, as recorded in ``evaluate.json``."""

    model_config = ConfigDict(extra="forbid")

    suite: str
    agent: str
    model: str | None = None
    predictions: str | None = None
    k: int
    metric: str | None = None
    protocol: str | None = None
    sandbox: str = "auto"
    executor: str = "local"
    workers: int = 1
    argv: list[str] = Field(default_factory=list)
    t: float = Field(default_factory=time.time)


R = TypeVar("R", Reference, SampleRecord)

_LOCK = threading.Lock()


def _safe(part: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", part or "none").strip("._") or "none"


class EvalDir:
    """An evaluation directory: appends records, reads them back, derives results.jsonl."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def open(cls, path: Path) -> EvalDir:
        """Create ``path`` (and its parents) if needed; a one-line error when it cannot be."""
        path = path.expanduser()
        if path.exists() and not path.is_dir():
            raise UserError(f"--out {path} is a file", "pass a directory for the evaluation")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"cannot create --out {path}: {exc.strerror}", "pick another path"
            ) from None
        return cls(path)

    # ---- settings --------------------------------------------------------------------

    def invocations(self) -> list[Invocation]:
        file = self.path / CONFIG
        if not file.is_file():
            return []
        try:
            data = json.loads(file.read_text())
            return [Invocation.model_validate(item) for item in data["invocations"]]
        except (json.JSONDecodeError, KeyError, TypeError, ValidationError):
            raise UserError(
                f"{file} is not an evaluation's settings file",
                "pass an --out directory that `optimizer evaluate` wrote, or a new one",
            ) from None

    def record_invocation(self, inv: Invocation) -> None:
        """Refuse settings that would mix incomparable numbers; then append ``inv``."""
        earlier = self.invocations()
        for old in earlier:
            for field in ("suite", "metric", "protocol", "sandbox"):
                if getattr(old, field) != getattr(inv, field):
                    raise UserError(
                        f"{self.path} holds an evaluation with --{field} "
                        f"{getattr(old, field) or 'default'}, not "
                        f"{getattr(inv, field) or 'default'}",
                        f"pass the same --{field} to add to it, or a new --out",
                    )
        data = {"v": 1, "invocations": [i.model_dump(mode="json") for i in [*earlier, inv]]}
        write_json_atomic(self.path / CONFIG, data)

    # ---- the logs ----------------------------------------------------------------------

    def append(self, record: Reference | SampleRecord) -> None:
        """Append one record to its log, flushed and fsynced before returning."""
        name = REFERENCES if isinstance(record, Reference) else SAMPLES
        with _LOCK:
            append_line(self.path / name, record.model_dump_json(exclude_none=True))

    def _read(self, name: str, cls: type[R]) -> Iterator[R]:
        file = self.path / name
        if not file.is_file():
            return
        for line in file.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                data: Any = json.loads(line)
                if isinstance(data, dict) and data.get("type") == cls.model_fields["type"].default:
                    yield cls.model_validate(data)
            except (json.JSONDecodeError, ValidationError):
                continue  # a torn line (killed mid-write) or a record of a newer version

    def references(self) -> dict[str, Reference]:
        """The latest reference of each task."""
        return {r.task_id: r for r in self._read(REFERENCES, Reference)}

    def samples(self) -> dict[Key, SampleRecord]:
        """The latest record of each sample, in the order first recorded."""
        latest: dict[Key, SampleRecord] = {}
        for rec in self._read(SAMPLES, SampleRecord):
            latest[rec.key] = rec
        return latest

    def write_results(self) -> list[SampleResult]:
        """Rewrite results.jsonl (atomically) from the log: one line per sample, sorted."""
        recs = sorted(
            self.samples().values(),
            key=lambda r: (r.result.agent, r.result.model or "", r.result.task_id, r.result.sample),
        )
        results = [r.result for r in recs]
        text = "".join(r.model_dump_json(exclude_none=True) + "\n" for r in results)
        write_text_atomic(self.path / RESULTS, text)
        return results

    def grade_path(self, key: Key) -> Path:
        agent, model, task_id, sample = key
        return self.path / GRADES / _safe(agent) / _safe(model) / _safe(task_id) / f"{sample}.json"

    def write_grade(self, key: Key, grade_json: str) -> None:
        path = self.grade_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, grade_json)
