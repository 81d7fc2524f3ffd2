"""Verified (slow, fast) pairs from `optimizer run` and `optimizer evaluate` directories.

A pair is a patch the judge graded **correct** and **significantly faster** (verdict
``faster``, the whole 95% interval above 1.0x) on its fullest measurement, with the
judge's evidence kept beside it, ready for fine-tuning or RL data sets (PIE, Effi-Code).
Nothing unverified is exported: every candidate or sample that is left out is counted
under one reason (:data:`REASONS`), so a reader can see what the data set lost and why.

* An **`optimizer run` directory** (``events.jsonl``): the winner (its minimized patch, with
  the confirming or minimizing grade as evidence) and every other candidate whose grades
  are all correct and whose furthest measuring stage (``full``) says faster. The base is
  ``base_sha`` of the run's ``repo``.
* An **`optimizer evaluate` directory** (``evaluate.json`` + ``samples.jsonl``): every sample
  whose record and whose whole Grade (``grades/...json``, required: it is the evidence)
  say correct and faster. The base is the task's source (:func:`tasks.source.task_source`).
* A folder holding directories of either kind.

``slow`` and ``fast`` hold only the files the patch changes: the base's text read with
``git show`` and the text after ``git apply`` in a private temporary folder, so the
user's working tree, index and branches are never read or touched.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from optimizer.errors import UserError
from optimizer.evaluate_records import CONFIG, SAMPLES, EvalDir, Key, SampleRecord
from optimizer.results import write_text_atomic
from optimizer.rundir import EVENTS, GradeRecord, RunDir, RunState
from sandbox.errors import PatchError
from sandbox.source import apply_patch
from tasks.grade import Grade, Measurement, TestsResult
from tasks.guard import parse_patch
from tasks.model import Task
from tasks.source import resolve_commit, task_source
from tasks.suite import find_task, load_suite

#: Why a candidate or sample is left out, in the order the summary lists them.
REASONS: tuple[str, ...] = (
    "incorrect",
    "harness failed",
    "not faster",
    "inconclusive",
    "not graded",
    "not fully measured",
    "below --min-speedup",
    "no grade evidence",
    "rejected in review",
    "base unavailable",
    "patch does not apply",
    "binary file",
    "duplicate",
)

#: The stages of `optimizer run` whose measurement covers every workload (hidden ones too).
FULL_STAGES = ("full", "confirm", "minimize")

DirKind = Literal["run", "evaluate"]


# ---- the line --------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Speed(_Strict):
    """A judged speedup (base over fast, on one metric) with its 95% CI, p and pairs."""

    metric: str
    verdict: str
    speedup: float
    ci: tuple[float, float]
    p_value: float
    pairs: int


class WorkloadEvidence(_Speed):
    """One workload and metric of the judge's measurement."""

    name: str
    hidden: bool
    deterministic: bool


class GradeSource(_Strict):
    """Where the judge's whole Grade is: a grade JSON, or a grade record of a run's log."""

    file: str
    candidate: str | None = Field(None, description="The grade record's candidate (runs).")
    stage: str | None = Field(None, description="The grade record's stage (runs).")
    t: float | None = Field(None, description="The grade record's time (runs).")


class Evidence(_Speed):
    """The judge's measurement summary behind one pair (the deciding metric, every workload)."""

    status: str
    region: str
    rule: str
    base_median_s: float
    fast_median_s: float
    workloads: list[WorkloadEvidence]
    tests: str | None
    tests_contract: int | None = Field(None, description="Test ids that had to pass.")
    checks: dict[str, bool] = Field(default_factory=dict, description="Equivalence checks.")
    base_repo: str
    base_sha: str
    grade: GradeSource
    winner: bool | None = Field(None, description="The run's committed winner (runs).")


class Pair(_Strict):
    """One exported line: a verified (slow, fast) pair and the evidence that verified it."""

    v: Literal[1] = 1
    id: str
    source: DirKind
    dir: str
    task_id: str
    agent: str
    model: str | None
    metric: str
    speedup: float
    speedup_ci: tuple[float, float]
    verdict: Literal["faster"]
    tests: str | None = Field(description="The fast side's tests, e.g. '24/24'.")
    patch: str
    slow: dict[str, str] = Field(description="The base's text of each file the patch changes.")
    fast: dict[str, str] = Field(description="Each file's text with the patch applied.")
    evidence: Evidence


@dataclass
class Export:
    """What reading the directories gave: the pairs, the directories, what was left out."""

    pairs: list[Pair] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)

    def left_out_text(self) -> str:
        """``3 incorrect, 1 not faster`` (or ``none``), in :data:`REASONS` order."""
        parts = [f"{self.left_out[r]} {r}" for r in REASONS if self.left_out[r]]
        return ", ".join(parts) or "none"


class LeftOut(Exception):
    """A candidate or sample that is not exported, and the reason (one of :data:`REASONS`)."""

    def __init__(self, reason: str) -> None:
        assert reason in REASONS, reason
        super().__init__(reason)
        self.reason = reason


# ---- finding the directories -------------------------------------------------------------

_HINT = (
    "pass an `optimizer run` directory (with events.jsonl), an `optimizer evaluate` --out "
    "directory (with evaluate.json), or a folder holding such directories"
)


def _kind(path: Path) -> DirKind | None:
    if (path / EVENTS).is_file():
        return "run"
    if (path / CONFIG).is_file() or (path / SAMPLES).is_file():
        return "evaluate"
    return None


def find_dirs(paths: Sequence[Path]) -> list[tuple[DirKind, Path]]:
    """Each path's run and evaluation directories (a parent folder gives its children's).

    Raises:
        UserError: a path that does not exist, is a file, or holds neither kind.
    """
    found: dict[Path, DirKind] = {}
    for given in paths:
        path = given.expanduser()
        if not path.exists():
            raise UserError(f"{given} does not exist", _HINT)
        if not path.is_dir():
            raise UserError(f"{given} is a file, not a directory", _HINT)
        kind = _kind(path)
        children = [] if kind else sorted(p for p in path.iterdir() if p.is_dir() and _kind(p))
        if kind is None and not children:
            raise UserError(
                f"{given} is neither a run directory nor an evaluation directory, and holds none",
                _HINT,
            )
        for d, k in [(path, kind)] if kind else [(c, _kind(c)) for c in children]:
            assert k is not None
            found.setdefault(d.resolve(), k)
    return [(k, d) for d, k in found.items()]


# ---- the judge's verdict -------------------------------------------------------------------


def _correct(correct: bool, harness: bool) -> None:
    """Raise LeftOut unless the judge found the patch correct."""
    if harness:
        raise LeftOut("harness failed")
    if not correct:
        raise LeftOut("incorrect")


def _judge(
    *, correct: bool, harness: bool, verdict: str | None, speedup: float | None,
    ci: Sequence[float] | None, min_speedup: float,
) -> None:  # fmt: skip
    """Raise LeftOut unless correct, judged faster with its whole CI above 1, >= min_speedup."""
    _correct(correct, harness)
    if verdict is None or speedup is None:
        raise LeftOut("not fully measured")
    if verdict == "inconclusive":
        raise LeftOut("inconclusive")
    if verdict != "faster" or speedup <= 1.0 or (ci is not None and ci[0] <= 1.0):
        raise LeftOut("not faster")
    if speedup < min_speedup:
        raise LeftOut("below --min-speedup")


def _grade_of(data: dict | str) -> Grade:
    """The whole Grade, or LeftOut('no grade evidence') when it is not one."""
    try:
        if isinstance(data, str):
            return Grade.model_validate_json(data)
        return Grade.model_validate(data)
    except ValidationError:
        raise LeftOut("no grade evidence") from None


def _workloads(m: Measurement) -> list[WorkloadEvidence]:
    out = []
    for w in m.workloads:
        for r in w.metrics:
            lo, hi = r.ci
            out.append(
                WorkloadEvidence(
                    name=w.name,
                    hidden=w.hidden,
                    metric=r.metric,
                    verdict=r.verdict,
                    speedup=r.speedup,
                    ci=(1 / hi, 1 / lo) if lo > 0 and hi > 0 else (0.0, 0.0),
                    p_value=r.p_value,
                    pairs=r.pairs,
                    deterministic=r.deterministic,
                )
            )
    return out


def _evidence(
    g: Grade, tests: TestsResult | None, base: _Base, where: GradeSource, winner: bool | None
) -> Evidence:
    m = g.measurement
    assert m is not None
    return Evidence(
        status=g.status.value, metric=m.metric, verdict=m.verdict, speedup=m.speedup,
        ci=m.ci, p_value=m.p_value, pairs=m.pairs, region=m.region, rule=m.rule,
        base_median_s=m.base_median_s, fast_median_s=m.candidate_median_s,
        workloads=_workloads(m), tests=tests.summary() if tests else None,
        tests_contract=tests.contract if tests else None,
        checks={c.name: c.passed for c in g.checks}, base_repo=str(base.repo),
        base_sha=base.sha, grade=where, winner=winner,
    )  # fmt: skip


# ---- the two sides ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Base:
    repo: Path
    sha: str


def _base(repo: Path, rev: str) -> _Base:
    """The base commit, or LeftOut('base unavailable') when the repo or commit is gone."""
    if not repo.is_dir():
        raise LeftOut("base unavailable")
    sha = resolve_commit(repo, rev)
    if sha is None:
        raise LeftOut("base unavailable")
    return _Base(repo, sha)


def _show(base: _Base, path: str) -> bytes | None:
    """The file's bytes at the base commit, as stored; None when the base has no such file."""
    done = subprocess.run(
        ["git", "-C", str(base.repo), "cat-file", "blob", f"{base.sha}:{path}"],
        capture_output=True,
    )
    return done.stdout if done.returncode == 0 else None


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise LeftOut("binary file") from None


def sides(base: _Base, patch: str) -> tuple[dict[str, str], dict[str, str]]:
    """(slow, fast): the text of each file ``patch`` changes at the base, and after it.

    The base's files are read with ``git show`` into a private temporary folder and the
    patch is applied there with ``git apply``; a file the patch deletes is only in slow, a
    file it creates only in fast.
    """
    diffs = parse_patch(patch)
    if not diffs:
        raise LeftOut("not faster")  # an empty patch is the base itself
    if any(d.binary for d in diffs):
        raise LeftOut("binary file")
    paths = list(dict.fromkeys(p for d in diffs for p in d.paths()))
    slow: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="optimizer-export-") as tmp:
        root = Path(tmp) / "tree"
        root.mkdir()
        for path in paths:
            data = _show(base, path)
            if data is not None:
                target = root / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                slow[path] = _text(data)
        try:
            apply_patch(root, patch, f"the base ({base.sha[:12]})")
        except PatchError:
            raise LeftOut("patch does not apply") from None
        fast = {p: _text((root / p).read_bytes()) for p in paths if (root / p).is_file()}
    return slow, fast


def _pair_id(base: _Base, patch: str) -> str:
    """Content-addressed: the same patch on the same base has the same id in every export."""
    return hashlib.sha256(f"{base.sha}\0{patch}".encode()).hexdigest()[:16]


# ---- run directories ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Verified:
    """A grade that passed the judgment, with the patch it graded."""

    name: str  # the candidate's id (what the pair is of)
    patch: str
    record: GradeRecord
    grade: Grade
    tests: TestsResult | None
    winner: bool


def _run_tests(state: RunState, name: str, record: GradeRecord, g: Grade) -> TestsResult | None:
    """The tests behind a grade: its own, else the candidate's correctness stage's (the
    timing stages do not re-run the tests the same patch passed there)."""
    if g.tests is not None:
        return g.tests
    first = state.grades.get((name, "correctness"))
    if first is None or record.stage == "correctness":
        return None
    return _grade_of(first.grade).tests


def _run_verified(
    state: RunState, name: str, patch: str, record: GradeRecord, min_speedup: float, winner: bool
) -> _Verified:
    for earlier in state.stages_of(name):
        _correct(earlier.correct, bool(earlier.grade.get("harness_fault")))
    _judge(correct=record.correct, harness=bool(record.grade.get("harness_fault")),
           verdict=record.verdict, speedup=record.speedup, ci=record.ci,
           min_speedup=min_speedup)  # fmt: skip
    if record.stage not in FULL_STAGES:
        raise LeftOut("not fully measured")  # quick: the visible workload only, a few pairs
    g = _grade_of(record.grade)
    m = g.measurement
    if m is None:
        raise LeftOut("no grade evidence")
    _judge(correct=g.correct, harness=g.harness_fault, verdict=m.verdict, speedup=m.speedup,
           ci=m.ci, min_speedup=min_speedup)  # fmt: skip
    return _Verified(name, patch, record, g, _run_tests(state, name, record, g), winner)


def _winner_grade(state: RunState) -> GradeRecord | None:
    """The grade the winner's numbers come from: its confirming grade, or the minimizing
    grade of the reduced patch that was kept (the latest with the winner's numbers)."""
    w = state.winner
    if w is None:
        return None
    for _steps, g in reversed(state.grade_log):
        mine = g.candidate == w.candidate or g.candidate.startswith(f"{w.candidate}/m")
        same = g.speedup == w.speedup and (w.ci is None or g.ci == w.ci)
        if mine and g.stage in ("confirm", "minimize") and same:
            return g
    return None


def _rejected(state: RunState) -> set[str]:
    return {
        n.text.removeprefix("reject ")
        for n in state.notes
        if n.kind == "decision" and n.text.startswith("reject ")
    }


def _run_candidates(state: RunState, min_speedup: float) -> Iterator[_Verified | LeftOut]:
    """The winner first, then every other candidate, each once."""
    winner = state.winner
    done: set[str] = set()
    if winner is not None and (record := _winner_grade(state)) is not None:
        done.add(winner.candidate)
        try:
            yield _run_verified(state, winner.candidate, winner.patch, record, min_speedup, True)
        except LeftOut as out:
            yield out
    rejected = _rejected(state)
    for name in state.order:
        cand = state.candidates.get(name)
        if cand is None or name in done:
            continue
        try:
            if name in rejected:
                raise LeftOut("rejected in review")
            record = state.measured(name) or state.last_grade(name)
            if record is None:
                raise LeftOut("not graded")
            yield _run_verified(state, name, cand.patch, record, min_speedup, False)
        except LeftOut as out:
            yield out


def _from_run(path: Path, min_speedup: float, export: Export, seen: set[tuple[str, str]]) -> None:
    state = RunState.from_records(RunDir.open(path).records())
    start = state.started
    if start is None:  # no run_started record: the base is unknown
        export.left_out["base unavailable"] += len(state.candidates)
        return
    model = state.config.get("model")
    try:
        base: _Base | LeftOut = _base(Path(start.repo), start.base_sha)
    except LeftOut as out:
        base = out
    for item in _run_candidates(state, min_speedup):
        try:
            if isinstance(item, LeftOut):
                raise item
            if isinstance(base, LeftOut):
                raise base
            where = GradeSource(file=str(path / EVENTS), candidate=item.record.candidate,
                                stage=item.record.stage, t=item.record.t)  # fmt: skip
            evidence = _evidence(item.grade, item.tests, base, where, item.winner)
            _add(export, seen, base, item.patch, evidence, source="run", dir=str(path),
                 task_id=start.task_id, agent="optimizer run",
                 model=model if isinstance(model, str) and model != "none" else None)  # fmt: skip
        except LeftOut as out:
            export.left_out[out.reason] += 1


def _add(
    export: Export, seen: set[tuple[str, str]], base: _Base, patch: str, evidence: Evidence,
    **head: str | None,
) -> None:  # fmt: skip
    """Append the pair unless the same patch on the same base was exported already."""
    key = (base.sha, patch)
    if key in seen:
        raise LeftOut("duplicate")
    slow, fast = sides(base, patch)
    seen.add(key)
    pair = Pair.model_validate(
        {**head, "id": _pair_id(base, patch), "metric": evidence.metric,
         "speedup": evidence.speedup, "speedup_ci": evidence.ci, "verdict": "faster",
         "tests": evidence.tests, "patch": patch, "slow": slow, "fast": fast,
         "evidence": evidence}
    )  # fmt: skip
    export.pairs.append(pair)


# ---- evaluation directories ----------------------------------------------------------------


class _Suite:
    """The evaluation's tasks and their bases, loaded on first use (once per directory)."""

    def __init__(self, spec: str, folder: Path) -> None:
        self.spec, self.folder = spec, folder
        self._tasks: list[Task] | None = None
        self._bases: dict[str, _Base] = {}

    def base(self, task_id: str) -> _Base:
        if task_id not in self._bases:
            try:
                task = find_task(self._load(), task_id)
                src = task_source(task)
            except UserError:
                raise LeftOut("base unavailable") from None
            self._bases[task_id] = _base(src.repo, src.rev)
        return self._bases[task_id]

    def _load(self) -> list[Task]:
        if self._tasks is None:
            spec = self.spec
            if spec != "builtin" and not Path(spec).expanduser().exists():
                near = self.folder / spec  # a relative suite path, from the evaluation's side
                spec = str(near) if near.exists() else spec
            self._tasks = load_suite(spec)
        return self._tasks


def _sample(
    folder: EvalDir, key: Key, rec: SampleRecord, suite: _Suite, min_speedup: float
) -> tuple[Grade, _Base, GradeSource]:
    r = rec.result
    _judge(correct=r.correct, harness=r.fault == "harness", verdict=r.verdict,
           speedup=r.speedup, ci=r.speedup_ci, min_speedup=min_speedup)  # fmt: skip
    file = folder.grade_path(key)
    try:
        text = file.read_text()
    except OSError:
        raise LeftOut("no grade evidence") from None
    g = _grade_of(text)
    m = g.measurement
    if m is None:
        raise LeftOut("no grade evidence")
    _judge(correct=g.correct, harness=g.harness_fault, verdict=m.verdict, speedup=m.speedup,
           ci=m.ci, min_speedup=min_speedup)  # fmt: skip
    return g, suite.base(r.task_id), GradeSource(file=str(file))


def _from_evaluate(
    path: Path, min_speedup: float, export: Export, seen: set[tuple[str, str]]
) -> None:
    folder = EvalDir(path)
    invocations = folder.invocations()
    if not invocations:
        raise UserError(
            f"{path} has {SAMPLES} but no {CONFIG}, so its suite is unknown",
            "pass the whole --out directory that `optimizer evaluate` wrote",
        )
    suite = _Suite(invocations[0].suite, path.parent)
    for key, rec in folder.samples().items():
        r = rec.result
        try:
            g, base, where = _sample(folder, key, rec, suite, min_speedup)
            evidence = _evidence(g, g.tests, base, where, None)
            evidence = evidence.model_copy(update={"tests": rec.tests or evidence.tests})
            _add(export, seen, base, rec.patch, evidence, source="evaluate", dir=str(path),
                 task_id=r.task_id, agent=r.agent, model=r.model)  # fmt: skip
        except LeftOut as out:
            export.left_out[out.reason] += 1


# ---- the whole export ----------------------------------------------------------------------


def collect(paths: Sequence[Path], min_speedup: float = 1.0) -> Export:
    """Every verified pair in ``paths`` (run, evaluation, or parent directories), in order.

    Raises:
        UserError: a path that is neither kind, or a directory that cannot be read.
    """
    export = Export()
    seen: set[tuple[str, str]] = set()
    for kind, path in find_dirs(paths):
        export.dirs.append(path)
        reader = _from_run if kind == "run" else _from_evaluate
        reader(path, min_speedup, export, seen)
    return export


def write_pairs(path: Path, pairs: Sequence[Pair]) -> None:
    """The pairs as JSONL, one per line, written atomically (an empty list: an empty file)."""
    write_text_atomic(path, "".join(p.model_dump_json() + "\n" for p in pairs))
