"""The run directory of `optimizer run`: an append-only event log written as things happen.

Every model call, tool call, candidate, grade, note, the winner, the commit and the end of
the run go into ``events.jsonl`` the moment they happen, one JSON object per line, flushed
and fsynced. Nothing is ever rewritten, so a run killed at any point loses at most the line
being written, and ``optimizer run --resume`` rebuilds where it was from the lines before
(:class:`RunState`). Derived files (report.md, report.html, winner.patch) are written
atomically next to the log and can always be regenerated from it.

Every record carries ``type`` (the discriminator), ``v`` (its schema version) and ``t``
(unix time). Readers skip record types they do not know and fields they do not know, so an
older `optimizer show` can read a newer run's log.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from optimizer.errors import UserError
from optimizer.results import append_line, write_text_atomic
from tasks.grade import Grade

#: The log's file name inside a run directory; its presence is what makes a run directory.
EVENTS = "events.jsonl"

#: How much of a tool observation a record keeps: enough to replay the agent's view of an
#: error, small enough that a long build log does not bloat the event log.
OBSERVATION_LIMIT = 8000

#: The grading stages, in the order a candidate goes through them.
Stage = Literal["correctness", "quick", "full", "confirm", "minimize", "expert"]
STAGES: tuple[str, ...] = ("correctness", "quick", "full", "confirm", "minimize", "expert")

NoteKind = Literal["warning", "hint", "decision", "mode"]


def truncate(text: str, limit: int = OBSERVATION_LIMIT) -> str:
    """Keep the head and the tail of ``text`` (errors are usually at the end), mark the cut."""
    if len(text) <= limit:
        return text
    marker = f"\n[... {len(text) - limit} characters cut ...]\n"
    head = (limit - len(marker)) // 2
    tail = limit - len(marker) - head
    return text[:head] + marker + text[len(text) - tail :]


class RecordBase(BaseModel):
    """Fields every record has. Unknown fields are refused when writing (a typo is a bug)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str  # each record narrows it to a Literal; declared here so it leads every line
    v: int = 1
    t: float = Field(default_factory=time.time, description="Unix time the event happened.")


class RunStarted(RecordBase):
    """A run (or a resume of it) began; a resumed run has more than one."""

    type: Literal["run_started"] = "run_started"
    run_id: str
    repo: str
    base_sha: str
    task_id: str
    config: dict[str, Any] = Field(
        default_factory=dict, description="The run's settings: model, candidates, budgets..."
    )
    argv: list[str] = Field(default_factory=list)


class ModelCall(RecordBase):
    """One model reply; ``request_sha`` lets a resume replay it instead of paying again."""

    type: Literal["model_call"] = "model_call"
    thread: str = Field(description="Whose conversation: 'ideas', 'c1', 'r1-c2'...")
    step: int = Field(ge=0)
    request_sha: str
    reply: dict[str, Any] = Field(description="The serialized model reply.")
    cost_usd: float = 0.0
    tokens: int = 0


class ToolCall(RecordBase):
    """One tool call the agent made and what it saw (truncated to OBSERVATION_LIMIT)."""

    type: Literal["tool_call"] = "tool_call"
    thread: str
    step: int = Field(ge=0)
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    observation: str = ""
    error: bool = False

    @field_validator("observation")
    @classmethod
    def _cap(cls, text: str) -> str:
        return truncate(text)


class CandidateRecord(RecordBase):
    """A candidate patch an agent produced, and the idea it pursued."""

    type: Literal["candidate"] = "candidate"
    id: str = Field(description="'c1', 'r1-c2'...")
    parent: str | None = None
    idea: str = ""
    patch: str = ""
    agent_exit: str = Field("", description="'submitted' or the limit that ended the agent.")
    steps: int = 0
    cost_usd: float = 0.0


class GradeRecord(RecordBase):
    """One grading stage of one candidate; ``grade`` is the whole Grade as JSON."""

    type: Literal["grade"] = "grade"
    candidate: str
    stage: Stage
    status: str
    correct: bool
    speedup: float | None = None
    ci: list[float] | None = None
    metric: str | None = None
    protocol: str | None = Field(None, description="cold or warm (None: not measured).")
    verdict: str | None = None
    reason: str = ""
    grade: dict[str, Any] = Field(default_factory=dict)
    elapsed_s: float = 0.0

    @classmethod
    def from_grade(cls, candidate: str, stage: Stage, grade: Grade) -> GradeRecord:
        """The record of ``grade``: its headline fields lifted out so reports need not dig."""
        m = grade.measurement
        return cls(
            candidate=candidate,
            stage=stage,
            status=grade.status.value,
            correct=grade.correct,
            speedup=m.speedup if m else None,
            ci=list(m.ci) if m else None,
            metric=m.metric if m else None,
            protocol=m.protocol if m else None,
            verdict=m.verdict if m else None,
            reason=grade.reason,
            grade=grade.model_dump(mode="json"),
            elapsed_s=grade.elapsed_s,
        )

    @property
    def significant(self) -> bool:
        """Correct, judged faster, and (when it has one) its whole CI above 1.0x."""
        if not self.correct or self.verdict != "faster" or self.speedup is None:
            return False
        return self.speedup > 1.0 and (not self.ci or self.ci[0] > 1.0)


class Note(RecordBase):
    """Something a person reading the run should know: a warning, hint, decision or mode."""

    type: Literal["note"] = "note"
    kind: NoteKind = "warning"
    text: str


class Winner(RecordBase):
    """The chosen candidate after minimization: the patch that gets committed."""

    type: Literal["winner"] = "winner"
    candidate: str
    patch: str
    speedup: float
    ci: list[float] | None = None
    metric: str | None = None
    protocol: str | None = None
    verdict: str | None = None
    hunks_before: int = 0
    hunks_after: int = 0
    sr: float | None = Field(None, description="Speedup ratio against the expert's.")
    expert_speedup: float | None = None


class Commit(RecordBase):
    """The winner committed on a branch of the user's repository."""

    type: Literal["commit"] = "commit"
    branch: str
    sha: str
    repo: str
    message: str = ""


class PatchWritten(RecordBase):
    """The winner written as a patch file instead of committed (--no-commit)."""

    type: Literal["patch_written"] = "patch_written"
    path: str


class RunEnded(RecordBase):
    """The run stopped: 'finished', 'no significant winner', 'max-cost', 'interrupted'..."""

    type: Literal["run_ended"] = "run_ended"
    reason: str
    committed: bool = False


Record = Annotated[
    RunStarted
    | ModelCall
    | ToolCall
    | CandidateRecord
    | GradeRecord
    | Note
    | Winner
    | Commit
    | PatchWritten
    | RunEnded,
    Field(discriminator="type"),
]

RECORD_TYPES: dict[str, type[RecordBase]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        RunStarted,
        ModelCall,
        ToolCall,
        CandidateRecord,
        GradeRecord,
        Note,
        Winner,
        Commit,
        PatchWritten,
        RunEnded,
    )
}

_PARSE: TypeAdapter[Record] = TypeAdapter(Record)

R = TypeVar("R", bound=RecordBase)


def select(records: Sequence[Record], type_: type[R]) -> list[R]:
    """The records of one type, in log order."""
    return [r for r in records if isinstance(r, type_)]


def new_run_id() -> str:
    """``20261129-163000-ab12``: UTC time (so names sort by start), then random hex."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


class Scan(NamedTuple):
    """What reading a log found: the records, and the lines it had to leave out."""

    records: list[Record]
    damaged: list[int]  # line numbers that are not JSON: a write cut short by a kill
    unknown: list[int]  # line numbers of record types (or versions) this code does not know


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    """One lock per events file, shared by every RunDir object on it in this process."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path.resolve(), threading.Lock())


class RunDir:
    """A run's folder: ``events.jsonl`` (append-only) plus derived files written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events = path / EVENTS
        self._lock = _lock_for(self.events)

    @property
    def run_id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, parent: Path, run_id: str) -> RunDir:
        """Make ``parent/run_id`` with an empty log; refuse one that exists (never mix runs)."""
        path = parent.expanduser() / run_id
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir()
        except FileExistsError:
            raise UserError(
                f"run directory {path} already exists",
                "resume it with `optimizer run --resume`, or pick another run id",
            ) from None
        except OSError as exc:
            raise UserError(
                f"cannot create run directory {path}: {exc.strerror}", "pick a writable folder"
            ) from None
        (path / EVENTS).touch()
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """An existing run directory (one holding ``events.jsonl``)."""
        path = path.expanduser()
        hint = "pass a folder that `optimizer run` made, e.g. runs/<run-id>"
        if not path.exists():
            raise UserError(f"run directory {path} does not exist", hint)
        if not path.is_dir():
            raise UserError(f"{path} is a file, not a run directory", hint)
        if not (path / EVENTS).is_file():
            raise UserError(f"{path} is not a run directory (it has no {EVENTS})", hint)
        return cls(path)

    def append(self, record: RecordBase) -> None:
        """Add one line, durably (fsync), from any thread; never touch what is there."""
        with self._lock:
            append_line(self.events, record.model_dump_json())

    def scan(self) -> Scan:
        """Read the log, leaving out lines cut short by a kill and types from newer versions.

        Raises:
            UserError: the log is unreadable, or a complete JSON line of a known type and
                version does not validate (the file was edited, or written by a bug).
        """
        try:
            data = self.events.read_bytes()
        except OSError as exc:
            raise UserError(
                f"cannot read {self.events}: {exc.strerror}", "check the path"
            ) from None
        scan = Scan([], [], [])
        for number, raw in enumerate(data.split(b"\n"), start=1):
            if raw.strip():
                self._read_line(raw, number, scan)
        return scan

    def _read_line(self, raw: bytes, number: int, scan: Scan) -> None:
        try:
            obj: Any = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            scan.damaged.append(number)
            return
        cls = RECORD_TYPES.get(obj.get("type")) if isinstance(obj, dict) else None
        if cls is None:
            scan.unknown.append(number)
            return
        known = {k: v for k, v in obj.items() if k in cls.model_fields}
        try:
            scan.records.append(_PARSE.validate_python(known))
        except ValidationError as exc:
            if isinstance(obj.get("v"), int) and obj["v"] > cls.model_fields["v"].default:
                scan.unknown.append(number)  # a newer schema of this type: not ours to judge
                return
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"][1:])  # [0] is the type tag
            raise UserError(
                f"{self.events} line {number}: {obj['type']} record, field '{where}': "
                f"{first['msg']}",
                "restore the line as `optimizer run` wrote it, or delete it",
            ) from None

    def records(self) -> list[Record]:
        """Every readable record, in the order they happened."""
        return self.scan().records

    def of(self, type_: type[R]) -> list[R]:
        """The records of one type, e.g. ``run.of(GradeRecord)``."""
        return select(self.records(), type_)

    def write_text(self, name: str, text: str) -> Path:
        """Write a derived file (report.md, winner.patch...) next to the log, atomically."""
        if not name or Path(name).name != name or name == EVENTS:
            raise ValueError(f"not a derived file name: {name!r}")
        target = self.path / name
        write_text_atomic(target, text)
        return target


@dataclass
class RunState:
    """Where a run stands, rebuilt from its log: what `--resume` and the reports need.

    Later records win over earlier ones for the same key (a candidate re-recorded, a stage
    re-graded after a resume). Model steps are counted once per (thread, step); cost sums
    every model call, since each one was paid for.
    """

    starts: list[RunStarted] = field(default_factory=list)
    candidates: dict[str, CandidateRecord] = field(default_factory=dict)
    grades: dict[tuple[str, str], GradeRecord] = field(default_factory=dict)
    model_calls: dict[str, list[ModelCall]] = field(default_factory=dict)
    tool_calls: dict[str, list[ToolCall]] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    winner: Winner | None = None
    commit: Commit | None = None
    patch_written: PatchWritten | None = None
    ended: RunEnded | None = None
    total_cost: float = 0.0
    total_tokens: int = 0
    #: Every grade with the number of model steps taken when it arrived (for the plot).
    grade_log: list[tuple[int, GradeRecord]] = field(default_factory=list)
    #: Candidate ids in the order they first appeared (as a candidate or in a grade).
    order: list[str] = field(default_factory=list)

    @classmethod
    def from_records(cls, records: Sequence[Record]) -> RunState:
        """Fold the log into a state, in order."""
        state = cls()
        steps: dict[str, dict[int, ModelCall]] = {}
        for record in records:
            state._apply(record, steps)
        state.model_calls = {th: [by[s] for s in sorted(by)] for th, by in steps.items()}
        return state

    def _apply(self, record: Record, steps: dict[str, dict[int, ModelCall]]) -> None:
        match record:
            case RunStarted():
                self.starts.append(record)
                self.ended = None  # a resume reopens a run that had ended (e.g. interrupted)
            case ModelCall():
                steps.setdefault(record.thread, {})[record.step] = record
                self.total_cost += record.cost_usd
                self.total_tokens += record.tokens
            case ToolCall():
                self.tool_calls.setdefault(record.thread, []).append(record)
            case CandidateRecord():
                self._see(record.id)
                self.candidates[record.id] = record
            case GradeRecord():
                self._see(record.candidate)
                self.grades[(record.candidate, record.stage)] = record
                self.grade_log.append((sum(map(len, steps.values())), record))
            case Note():
                self.notes.append(record)
            case Winner():
                self.winner = record
            case Commit():
                self.commit = record
            case PatchWritten():
                self.patch_written = record
            case RunEnded():
                self.ended = record

    def _see(self, candidate: str) -> None:
        if candidate not in self.order:
            self.order.append(candidate)

    @property
    def started(self) -> RunStarted | None:
        """The first start: the run's identity (id, repo, base, task)."""
        return self.starts[0] if self.starts else None

    @property
    def config(self) -> dict[str, Any]:
        """The settings of the latest start (a resume may change budgets)."""
        return self.starts[-1].config if self.starts else {}

    @property
    def resumes(self) -> int:
        return max(0, len(self.starts) - 1)

    @property
    def total_steps(self) -> int:
        """Model steps over every thread, each (thread, step) once."""
        return sum(len(calls) for calls in self.model_calls.values())

    @property
    def committed(self) -> bool:
        return self.commit is not None

    def replies(self) -> dict[str, dict[str, Any]]:
        """request_sha -> recorded reply: a resume answers repeated requests from here."""
        return {c.request_sha: c.reply for calls in self.model_calls.values() for c in calls}

    def next_step(self, thread: str) -> int:
        """The step a resumed thread continues from."""
        calls = self.model_calls.get(thread)
        return calls[-1].step + 1 if calls else 0

    def stages_of(self, candidate: str) -> list[GradeRecord]:
        """The candidate's grades in stage order (correctness first)."""
        return [g for s in STAGES if (g := self.grades.get((candidate, s))) is not None]

    def last_grade(self, candidate: str) -> GradeRecord | None:
        """The furthest stage the candidate reached."""
        stages = self.stages_of(candidate)
        return stages[-1] if stages else None

    def measured(self, candidate: str) -> GradeRecord | None:
        """The furthest stage that measured a speedup (the most trustworthy number)."""
        timed = [g for g in self.stages_of(candidate) if g.speedup is not None]
        return timed[-1] if timed else None
