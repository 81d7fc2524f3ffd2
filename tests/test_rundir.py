"""The run directory of `optimizer run` (append-only JSONL) and the reports built from it."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from optimizer import run_report, show_cmd
from optimizer.errors import UserError
from optimizer.rundir import (
    EVENTS,
    CandidateRecord,
    Commit,
    GradeRecord,
    ModelCall,
    Note,
    PatchWritten,
    Record,
    RunDir,
    RunEnded,
    RunStarted,
    RunState,
    ToolCall,
    Winner,
    new_run_id,
    truncate,
)
from tasks.grade import Grade, GradeStatus, Measurement

CHROMIUM = Path("/usr/bin/chromium")

PATCH = """\
diff --git a/spans.py b/spans.py
--- a/spans.py
+++ b/spans.py
@@ -1,6 +1,6 @@
 def merge(spans):
-    out = []
-    for s in sorted(spans):
-        out = out + [s]  # quadratic copy
+    out: list = []
+    for s in sorted(spans):
+        out.append(s)  # </pre><script>alert("x")</script>
     return out
"""


def started(run_id: str = "20261129-163000-ab12", **config: object) -> RunStarted:
    return RunStarted(
        run_id=run_id,
        repo="/home/me/spans",
        base_sha="0123456789abcdef0123456789abcdef01234567",
        task_id="builtin/spans",
        config={"model": "gpt-test", "candidates": 2, "rounds": 1, **config},
        argv=["optimizer", "run", "builtin/spans"],
    )


def call(thread: str, step: int, cost: float = 0.01) -> ModelCall:
    return ModelCall(
        thread=thread,
        step=step,
        request_sha=f"sha-{thread}-{step}",
        reply={"content": f"{thread} step {step}", "tool_calls": []},
        cost_usd=cost,
        tokens=1000,
    )


def graded(
    cid: str,
    stage: str,
    speedup: float | None = None,
    ci: list[float] | None = None,
    status: str = "ok",
    verdict: str | None = "faster",
) -> GradeRecord:
    return GradeRecord(
        candidate=cid,
        stage=stage,  # type: ignore[arg-type]
        status=status,
        correct=status == "ok",
        speedup=speedup,
        ci=ci,
        metric="instructions" if speedup else None,
        verdict=verdict if speedup else None,
        reason="" if status == "ok" else "test_merge failed",
        grade={"status": status},
        elapsed_s=3.5,
    )


def every_record() -> list[Record]:
    """One record of every type, in a plausible order."""
    return [
        started(),
        call("ideas", 0),
        ToolCall(thread="c1", step=0, name="view", arguments={"path": "spans.py"}, observation="x"),
        CandidateRecord(id="c1", idea="append, not copy", patch=PATCH, agent_exit="submitted"),
        graded("c1", "full", 1.8, [1.7, 1.9]),
        Note(kind="hint", text="try a heap"),
        Winner(candidate="c1", patch=PATCH, speedup=1.8, ci=[1.7, 1.9], metric="instructions"),
        Commit(branch="optimizer/spans", sha="f" * 40, repo="/home/me/spans", message="faster"),
        PatchWritten(path="/tmp/winner.patch"),
        RunEnded(reason="finished", committed=True),
    ]


def synthetic_run() -> list[Record]:
    """A run with two candidates, a refinement that wins, and a commit."""
    return [
        started(),
        call("ideas", 0, cost=0.02),
        Note(kind="decision", text="3 ideas; trying 2"),
        *(call("c1", s) for s in range(3)),
        CandidateRecord(
            id="c1",
            idea="Append instead of copying\nthe list each time",
            patch=PATCH,
            agent_exit="submitted",
            steps=3,
            cost_usd=0.03,
        ),  # fmt: skip
        graded("c1", "correctness"),
        graded("c1", "quick", 1.3, [1.2, 1.4]),
        graded("c1", "full", 1.25, [1.15, 1.35]),
        *(call("c2", s) for s in range(2)),
        CandidateRecord(id="c2", idea="use a [red]set[/red]", patch="", agent_exit="max-steps"),
        graded("c2", "correctness", status="failed_tests"),
        *(call("r1-c1", s) for s in range(4)),
        CandidateRecord(
            id="r1-c1",
            parent="c1",
            idea="also skip the sort",
            patch=PATCH,
            agent_exit="submitted",
            steps=4,
            cost_usd=0.04,
        ),  # fmt: skip
        graded("r1-c1", "full", 1.8, [1.7, 1.9]),
        graded("r1-c1", "confirm", 1.82, [1.72, 1.93]),
        Winner(
            candidate="r1-c1",
            patch=PATCH,
            speedup=1.82,
            ci=[1.72, 1.93],
            metric="instructions",
            verdict="faster",
            hunks_before=3,
            hunks_after=1,
            sr=0.91,
            expert_speedup=2.0,
        ),  # fmt: skip
        Commit(branch="optimizer/spans-1", sha="abcdef1234567890" * 2 + "abcdef12", repo="r"),
        RunEnded(reason="finished", committed=True),
    ]


def run_dir_with(tmp_path: Path, records: list[Record]) -> RunDir:
    run = RunDir.create(tmp_path / "runs", "20261129-163000-ab12")
    for record in records:
        run.append(record)
    return run


# --- the log --------------------------------------------------------------------------------


def test_every_record_type_round_trips(tmp_path: Path):
    records = every_record()
    run = run_dir_with(tmp_path, records)
    assert run.records() == records
    assert {r.type for r in records} == {
        "run_started", "model_call", "tool_call", "candidate", "grade", "note", "winner",
        "commit", "patch_written", "run_ended",
    }  # fmt: skip
    lines = (run.path / EVENTS).read_text().splitlines()
    assert len(lines) == len(records)
    assert all(json.loads(line)["v"] == 1 and line.startswith('{"type":') for line in lines)
    assert [g.candidate for g in run.of(GradeRecord)] == ["c1"]


def test_a_line_cut_short_by_a_kill_is_skipped_and_appends_continue_on_a_new_line(
    tmp_path: Path,
):
    run = run_dir_with(tmp_path, [started(), call("c1", 0)])
    whole = call("c1", 1).model_dump_json()
    with open(run.events, "a", encoding="utf-8") as f:
        f.write(whole[: len(whole) // 2])  # the process died mid-write
    scan = run.scan()
    assert len(scan.records) == 2 and scan.damaged == [3]

    resumed = RunDir.open(run.path)
    resumed.append(call("c1", 1))
    resumed.append(call("c1", 2))
    lines = run.events.read_text().split("\n")
    assert lines[2] == whole[: len(whole) // 2] and lines[-1] == ""
    assert [json.loads(line)["step"] for line in lines[3:5]] == [1, 2]
    state = RunState.from_records(resumed.records())
    assert [c.step for c in state.model_calls["c1"]] == [0, 1, 2]


def test_unknown_types_fields_and_newer_versions_are_skipped(tmp_path: Path):
    run = run_dir_with(tmp_path, [started()])
    future = [
        {"type": "telemetry", "v": 1, "t": 1.0, "gpu": "h200"},
        {"type": "note", "v": 2, "t": 1.0, "kind": "warning", "text": "hi", "mood": "calm"},
        {"type": "grade", "v": 3, "t": 1.0, "candidate": "c1", "stage": "warmup"},
        [1, 2, 3],
    ]
    with open(run.events, "a", encoding="utf-8") as f:
        f.writelines(json.dumps(obj) + "\n" for obj in future)
    scan = run.scan()
    assert [r.type for r in scan.records] == ["run_started", "note"]
    assert scan.unknown == [2, 4, 5] and scan.damaged == []


def test_a_complete_but_invalid_known_record_is_a_user_error_naming_the_line(tmp_path: Path):
    run = run_dir_with(tmp_path, [started()])
    with open(run.events, "a", encoding="utf-8") as f:
        f.write(json.dumps({"type": "model_call", "v": 1, "t": 1.0, "thread": "c1"}) + "\n")
    with pytest.raises(UserError, match=r"events.jsonl line 2: model_call record, field 'step'"):
        run.records()


def test_concurrent_appends_from_8_threads_give_intact_lines(tmp_path: Path):
    run = RunDir.create(tmp_path, "concurrent")
    per_thread = 60
    observation = "y" * 3000  # long lines make interleaving visible if it happened

    def worker(n: int) -> None:
        for step in range(per_thread):
            run.append(ToolCall(thread=f"t{n}", step=step, name="run", observation=observation))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    lines = run.events.read_text().splitlines()
    assert len(lines) == 8 * per_thread
    seen = {(obj["thread"], obj["step"]) for obj in map(json.loads, lines)}
    assert seen == {(f"t{n}", s) for n in range(8) for s in range(per_thread)}
    assert run.scan().damaged == []


def test_create_refuses_an_existing_directory(tmp_path: Path):
    RunDir.create(tmp_path, "r1")
    with pytest.raises(UserError, match=r"r1 already exists\. Fix: resume it"):
        RunDir.create(tmp_path, "r1")


def test_open_names_the_path_and_the_fix(tmp_path: Path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "file.txt").write_text("x")
    cases = {
        "missing": "does not exist",
        "plain": "is not a run directory (it has no events.jsonl)",
        "file.txt": "is a file, not a run directory",
    }
    for name, problem in cases.items():
        with pytest.raises(UserError) as info:
            RunDir.open(tmp_path / name)
        assert str(tmp_path / name) in str(info.value) and problem in str(info.value)
        assert "Fix: pass a folder that `optimizer run` made" in str(info.value)
    run = RunDir.create(tmp_path, "ok")
    assert RunDir.open(run.path).run_id == "ok" and run.records() == []


def test_run_ids_sort_by_time_and_differ():
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) > 45  # 4 hex digits of randomness within one second
    assert all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", i) for i in ids)


def test_derived_files_are_written_atomically_beside_the_log(tmp_path: Path):
    run = RunDir.create(tmp_path, "r")
    assert run.write_text("report.md", "# hi\n").read_text() == "# hi\n"
    assert run.write_text("report.md", "# again\n").read_text() == "# again\n"
    for bad in (EVENTS, "../escape.md", "sub/x.md", ""):
        with pytest.raises(ValueError):
            run.write_text(bad, "x")
    assert sorted(p.name for p in run.path.iterdir()) == [EVENTS, "report.md"]


def test_tool_observations_keep_head_and_tail():
    text = "start " + "x" * 20_000 + " Traceback: the error"
    kept = ToolCall(thread="c1", step=0, name="run", observation=text).observation
    assert len(kept) == 8000 and kept.startswith("start ") and kept.endswith("the error")
    assert "characters cut" in kept and truncate("short") == "short"


def test_grade_record_lifts_the_headline_out_of_a_grade():
    m = Measurement(
        verdict="faster", metric="instructions", speedup=1.5, ci=(1.4, 1.6), p_value=0.001,
        base_median_s=0.0, candidate_median_s=0.0, pairs=10, region="total", rule="r",
        workloads=[],
    )  # fmt: skip
    g = Grade(task_id="t", status=GradeStatus.OK, correct=True, measurement=m, elapsed_s=2.0)
    rec = GradeRecord.from_grade("c1", "full", g)
    assert (rec.status, rec.speedup, rec.ci, rec.metric, rec.verdict) == (
        "ok", 1.5, [1.4, 1.6], "instructions", "faster",
    )  # fmt: skip
    assert rec.significant and rec.grade["measurement"]["pairs"] == 10
    bad = Grade(task_id="t", status=GradeStatus.OK, correct=False).fail(
        GradeStatus.FAILED_TESTS, "broke"
    )
    rec = GradeRecord.from_grade("c2", "correctness", bad)
    assert (rec.status, rec.correct, rec.speedup, rec.significant) == (
        "failed_tests", False, None, False,
    )  # fmt: skip


# --- what resume needs ----------------------------------------------------------------------


def test_run_state_from_a_synthetic_run():
    state = RunState.from_records(synthetic_run())
    assert state.started is not None and state.started.task_id == "builtin/spans"
    assert list(state.candidates) == ["c1", "c2", "r1-c1"] == state.order
    assert state.grades[("c1", "quick")].speedup == 1.3
    assert [g.stage for g in state.stages_of("c1")] == ["correctness", "quick", "full"]
    assert state.measured("c1").stage == "full"  # type: ignore[union-attr]
    assert state.last_grade("c2").status == "failed_tests"  # type: ignore[union-attr]
    assert [c.step for c in state.model_calls["r1-c1"]] == [0, 1, 2, 3]
    assert state.total_steps == 10 and state.total_tokens == 10_000
    assert state.total_cost == pytest.approx(0.02 + 9 * 0.01)
    assert state.winner and state.winner.candidate == "r1-c1"
    assert state.commit and state.committed and state.ended and state.ended.reason == "finished"
    assert state.next_step("c2") == 2 and state.next_step("r2-c1") == 0
    assert state.replies()["sha-c1-1"] == {"content": "c1 step 1", "tool_calls": []}
    assert state.resumes == 0 and state.config["model"] == "gpt-test"


def test_run_state_of_a_resumed_run():
    first = [
        started(max_cost=1.0),
        call("c1", 1),
        call("c1", 0),  # logged out of order: the state orders by step
        graded("c1", "correctness"),
        RunEnded(reason="interrupted"),
    ]
    second = [
        started(max_cost=5.0),
        Note(kind="mode", text="resumed"),
        call("c1", 1),  # a step redone after the resume replaces the first one
        call("c1", 2),
        graded("c1", "correctness", status="failed_tests"),
    ]
    state = RunState.from_records(first + second)
    assert state.resumes == 1 and state.config["max_cost"] == 5.0
    assert state.started is first[0]
    assert state.ended is None  # the resume reopened the run and it has not ended again
    assert [c.step for c in state.model_calls["c1"]] == [0, 1, 2] and state.total_steps == 3
    assert state.total_cost == pytest.approx(0.04)  # every call was paid for
    assert state.grades[("c1", "correctness")].status == "failed_tests"
    assert state.next_step("c1") == 3
    ended = RunState.from_records([*first, *second, RunEnded(reason="max-cost")])
    assert ended.ended and ended.ended.reason == "max-cost" and not ended.committed


# --- reports --------------------------------------------------------------------------------


def test_summary_rows_and_best_by_step():
    state = RunState.from_records(synthetic_run())
    rows = {r.id: r for r in run_report.summary_rows(state)}
    assert rows["c1"].idea == "Append instead of copying"
    assert rows["c1"].cells()[5] == "1.25x [1.15, 1.35]" and rows["c1"].stage == "full"
    assert rows["c2"].status == "failed_tests" and rows["c2"].speedup is None
    assert rows["r1-c1"].winner and rows["r1-c1"].parent == "c1"
    assert rows["r1-c1"].cells()[0] == "r1-c1 (winner)"
    # c1's full grade came after 4 steps (ideas + c1's 3; its quicker 1.3x does not count)
    assert run_report.best_by_step(state) == [(4, 1.25), (10, 1.82)]


def test_markdown_has_the_outcome_speedup_table_and_diff():
    text = run_report.markdown(RunState.from_records(synthetic_run()))
    assert "**Outcome:** committed on branch optimizer/spans-1 as abcdef123456." in text
    assert "r1-c1: 1.82x [1.72, 1.93] (instructions, faster); minimized from 3 to 1 hunks" in text
    assert "vs expert: SR 0.91, expert 2.00x" in text and "model: gpt-test" in text
    assert "$0.11, 10,000 tokens, 10 model steps" in text
    assert "| r1-c1 (winner) | c1 | also skip the sort | confirm | ok, faster |" in text
    assert "```diff\n" + PATCH + "```" in text
    assert "| 10 | 1.82x |" in text


def test_markdown_says_why_nothing_was_committed():
    records = [started(), call("c1", 0), RunEnded(reason="no significant winner")]
    text = run_report.markdown(RunState.from_records(records))
    assert "nothing committed: no significant winner" in text
    assert "No significant speedup yet." in text and "No candidates yet." in text
    killed = run_report.markdown(RunState.from_records(records[:2]))
    assert "the run has not ended" in killed


def test_html_escapes_untrusted_text():
    records = synthetic_run()
    records.insert(3, Note(kind="warning", text="<img src=x onerror=alert(1)>"))
    page = run_report.html(RunState.from_records(records))
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert '<span class="add">+        out.append(s)  # &lt;/pre&gt;' in page
    assert '<span class="del">-    out = []</span>' in page
    assert not re.search(r"<[^>]*\s(src|href)\s*=", page)  # self-contained: loads nothing
    assert "stroke-dasharray" in page and "model step" in page


def read_png(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB(A), non-interlaced PNG into a (height, width, channels) array."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    assert header is not None
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    prev = np.zeros(stride, dtype=np.int64)
    rows = []
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int64)
        prev = _unfilter(kind, line, prev, bpp)
        rows.append(prev)
    return np.array(rows, dtype=np.uint8).reshape(height, width, bpp)


def _unfilter(kind: int, line: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    if kind == 0:
        return line
    if kind == 1:
        return line.reshape(-1, bpp).cumsum(axis=0).reshape(-1) & 255
    if kind == 2:
        return (line + prev) & 255
    out = line.tolist()
    up = prev.tolist()
    for i in range(len(out)):
        a = out[i - bpp] if i >= bpp else 0
        c = up[i - bpp] if i >= bpp else 0
        if kind == 3:
            out[i] = (out[i] + (a + up[i]) // 2) & 255
        else:
            p = a + up[i] - c
            pa, pb, pc = abs(p - a), abs(p - up[i]), abs(p - c)
            pred = a if pa <= pb and pa <= pc else up[i] if pb <= pc else c
            out[i] = (out[i] + pred) & 255
    return np.array(out, dtype=np.int64)


def near(pixels: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    """How many pixels are within ``tolerance`` of ``rgb`` on every channel."""
    return int((np.abs(pixels[..., :3].astype(int) - rgb) <= tolerance).all(axis=-1).sum())


def screenshot(page: Path, png: Path, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={png}",
            "--window-size=1200,1600", page.resolve().as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs headless Chromium at /usr/bin/chromium")
def test_the_html_report_renders_with_a_plot_and_a_colored_diff(tmp_path: Path):
    page, png = tmp_path / "report.html", tmp_path / "report.png"
    page.write_text(run_report.html(RunState.from_records(synthetic_run())))
    done = screenshot(page, png, tmp_path / "profile")
    assert png.is_file(), done.stdout + done.stderr
    assert png.stat().st_size > 20_000
    pixels = read_png(png)
    assert pixels.shape[:2] == (1600, 1200)
    colors = np.unique(pixels[..., :3].reshape(-1, 3), axis=0)
    assert len(colors) > 50, "the page rendered as (almost) a single color"
    assert near(pixels, (0x1A, 0x7F, 0x37)) > 100, "no plot line"
    assert near(pixels, (0xDA, 0xFB, 0xE1), 2) > 5000, "no green (added lines, winner row)"
    assert near(pixels, (0xFF, 0xEB, 0xE9), 2) > 5000, "no red background for removed lines"


# --- optimizer show -------------------------------------------------------------------------


def show_app() -> typer.Typer:
    app = typer.Typer()
    show_cmd.register(app)

    @app.callback()
    def _root() -> None:  # a callback keeps `show` a named subcommand, as under `optimizer`
        pass

    return app


def test_show_prints_the_candidates_and_the_outcome(tmp_path: Path):
    run = run_dir_with(tmp_path, synthetic_run())
    runner = CliRunner()
    done = runner.invoke(show_app(), ["show", str(run.path)], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    for text in ("r1-c1 (winner)", "c2", "failed_tests", "1.82x [1.72, 1.93]", "[red]set[/red]"):
        assert text in done.stdout, text
    assert "outcome: committed on branch optimizer/spans-1 as abcdef123456" in done.stdout

    html_file = tmp_path / "report.html"
    args = ["show", str(run.path), "--markdown", "--html", str(html_file)]
    done = runner.invoke(show_app(), args)
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("# optimizer run 20261129-163000-ab12\n")
    assert "```diff" in done.stdout and f"wrote {html_file}" in done.stdout
    assert html_file.read_text().startswith("<!doctype html>")


def test_show_of_a_missing_directory_is_a_one_line_error_with_exit_2(tmp_path: Path):
    missing = tmp_path / "runs" / "nope"
    done = CliRunner().invoke(show_app(), ["show", str(missing)], env={"COLUMNS": "300"})
    assert done.exit_code == 2 and not isinstance(done.exception, UserError)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: run directory ")
    assert str(missing) in lines[0] and "Fix:" in lines[0] and done.stdout == ""
