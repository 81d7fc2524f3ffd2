"""The results file: JSONL, one :class:`SampleResult` per (task, sample) attempt.

``optimizer evaluate`` writes it and ``optimizer score`` reads it. Every line is one JSON
object; blank lines are skipped. A malformed line is a :class:`~optimizer.errors.UserError`
naming the file, the line number and the field.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from optimizer.errors import UserError
from tasks.grade import GradeStatus

#: How an attempt ended: the grading contract's own words (``tasks.grade.GradeStatus``). Only
#: ``ok`` implies correct; ``timeout`` may be correct (ENAMEL: a timeout at a level >= 1 still
#: counts as correct); the others are incorrect.
Status = GradeStatus
STATUSES: tuple[str, ...] = tuple(s.value for s in GradeStatus)

#: A duration in seconds or a ratio: finite and above 0.
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]

_SCHEMA_HINT = "see the results-file schema under 'optimizer score' in the README"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PerTestTiming(_Strict):
    """One performance test's mean time in seconds for base, candidate patch and expert (GSO)."""

    base: Positive
    patch: Positive
    expert: Positive | None = None


class RefTimes(_Strict):
    """KernelBench reference times in seconds: eager PyTorch, and optionally torch.compile."""

    t_ref: Positive
    t_ref_compile: Positive | None = None


class SampleResult(_Strict):
    """One attempt (task, sample) and everything the metrics need; unknown fields are refused.

    Which fields each ``optimizer score --metric`` needs:

    - ``passk``: ``correct``. ``effk``: ``efficiency`` (an incorrect sample without one
      scores 0).
    - ``sr``: ``speedup`` (or ``base_time_s`` and ``candidate_time_s``) when correct, and
      ``expert_speedup`` (or ``base_time_s`` and ``expert_time_s``) always.
    - ``optk``: ``per_test`` with ``expert`` times when correct; ``run`` orders the runs.
    - ``fastp``: ``ref_times`` and ``candidate_time_s`` when correct.
    - ``pie``: ``speedup`` (or the two times) when correct.
    """

    task_id: str = Field(min_length=1, description="Task identifier.")
    sample: int = Field(ge=0, description="Sample index, unique per (agent, model, task).")
    agent: str = Field(min_length=1, description="Agent that produced the candidate.")
    model: str | None = Field(default=None, description="LLM behind the agent.")
    run: int | None = Field(
        default=None, ge=0, description="Which of the k runs (opt@k); defaults to `sample`."
    )
    status: Status = Field(description="How the attempt ended.")
    correct: bool = Field(description="Passed every correctness / equivalence check.")
    base_time_s: Positive | None = Field(default=None, description="Original code's time.")
    candidate_time_s: Positive | None = Field(default=None, description="Candidate's time.")
    expert_time_s: Positive | None = Field(default=None, description="Expert solution's time.")
    speedup: Positive | None = Field(default=None, description="base / candidate.")
    expert_speedup: Positive | None = Field(default=None, description="base / expert.")
    per_test: list[PerTestTiming] | None = Field(
        default=None, min_length=1, description="Per-test mean times (GSO)."
    )
    efficiency: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="ENAMEL efficiency score."
    )
    ref_times: RefTimes | None = Field(default=None, description="KernelBench references.")
    # What `optimizer evaluate` adds (all optional: hand-written files need none of them).
    speedup_ci: tuple[Positive, Positive] | None = Field(
        default=None, description="95% interval on `speedup`."
    )
    expert_speedup_ci: tuple[Positive, Positive] | None = Field(
        default=None, description="95% interval on `expert_speedup`."
    )
    verdict: str | None = Field(
        default=None, description="The judge's verdict: faster, slower, same or inconclusive."
    )
    metric: str | None = Field(default=None, description="The metric that decided the speedup.")
    protocol: str | None = Field(
        default=None, description="How each process was timed: cold or warm (see the README)."
    )
    dps: float | None = Field(
        default=None, ge=0, le=100, allow_inf_nan=False,
        description="EvalPerf DPS (0-100) against the task's reference levels.",
    )  # fmt: skip
    dps_norm: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    fault: Literal["agent", "harness"] | None = Field(
        default=None,
        description="Whose failure an incorrect sample is: the agent's (its patch) or the "
        "harness's (`optimizer evaluate --retry-failed` redoes only those).",
    )
    reason: str | None = Field(default=None, description="Why it failed, in one line.")
    cost_usd: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)

    @field_validator("correct")
    @classmethod
    def _agrees_with_status(cls, correct: bool, info: ValidationInfo) -> bool:
        status = info.data.get("status")
        if status == "ok" and not correct:
            raise ValueError("is false but status is 'ok'")
        if status not in (None, "ok", "timeout") and correct:
            raise ValueError(f"is true but status is {status!r}")
        return correct

    @property
    def run_index(self) -> int:
        """The run this attempt belongs to: ``run``, or ``sample`` when ``run`` is absent."""
        return self.sample if self.run is None else self.run

    def resolved_speedup(self) -> float | None:
        """``speedup``, else ``base_time_s / candidate_time_s``, else None."""
        if self.speedup is not None:
            return self.speedup
        if self.base_time_s is not None and self.candidate_time_s is not None:
            return self.base_time_s / self.candidate_time_s
        return None

    def resolved_expert_speedup(self) -> float | None:
        """``expert_speedup``, else ``base_time_s / expert_time_s``, else None."""
        if self.expert_speedup is not None:
            return self.expert_speedup
        if self.base_time_s is not None and self.expert_time_s is not None:
            return self.base_time_s / self.expert_time_s
        return None


def _field_error(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    loc = ".".join(str(part) for part in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    text = f"field '{loc}': {msg}" if loc else msg
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more on that line)"
    return text


def load_results(path: str | os.PathLike[str]) -> list[SampleResult]:
    """Read a results JSONL file into :class:`SampleResult` objects, in file order.

    Raises:
        UserError: a missing, unreadable or empty file, a line that is not a JSON object, a
            line that fails validation (the message names the line number and the field), or
            two lines for the same (agent, model, task_id, sample).
    """
    name = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(
            f"results file {name} does not exist", "pass the JSONL file `optimizer evaluate` wrote"
        ) from None
    except IsADirectoryError:
        raise UserError(f"{name} is a directory, not a results file", "pass a JSONL file") from None
    except UnicodeDecodeError:
        raise UserError(f"{name} is not UTF-8 text", "pass a JSONL results file") from None
    except OSError as exc:
        raise UserError(f"cannot read {name}: {exc.strerror}", "check the path") from None

    results: list[SampleResult] = []
    seen: dict[tuple[str, str | None, str, int], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        try:
            obj: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{where}: not valid JSON ({exc.msg} at column {exc.colno})",
                "write one JSON object per line",
            ) from None
        if not isinstance(obj, dict):
            raise UserError(
                f"{where}: expected a JSON object, got {type(obj).__name__}",
                "write one JSON object per line",
            )
        try:
            result = SampleResult.model_validate(obj)
        except ValidationError as exc:
            raise UserError(
                f"{where}: {_field_error(exc)}", f"correct that line; {_SCHEMA_HINT}"
            ) from None
        key = (result.agent, result.model, result.task_id, result.sample)
        if key in seen:
            raise UserError(
                f"{where}: task {result.task_id!r} sample {result.sample} of agent "
                f"{result.agent!r} already appears on line {seen[key]}",
                "give every attempt of a task its own sample index",
            )
        seen[key] = number
        results.append(result)
    if not results:
        raise UserError(f"{name} has no results", "run `optimizer evaluate` first")
    return results


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temp file in the same folder, then os.replace.

    Raises:
        UserError: the folder does not exist or is not writable.
    """
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise UserError(
            f"cannot write {os.fspath(path)}: {exc.strerror}", "pick a path in a writable folder"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one line to a log durably (fsync). A line a kill cut short stays on its own:
    the new one starts on a fresh line. Callers serialize appends to one file."""
    data = line.encode("utf-8") + b"\n"
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_results(path: str | os.PathLike[str], results: Iterable[SampleResult]) -> None:
    """Write results as JSONL (unset optional fields left out), atomically."""
    lines = [r.model_dump_json(exclude_none=True) + "\n" for r in results]
    write_text_atomic(path, "".join(lines))


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON (NaN/inf refused), atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
