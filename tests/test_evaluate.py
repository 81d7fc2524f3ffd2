"""`optimizer evaluate` end to end: the real CLI in a subprocess, the real judge in the local
sandbox, instruction counts (deterministic, so SR is exact however loaded the machine is),
the evaluation directory on disk, resume after a kill, Ray, and the llm agent against a
scripted chat-completions server over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optimizer import scoring
from optimizer.evaluate_records import EvalDir, SampleRecord
from optimizer.results import load_results
from tasks.grade import GradeStatus
from tests.chat_server import ScriptedServer, call, reply
from tests.evaluate_suite import TASKS, hardcoded, make_suite, unified


def optimizer(*args: str, timeout: float = 900, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {**os.environ, "OPENAI_API_KEY": "", "OPTIMIZER_API_KEY": "", "COLUMNS": "200",
           **(env or {})}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "optimizer", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)  # fmt: skip


def evaluate(suite: Path, out: Path, *args: str, **kw) -> subprocess.CompletedProcess[str]:
    return optimizer("evaluate", "--suite", str(suite), "--sandbox", "local", "--out", str(out),
                     *args, **kw)  # fmt: skip


def sr(r) -> float:
    return r.resolved_speedup() / r.resolved_expert_speedup()


def sr_interval(r) -> tuple[float, float]:
    """SR's 95% interval (the product's formula), widened by the counts' repeat floor:
    instruction counts repeat to about 1e-6 from process to process, so an interval that
    collapsed to a point is widened by 1e-5."""
    lo, hi = scoring.sr_interval(r.speedup, r.speedup_ci, r.expert_speedup, r.expert_speedup_ci)
    return lo * (1 - 1e-5), hi * (1 + 1e-5)


def by_agent(out: Path) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    for r in load_results(out / "results.jsonl"):
        found.setdefault(r.agent, {})[f"{r.task_id}#{r.sample}"] = r
    return found


@pytest.fixture(scope="module")
def oracle_and_noop(tmp_path_factory) -> Path:
    """One directory evaluated by the oracle, then by noop (sharing the expert references)."""
    root = tmp_path_factory.mktemp("evaluate")
    suite, out = make_suite(root / "suite"), root / "out"
    for agent in ("oracle", "noop"):
        done = evaluate(suite, out, "--agent", agent)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
    return out


def test_oracle_scores_sr_1_within_its_interval_on_every_task(oracle_and_noop):
    results = by_agent(oracle_and_noop)["oracle"]
    assert set(results) == {"evens#0", "squares#0"}
    for r in results.values():
        assert r.status == "ok" and r.correct and r.verdict == "faster", r
        assert r.expert_speedup > 1.5  # the tasks are worth optimizing
        lo, hi = sr_interval(r)
        assert lo <= 1.0 <= hi, (r.task_id, sr(r), lo, hi)
        assert abs(sr(r) - 1) < 1e-3, (r.task_id, sr(r))  # instruction counts: near exact


def test_noop_scores_the_floor_one_over_the_expert(oracle_and_noop):
    results = by_agent(oracle_and_noop)["noop"]
    for r in results.values():
        assert r.correct and r.speedup == 1.0
        assert sr(r) == pytest.approx(1 / r.expert_speedup, rel=1e-12)
    # the expert was measured once per task, and both agents divide by the same number
    refs = EvalDir(oracle_and_noop).references()
    assert sorted(refs) == ["evens", "squares"]
    lines = (oracle_and_noop / "references.jsonl").read_text().splitlines()
    assert len(lines) == 2
    oracle = by_agent(oracle_and_noop)["oracle"]
    for key, r in results.items():
        assert r.expert_speedup == oracle[key].expert_speedup == refs[r.task_id].speedup


def test_the_results_file_is_what_optimizer_score_reads(oracle_and_noop, tmp_path):
    scored = tmp_path / "sr.json"
    done = optimizer("score", str(oracle_and_noop / "results.jsonl"), "--metric", "sr",
                     "--json", str(scored))  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {row["agent"]: row for row in json.loads(scored.read_text())["rows"]}
    assert set(rows) == {"oracle", "noop"}
    for name in ("summary.json", "report.md", "report.html"):
        assert (oracle_and_noop / name).stat().st_size > 200, name
    summary = json.loads((oracle_and_noop / "summary.json").read_text())
    assert summary["v"] == 1
    text = json.dumps(summary)
    assert "oracle" in text and "noop" in text


def test_predictions_score_expert_broken_and_exploit(tmp_path):
    suite = make_suite(tmp_path / "suite", ids=("evens", "squares", "triangles"))
    slow, fast = TASKS["evens"][0], TASKS["evens"][1]
    broken = unified("main.py", slow.replace("count = 0", "count = 1"), fast)  # wrong context
    predictions = tmp_path / "preds.jsonl"
    rows = [
        {"instance_id": "squares", "model_name_or_path": "m1",
         "model_patch": (suite / "squares" / "expert.patch").read_text()},
        {"instance_id": "evens", "model_name_or_path": "m1", "model_patch": broken},
        {"instance_id": "triangles", "model_name_or_path": "m1",
         "model_patch": hardcoded("triangles")},
        {"instance_id": "not-a-task", "model_name_or_path": "m1", "model_patch": ""},
    ]  # fmt: skip
    predictions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    done = evaluate(suite, out, "--agent", "predictions", "--predictions", str(predictions))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not-a-task" in done.stdout  # named, not silently dropped
    results = by_agent(out)["predictions"]
    squares, evens, triangles = (results[f"{t}#0"] for t in ("squares", "evens", "triangles"))
    assert squares.model == "m1" and squares.correct and abs(sr(squares) - 1) < 1e-3
    assert evens.status == "failed_apply" and not evens.correct and evens.fault == "agent"
    assert triangles.status == "failed_equivalence" and not triangles.correct
    assert "hidden check" in (triangles.reason or "")  # named as hidden, never shown
    for r in (evens, triangles):  # incorrect: speedup 1.0, so SR is the floor
        assert sr_floor(r) == pytest.approx(1 / r.expert_speedup)


def sr_floor(r) -> float:
    from optimizer.scoring import speedup_ratio

    return speedup_ratio(r.resolved_speedup(), r.expert_speedup, r.correct)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


def test_killed_halfway_then_rerun_finishes_without_redoing(tmp_path):
    suite, out = make_suite(tmp_path / "suite"), tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "optimizer",
        "evaluate",
        "--suite",
        str(suite),
        "--agent",
        "oracle",
        "-k",
        "3",
        "--sandbox",
        "local",
        "--out",
        str(out),
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while len(_lines(out / "samples.jsonl")) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    before = _lines(out / "samples.jsonl")
    assert 2 <= len(before) < 6, before
    done = evaluate(suite, out, "--agent", "oracle", "-k", "3", "--workers", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(before)} sample(s) already recorded" in done.stdout
    after = _lines(out / "samples.jsonl")
    assert after[: len(before)] == before  # nothing rewritten
    keys = [SampleRecord.model_validate_json(line).key for line in after]
    assert len(keys) == len(set(keys)) == 6  # every sample once: none redone
    assert len(_lines(out / "references.jsonl")) == 2
    summary = json.loads((out / "summary.json").read_text())
    (group,) = summary["groups"]
    for name in ("sr_hmean", "pass@1"):  # k = 3: every score has its run-to-run noise
        score = group["scores"][name]
        assert len(score["runs"]) == 3 and score["noise"] is not None, score
        assert score["snr"] is None and "2 agents" in score["snr_note"]  # one agent here
    workers = {SampleRecord.model_validate_json(line).worker for line in after}
    assert all("cpus" in w for w in workers), workers  # each pool worker pinned to its own

    # --retry-failed redoes only what failed by the harness's fault
    rec = SampleRecord.model_validate_json(after[0])
    failed = rec.result.model_copy(
        update={"status": GradeStatus.ERROR, "correct": False, "fault": "harness",
                "reason": "the harness failed: test"}
    )  # fmt: skip
    EvalDir(out).append(SampleRecord(result=failed))
    again = evaluate(suite, out, "--agent", "oracle", "-k", "3")
    assert again.returncode == 1, again.stdout  # still recorded as the harness's failure
    assert "--retry-failed" in again.stdout and "0 job(s) to run" in again.stdout
    retried = evaluate(suite, out, "--agent", "oracle", "-k", "3", "--retry-failed")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "1 job(s) to run" in retried.stdout
    latest = EvalDir(out).samples()[rec.key]
    assert latest.result.correct and latest.result.fault is None


def test_ray_gives_the_same_outcomes_as_local(oracle_and_noop, tmp_path):
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("ray is not installed (pip install -e '.[ray]')")
    suite = make_suite(tmp_path / "suite")
    out = tmp_path / "out"
    done = evaluate(suite, out, "--agent", "oracle", "--executor", "ray", "--workers", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    local, remote = by_agent(oracle_and_noop)["oracle"], by_agent(out)["oracle"]
    assert set(local) == set(remote)
    for key, r in remote.items():
        assert (r.status, r.correct, r.verdict) == (local[key].status, local[key].correct,
                                                    local[key].verdict)  # fmt: skip
        assert r.speedup == pytest.approx(local[key].speedup, rel=1e-3)  # counts, not clocks
        assert abs(sr(r) - 1) < 1e-3


def test_the_llm_agent_is_the_run_loop_with_its_cost_recorded(tmp_path):
    suite = make_suite(tmp_path / "suite", ids=("squares",))
    slow, fast = TASKS["squares"][0], TASKS["squares"][1]
    edit = call("edit", path="main.py", search=slow.strip(), replace=fast.strip())
    script = [reply("editing", [edit]), reply("done", [call("submit", summary="closed form")])]
    out = tmp_path / "out"
    with ScriptedServer(script) as srv:
        done = evaluate(suite, out, "--agent", "llm", "--model", "scripted-model",
                        "--base-url", srv.base_url, "--max-steps", "10")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (r,) = load_results(out / "results.jsonl")
    assert r.agent == "llm" and r.model == "scripted-model"
    assert r.correct and r.verdict == "faster" and abs(sr(r) - 1) < 1e-3, r
    assert r.prompt_tokens == 200 and r.completion_tokens == 40  # two replies of (100, 20)
    (rec,) = EvalDir(out).samples().values()
    assert rec.run_dir and (Path(rec.run_dir) / "events.jsonl").is_file()
    assert "(n - 1) * n" in rec.patch


def test_a_model_server_that_is_down_is_the_harness_fault(tmp_path):
    suite = make_suite(tmp_path / "suite", ids=("squares",))
    out = tmp_path / "out"
    done = evaluate(suite, out, "--agent", "llm", "--model", "m", "--base-url",
                    "http://127.0.0.1:9/v1", "--max-steps", "3", "--retries", "0")  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    (r,) = load_results(out / "results.jsonl")
    assert r.fault == "harness" and not r.correct, r
    assert "--retry-failed" in done.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["--agent", "nobody"], ["unknown agent", "oracle"]),
        (["--agent", "oracle", "-k", "0"], ["-k 0", "1 or more"]),
        (["--agent", "oracle", "--workers", "-1"], ["--workers -1"]),
        (["--agent", "oracle", "--executor", "spark"], ["unknown executor"]),
        (["--agent", "oracle", "--ray-address", "x:1"], ["--executor ray"]),
        (["--agent", "predictions"], ["--predictions FILE"]),
        (["--agent", "predictions", "--predictions", "/nonexistent.jsonl"], ["does not exist"]),
        (["--agent", "llm", "--max-cost", "-1"], ["--max-cost -1", "negative"]),
        (["--agent", "noop", "--executor", "ray", "--ray-address", "127.0.0.1:1"], ["Ray"]),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, words):
    suite = make_suite(tmp_path / "suite", ids=("squares",))
    done = evaluate(suite, tmp_path / "out", *args, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_a_malformed_predictions_line_names_the_line(tmp_path):
    suite = make_suite(tmp_path / "suite", ids=("squares",))
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"instance_id": "squares", "model_patch": ""}\n{"instance_id": 3}\n')
    done = evaluate(suite, tmp_path / "out", "--agent", "predictions", "--predictions",
                    str(preds), timeout=120)  # fmt: skip
    assert done.returncode == 2 and "line 2" in done.stderr and "instance_id" in done.stderr
    assert not (tmp_path / "out" / "samples.jsonl").exists()


def test_another_suite_into_the_same_out_is_refused(oracle_and_noop, tmp_path):
    suite = make_suite(tmp_path / "suite", ids=("squares",))
    done = evaluate(suite, oracle_and_noop, "--agent", "noop", timeout=120)
    assert done.returncode == 2 and "--suite" in done.stderr, done.stderr


@pytest.mark.docker
def test_oracle_in_the_docker_sandbox(docker_image, tmp_path):
    """The default sandbox: the same exact SR, each sample graded in containers."""
    suite, out = make_suite(tmp_path / "suite", ids=("squares",)), tmp_path / "out"
    done = optimizer("evaluate", "--suite", str(suite), "--agent", "oracle", "--sandbox",
                     "docker", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (r,) = load_results(out / "results.jsonl")
    assert r.correct and r.verdict == "faster" and abs(sr(r) - 1) < 1e-3, r
