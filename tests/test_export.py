"""`optimizer export`: verified (slow, fast) pairs from real run and evaluation directories.

The directories are written with the same classes `optimizer run` and `optimizer evaluate`
write them with, over real git repositories and a copy of the built-in `spans` task; the
grades are real Grade objects whose measurements come from the real statistics.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from optimizer.errors import UserError
from optimizer.evaluate_records import EvalDir, Invocation, SampleRecord
from optimizer.export import Pair, collect, find_dirs
from optimizer.results import SampleResult
from optimizer.rundir import CandidateRecord, GradeRecord, Note, RunDir, RunStarted, Winner
from profilers.compare import MetricResult
from profilers.stats import compare
from tasks.grade import Grade, GradeStatus, Measurement, WorkloadMeasurement
from tasks.grade import TestsResult as JudgedTests
from tasks.suite import BUILTIN_DIR
from tests.conftest import git

ROOT = Path(__file__).resolve().parents[1]

SLOW = """\
def total(xs):
    out = 0
    for x in list(xs):
        out = out + sum([x])
    return out


def names(rows):
    return [r for r in rows]
"""

FAST = """\
def total(xs):
    return sum(xs)


def names(rows):
    return [r for r in rows]
"""

#: Only the second function changes: the patch of a minimized winner keeps the first.
FAST_AND_TIDY = FAST.replace("return [r for r in rows]", "return list(rows)")

HELPER = "def helper():\n    return 1\n"


# ---- real grades ---------------------------------------------------------------------------


def _metric(ratio: float) -> MetricResult:
    """Instruction counts (deterministic): base 1e9 per run, the candidate ``ratio`` of it."""
    base, head = [1e9] * 5, [1e9 * ratio] * 5
    cmp = compare(base, head, floor=0.02)
    return MetricResult(
        metric="instructions", unit="instructions", verdict=cmp.verdict.value, ratio=cmp.ratio,
        ci=cmp.ci, p_value=cmp.p_value, p_slower=cmp.p_slower, p_faster=cmp.p_faster,
        deterministic=cmp.deterministic, floor=0.02, pairs=len(base), stopped="identical",
        base_median=cmp.base_median, head_median=cmp.head_median, cv_base=cmp.cv_base,
        cv_head=cmp.cv_head, base_samples=base, head_samples=head,
        order=["base", "head"] * len(base),
    )  # fmt: skip


def make_grade(
    ratio: float | None = None,
    *,
    status: GradeStatus = GradeStatus.OK,
    hidden_ratio: float | None = None,
    tests: int = 6,
    harness: bool = False,
    task_id: str = "t",
) -> Grade:
    """A Grade as the judge makes it: ``tests`` passing tests (0: none run), and with
    ``ratio`` a measurement over a visible and a hidden workload (the worse one decides)."""
    g = Grade(task_id=task_id, status=GradeStatus.OK, correct=True, applied=True)
    if tests:
        g.tests = JudgedTests(passed=True, total=tests, failures=0, errors=0, skipped=0,
                              exit_code=0, contract=tests)  # fmt: skip
    if status != GradeStatus.OK:
        g.harness_fault = harness
        return g.fail(status, "test_total failed")
    if ratio is not None:
        visible, hidden = _metric(ratio), _metric(hidden_ratio or ratio)
        worst = max((visible, hidden), key=lambda m: m.ratio)
        lo, hi = worst.ci
        g.measurement = Measurement(
            verdict=worst.verdict, metric="instructions", speedup=1 / worst.ratio,
            ci=(1 / hi, 1 / lo), p_value=worst.p_value, base_median_s=0.0,
            candidate_median_s=0.0, pairs=worst.pairs, region="total", rule="the rule",
            workloads=[
                WorkloadMeasurement(name="workload", verdict=visible.verdict, metrics=[visible]),
                WorkloadMeasurement(name="other", hidden=True, verdict=hidden.verdict,
                                    metrics=[hidden]),
            ],
        )  # fmt: skip
    return g


# ---- a real run directory --------------------------------------------------------------------


def _patch(repo: Path, files: dict[str, str | bytes]) -> str:
    """The diff from HEAD to ``files`` written over the work tree (then the tree restored)."""
    for rel, data in files.items():
        path = repo / rel
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
    git(repo, "add", "-A")
    diff = subprocess.run(
        ["git", "-C", str(repo), "diff", "--cached", "HEAD"], capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    git(repo, "reset", "-q", "--hard", "HEAD")
    return diff


@pytest.fixture
def base_repo(make_repo: Callable[..., Path]) -> tuple[Path, str]:
    repo = make_repo({"calc.py": SLOW, "tests/test_calc.py": "def test_x():\n    pass\n"})
    return repo, git(repo, "rev-parse", "HEAD")


def write_run(parent: Path, repo: Path, sha: str, records: list, run_id: str = "run-1") -> Path:
    run = RunDir.create(parent, run_id)
    run.append(RunStarted(run_id=run_id, repo=str(repo), base_sha=sha, task_id="calc",
                          config={"model": "gpt-test"}))  # fmt: skip
    for record in records:
        run.append(record)
    return run.path


def candidate(cid: str, patch: str, *stages: tuple[str, Grade]) -> list:
    return [
        CandidateRecord(id=cid, patch=patch, agent_exit="submitted"),
        *(GradeRecord.from_grade(cid, stage, g) for stage, g in stages),  # type: ignore[arg-type]
    ]


def _timed(ratio: float, **kw: object) -> Grade:
    return make_grade(ratio, tests=0, **kw)  # type: ignore[arg-type]


def _wide(g: Grade) -> Grade:
    """``g`` as an older judge might have recorded it: 'faster' with a CI reaching 0.95x."""
    assert g.measurement is not None
    return g.model_copy(
        update={"measurement": g.measurement.model_copy(update={"ci": (0.95, 2.1)})}
    )


def test_a_run_gives_exactly_its_one_verified_candidate(tmp_path, base_repo):
    repo, sha = base_repo
    fast = _patch(repo, {"calc.py": FAST})
    broken = _patch(repo, {"calc.py": SLOW.replace("out = 0", "out = 1")})
    tidy = _patch(repo, {"calc.py": SLOW.replace("[r for r in rows]", "list(rows)")})
    records = [
        *candidate("c1", fast, ("correctness", make_grade()), ("quick", _timed(0.5)),
                   ("full", _timed(0.5))),
        *candidate("c2", broken, ("correctness", make_grade(status=GradeStatus.FAILED_TESTS))),
        *candidate("c3", tidy, ("correctness", make_grade()), ("quick", _timed(1.0)),
                   ("full", _timed(1.0))),
    ]  # fmt: skip
    run = write_run(tmp_path / "runs", repo, sha, records)
    (repo / "calc.py").write_text("# the user's next commit\n")  # the base is the run's sha
    git(repo, "commit", "-q", "-am", "later work")
    head = git(repo, "rev-parse", "HEAD")
    (repo / "calc.py").write_text("# an uncommitted edit of the user's\n")

    result = collect([run])

    assert [p.evidence.grade.candidate for p in result.pairs] == ["c1"]
    pair = result.pairs[0]
    assert pair.slow == {"calc.py": SLOW} and pair.fast == {"calc.py": FAST}
    assert (pair.source, pair.task_id, pair.agent, pair.model) == (
        "run", "calc", "optimizer run", "gpt-test",
    )  # fmt: skip
    assert pair.speedup == pytest.approx(2.0) and pair.speedup_ci == pytest.approx((2.0, 2.0))
    assert pair.verdict == "faster" and pair.patch == fast and pair.tests == "6/6"
    ev = pair.evidence
    assert ev.grade.stage == "full" and ev.grade.file == str(run / "events.jsonl")
    assert ev.base_sha == sha and ev.winner is False and ev.tests_contract == 6
    assert [(w.name, w.hidden, round(w.speedup, 6)) for w in ev.workloads] == [
        ("workload", False, 2.0), ("other", True, 2.0),
    ]  # fmt: skip
    assert dict(result.left_out) == {"incorrect": 1, "not faster": 1}
    assert result.left_out_text() == "1 incorrect, 1 not faster"
    # the user's checkout is as it was: the edit still there, nothing staged, HEAD the same
    assert (repo / "calc.py").read_text() == "# an uncommitted edit of the user's\n"
    assert git(repo, "status", "--porcelain") == "M calc.py"
    assert git(repo, "rev-parse", "HEAD") == head != sha


def test_the_winner_is_exported_once_with_its_minimized_patch(tmp_path, base_repo):
    repo, sha = base_repo
    both = _patch(repo, {"calc.py": FAST_AND_TIDY})
    minimized = _patch(repo, {"calc.py": FAST})
    kept = GradeRecord.from_grade("c1/m1", "minimize", make_grade(0.5, tests=7))
    records = [
        *candidate("c1", both, ("correctness", make_grade()), ("full", _timed(0.5)),
                   ("confirm", _timed(0.5))),
        GradeRecord.from_grade("c1/m2", "minimize", _timed(0.9)),  # a reduction that lost it
        kept,
        Winner(candidate="c1", patch=minimized, speedup=kept.speedup or 0, ci=kept.ci,
               metric=kept.metric, verdict=kept.verdict, hunks_before=2, hunks_after=1),
    ]  # fmt: skip
    run = write_run(tmp_path / "runs", repo, sha, records)

    [pair] = collect([run]).pairs

    assert pair.patch == minimized and pair.fast == {"calc.py": FAST}
    assert pair.evidence.winner is True and pair.tests == "7/7"  # the minimizing grade's run
    assert (pair.evidence.grade.candidate, pair.evidence.grade.stage) == ("c1/m1", "minimize")


def test_unverified_candidates_are_counted_by_reason(tmp_path, base_repo):
    repo, sha = base_repo
    fast = _patch(repo, {"calc.py": FAST})
    other = _patch(repo, {"helper.py": HELPER})
    stale = fast.replace("-    out = 0", "-    out = 42")  # no longer matches the base
    ok = ("correctness", make_grade())
    records = [
        *candidate("quick-only", fast, ok, ("quick", _timed(0.5))),
        *candidate("slower-hidden", fast, ok, ("full", _timed(0.5, hidden_ratio=1.5))),
        *candidate("harness", fast, ("correctness", make_grade(
            status=GradeStatus.FAILED_INSTALL, harness=True))),
        *candidate("stale", stale, ok, ("full", _timed(0.5))),
        *candidate("small", other, ok, ("full", _timed(0.9))),
        CandidateRecord(id="ungraded", patch=fast),
        *candidate("rejected", fast, ok, ("full", _timed(0.5))),
        Note(kind="decision", text="reject rejected"),
        *candidate("c1", fast, ok, ("full", _timed(0.5))),
        *candidate("c1-again", fast, ok, ("full", _timed(0.4))),
        *candidate("blob", _patch(repo, {"table.bin": bytes(range(256))}), ok,
                   ("full", _timed(0.5))),
        *candidate("wide", other, ok, ("full", _wide(_timed(0.5)))),
    ]  # fmt: skip
    run = write_run(tmp_path / "runs", repo, sha, records)

    result = collect([run], min_speedup=1.5)

    assert [p.evidence.grade.candidate for p in result.pairs] == ["c1"]
    assert dict(result.left_out) == {
        "not fully measured": 1,  # quick: the visible workload only
        "not graded": 1,
        "not faster": 2,  # slower on the hidden workload; a CI that reaches below 1.0x
        "harness failed": 1,
        "patch does not apply": 1,
        "below --min-speedup": 1,
        "rejected in review": 1,
        "duplicate": 1,
        "binary file": 1,
    }
    # at the default bar the small one is in; its new file is only on the fast side
    pairs = {p.evidence.grade.candidate: p for p in collect([run]).pairs}
    assert sorted(pairs) == ["c1", "small"]
    assert pairs["small"].slow == {} and pairs["small"].fast == {"helper.py": HELPER}


def test_a_parent_folder_and_repeats_give_each_directory_once(tmp_path, base_repo):
    repo, sha = base_repo
    fast = _patch(repo, {"calc.py": FAST})
    good = candidate("c1", fast, ("correctness", make_grade()), ("full", _timed(0.5)))
    write_run(tmp_path / "runs", repo, sha, good, run_id="a")
    b = write_run(tmp_path / "runs", repo, sha, good, run_id="b")
    (tmp_path / "runs" / "notes").mkdir()  # neither kind: passed over inside a parent

    result = collect([tmp_path / "runs", b])

    assert [d.name for d in result.dirs] == ["a", "b"]
    assert len(result.pairs) == 1 and dict(result.left_out) == {"duplicate": 1}
    with pytest.raises(UserError, match="neither a run directory"):
        find_dirs([tmp_path / "runs" / "notes"])
    with pytest.raises(UserError, match="does not exist"):
        find_dirs([tmp_path / "missing"])


def test_a_run_whose_base_is_gone_exports_nothing(tmp_path, base_repo):
    repo, sha = base_repo
    fast = _patch(repo, {"calc.py": FAST})
    good = candidate("c1", fast, ("correctness", make_grade()), ("full", _timed(0.5)))
    run = write_run(tmp_path / "runs", repo, "f" * 40, good)
    result = collect([run])
    assert result.pairs == [] and dict(result.left_out) == {"base unavailable": 1}


# ---- a real evaluation directory ---------------------------------------------------------------


@pytest.fixture
def spans_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPTIMIZER_CACHE", str(tmp_path / "cache"))  # the task's source repo
    task = tmp_path / "suite" / "spans"
    shutil.copytree(BUILTIN_DIR / "spans", task, ignore=shutil.ignore_patterns("__pycache__"))
    return task


def _sample(n: int, status: str, patch: str, *, fault: str | None = None, **result) -> SampleRecord:
    return SampleRecord(
        result=SampleResult(task_id="spans", sample=n, agent="oracle", model="m-1",
                            status=status, correct=status == "ok", fault=fault,  # type: ignore[arg-type]
                            **result),
        patch=patch, tests="24/24" if status == "ok" else None,
    )  # fmt: skip


def write_eval(folder: Path, task: Path, samples: list[tuple[SampleRecord, Grade | None]]) -> Path:
    ed = EvalDir.open(folder)
    ed.record_invocation(Invocation(suite=str(task), agent="oracle", k=1))
    for rec, g in samples:
        ed.append(rec)
        if g is not None:
            ed.write_grade(rec.key, g.model_dump_json())
    return folder


def test_an_evaluation_gives_exactly_its_faster_correct_sample(tmp_path, spans_task):
    expert = (spans_task / "expert.patch").read_text()
    good = make_grade(0.25, task_id="spans")
    m = good.measurement
    assert m is not None
    faster = _sample(0, "ok", expert, speedup=m.speedup, speedup_ci=m.ci, verdict="faster",
                     metric="instructions")  # fmt: skip
    wrong = _sample(1, "failed_tests", expert.replace("sorted(intervals)", "intervals"),
                    fault="agent")  # fmt: skip
    crashed = _sample(2, "error", "", fault="harness", reason="the sandbox died")
    bad = make_grade(status=GradeStatus.FAILED_TESTS, task_id="spans")
    folder = write_eval(tmp_path / "eval", spans_task,
                        [(faster, good), (wrong, bad), (crashed, None)])  # fmt: skip

    result = collect([folder])

    [pair] = result.pairs
    base_merge = (spans_task / "repo" / "spans" / "merge.py").read_text()
    applied = tmp_path / "applied"
    shutil.copytree(spans_task / "repo", applied)
    subprocess.run(["git", "apply", str(spans_task / "expert.patch")], cwd=applied, check=True)
    assert pair.slow == {"spans/merge.py": base_merge}
    assert pair.fast == {"spans/merge.py": (applied / "spans" / "merge.py").read_text()}
    assert pair.fast != pair.slow and "for interval in sorted(intervals):" in pair.fast[
        "spans/merge.py"]  # fmt: skip
    assert (pair.source, pair.task_id, pair.agent, pair.model, pair.tests) == (
        "evaluate", "spans", "oracle", "m-1", "24/24",
    )  # fmt: skip
    assert pair.speedup == pytest.approx(4.0) and pair.patch == expert
    grade_file = EvalDir(folder).grade_path(faster.key)
    assert pair.evidence.grade.file == str(grade_file) and grade_file.is_file()
    assert pair.evidence.p_value == m.p_value and pair.evidence.pairs == 5
    assert dict(result.left_out) == {"incorrect": 1, "harness failed": 1}


def test_an_evaluation_sample_needs_its_grade_and_a_speedup_above_the_bar(tmp_path, spans_task):
    expert = (spans_task / "expert.patch").read_text()
    g = make_grade(0.8, task_id="spans")
    fields = dict(speedup=1.25, speedup_ci=(1.25, 1.25), verdict="faster", metric="instructions")
    folder = write_eval(tmp_path / "eval", spans_task, [
        (_sample(0, "ok", expert, **fields), None),  # no grade JSON: no evidence
        (_sample(1, "ok", expert, **fields), g),
        (_sample(2, "ok", expert, **{**fields, "verdict": "inconclusive"}), g),
    ])  # fmt: skip

    at_bar = collect([folder], min_speedup=1.2)
    assert len(at_bar.pairs) == 1 and at_bar.pairs[0].evidence.grade.file.endswith("1.json")
    assert dict(at_bar.left_out) == {"no grade evidence": 1, "inconclusive": 1}
    assert dict(collect([folder], min_speedup=1.3).left_out) == {
        "below --min-speedup": 2, "inconclusive": 1,
    }  # fmt: skip


# ---- the command -----------------------------------------------------------------------------

#: `python -m optimizer` (cli.main), with `export` registered if cli.py does not yet.
_LAUNCH = (
    "import sys\n"
    "from optimizer import cli, export_cmd\n"
    "if 'export' not in {c.name for c in cli.app.registered_commands}:\n"
    "    export_cmd.register(cli.app)\n"
    "sys.argv[0] = 'optimizer'\n"
    "cli.main()\n"
)


def optimizer(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _LAUNCH, "export", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=120,
    )  # fmt: skip


def test_the_command_writes_the_pairs_and_a_summary(tmp_path, base_repo):
    repo, sha = base_repo
    fast = _patch(repo, {"calc.py": FAST})
    good = candidate("c1", fast, ("correctness", make_grade()), ("full", _timed(0.5)))
    bad = candidate("c2", fast, ("correctness", make_grade(status=GradeStatus.FAILED_TESTS)))
    run = write_run(tmp_path / "runs", repo, sha, [*good, *bad])
    out = tmp_path / "pairs.jsonl"

    done = optimizer(run, "--out", out)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"exported 1 pair from 1 directory to {out} (left out: 1 incorrect)"
    )
    [line] = out.read_text().splitlines()
    pair = Pair.model_validate_json(line)
    assert pair.slow == {"calc.py": SLOW} and pair.fast == {"calc.py": FAST}
    assert list(json.loads(line))[:4] == ["v", "id", "source", "dir"]

    done = optimizer(run, "--out", out, "--min-speedup", "3")
    assert done.returncode == 1 and out.read_text() == ""
    assert "exported 0 pairs" in done.stdout and "1 below --min-speedup" in done.stdout


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda t: [t / "nope", "--out", t / "p.jsonl"], "does not exist"),
        (lambda t: [t, "--out", t / "p.jsonl"], "neither a run directory"),
        (lambda t: [t, "--out", t / "no" / "p.jsonl"], "does not exist"),
        (lambda t: [t, "--out", t / "p.jsonl", "--min-speedup", "0"], "not a positive"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(tmp_path, make_args, message):
    (tmp_path / "empty").mkdir()
    done = optimizer(*make_args(tmp_path / "empty"))
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in done.stderr and not (tmp_path / "empty" / "p.jsonl").exists()
