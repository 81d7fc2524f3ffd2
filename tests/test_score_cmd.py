"""Tests for the results file (optimizer.results) and the `optimizer score` command."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from optimizer.cli import app
from optimizer.errors import UserError
from optimizer.results import SampleResult, load_results, write_results

REPO = Path(__file__).resolve().parents[1]


def _line(task: str, sample: int, **fields: Any) -> dict[str, Any]:
    ok = fields.pop("ok", True)
    base = {
        "task_id": task,
        "sample": sample,
        "agent": "agent-x",
        "status": "ok" if ok else "failed_tests",
        "correct": ok,
    }
    return {**base, **fields}


# Three tasks, two samples each. Hand-computed expectations are in each test below.
RECORDS: list[dict[str, Any]] = [
    _line(
        "a",
        0,
        speedup=2.0,
        expert_speedup=4.0,
        efficiency=0.8,
        per_test=[{"base": 2.0, "patch": 1.0, "expert": 1.0}],
        ref_times={"t_ref": 2.0, "t_ref_compile": 1.5},
        candidate_time_s=1.0,
    ),
    _line("a", 1, ok=False, expert_speedup=4.0),
    _line(
        "b",
        0,
        speedup=0.9,
        expert_speedup=1.5,
        efficiency=1.2,
        per_test=[{"base": 1.0, "patch": 1.1, "expert": 1.0}],
        ref_times={"t_ref": 1.0, "t_ref_compile": 0.5},
        candidate_time_s=1.1,
    ),
    _line(
        "b",
        1,
        speedup=1.5,
        expert_speedup=1.5,
        efficiency=0.5,
        per_test=[{"base": 1.5, "patch": 1.0, "expert": 1.0}],
        ref_times={"t_ref": 1.5, "t_ref_compile": 0.5},
        candidate_time_s=1.0,
    ),
    # task c: both attempts fail; expert speedup from the times: 2.0 / 1.0 = 2
    {**_line("c", 0, ok=False, base_time_s=2.0, expert_time_s=1.0), "status": "timeout"},
    {**_line("c", 1, ok=False, base_time_s=2.0, expert_time_s=1.0), "status": "error"},
]


def _write(path: Path, records: list[dict[str, Any]] | list[str]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def results_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "results.jsonl", RECORDS)


def _score(results: Path, tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    out = tmp_path / "score.json"
    result = CliRunner().invoke(app, ["score", str(results), *args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["n_tasks"] == 3 and data["n_results"] == 6
    assert data["metric"] in result.output  # the table was printed
    return data["rows"]


def _by_k(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {row["k"]: row for row in rows}


# --- each metric through the CLI ---------------------------------------------------------------


def test_score_passk(results_file: Path, tmp_path: Path) -> None:
    # a: n=2, c=1 -> pass@1 = 0.5, pass@2 = 1; b: c=2 -> 1, 1; c: c=0 -> 0, 0
    rows = _by_k(_score(results_file, tmp_path, "--metric", "passk", "-k", "1,2"))
    assert rows[1]["pass@k"] == pytest.approx(1.5 / 3)
    assert rows[2]["pass@k"] == pytest.approx(2 / 3)
    assert rows[1]["agent"] == "agent-x" and rows[1]["model"] is None


def test_score_effk(results_file: Path, tmp_path: Path) -> None:
    # a: [0.8, 0 (incorrect)] -> @1 0.4, @2 0.8; b: [1.2, 0.5] -> 0.85, 1.2; c: [0, 0] -> 0, 0
    rows = _by_k(_score(results_file, tmp_path, "--metric", "effk", "-k", "1,2"))
    assert rows[1]["eff@k"] == pytest.approx((0.4 + 0.85) / 3)
    assert rows[2]["eff@k"] == pytest.approx((0.8 + 1.2) / 3)
    assert rows[2]["pass@k"] == pytest.approx(2 / 3)


def test_score_sr(results_file: Path, tmp_path: Path) -> None:
    rows = _by_k(_score(results_file, tmp_path, "--metric", "sr", "-k", "1,2"))
    # k=1 (first sample): a 2/4 = 0.5; b 0.9/1.5 = 0.6 (correct, not faster); c failed: 1/2
    one = rows[1]
    assert one["sr_harmonic_mean"] == pytest.approx(3 / (2 + 1 / 0.6 + 2))
    assert one["sr_geometric_mean"] == pytest.approx((0.5 * 0.6 * 0.5) ** (1 / 3))
    assert one["frac_sr_ge_0.95"] == 0.0
    assert one["frac_correct_not_faster"] == pytest.approx(1 / 3)
    assert one["frac_incorrect"] == pytest.approx(1 / 3)
    # k=2 (best correct of two): a 0.5; b 1.5/1.5 = 1.0; c 0.5
    two = rows[2]
    assert two["sr_harmonic_mean"] == pytest.approx(3 / (2 + 1 + 2))
    assert two["sr_geometric_mean"] == pytest.approx(0.25 ** (1 / 3))
    assert two["frac_sr_ge_0.95"] == pytest.approx(1 / 3)
    assert two["frac_correct_not_faster"] == 0.0


def test_score_optk(results_file: Path, tmp_path: Path) -> None:
    # a run 0: gm 2, hm expert/patch 1 -> success. b run 0: slower; b run 1: gm 1.5, hm 1 -> ok.
    rows = _by_k(_score(results_file, tmp_path, "--metric", "optk", "-k", "1,2"))
    assert rows[1]["opt@k"] == pytest.approx(1 / 3)
    assert rows[2]["opt@k"] == pytest.approx(2 / 3)
    assert rows[2]["opt_base@k"] == pytest.approx(2 / 3)


def test_score_fastp(results_file: Path, tmp_path: Path) -> None:
    rows = _score(results_file, tmp_path, "--metric", "fastp", "-k", "1,2", "-p", "0,1,2")
    table = {(r["k"], r["p"]): r for r in rows}
    # k=1: a eager 2/1 = 2.0 (compile 1.5), b 1/1.1 = 0.909 (compile 0.4545), c failed; N = 3
    assert table[1, 0.0]["fast_p_eager"] == pytest.approx(2 / 3)
    assert table[1, 1.0]["fast_p_eager"] == pytest.approx(1 / 3)
    assert table[1, 2.0]["fast_p_eager"] == 0.0  # exactly 2.0 is not > 2
    assert table[1, 1.0]["fast_p_compile"] == pytest.approx(1 / 3)
    assert table[1, 0.0]["geomean_speedup_eager"] == pytest.approx(math.sqrt(2 / 1.1))
    assert table[1, 0.0]["geomean_speedup_compile"] == pytest.approx(math.sqrt(1.5 * 0.5 / 1.1))
    # k=2: b's best is sample 1, eager 1.5/1 = 1.5, compile 0.5/1 = 0.5
    assert table[2, 1.0]["fast_p_eager"] == pytest.approx(2 / 3)
    assert table[2, 1.0]["fast_p_compile"] == pytest.approx(1 / 3)
    assert table[2, 0.0]["geomean_speedup_eager"] == pytest.approx(math.sqrt(3.0))


def test_score_pie(results_file: Path, tmp_path: Path) -> None:
    # k=1: a 2.0, b max(1, 0.9) = 1, c 1 -> 4/3; %Opt 1/3; %Correct 2/3
    # k=2: a 2.0, b 1.5, c 1 -> 1.5; %Opt 2/3; %Correct 2/3
    rows = _by_k(_score(results_file, tmp_path, "--metric", "pie", "-k", "1,2"))
    assert rows[1]["speedup_best@k"] == pytest.approx(4 / 3)
    assert rows[1]["frac_opt"] == pytest.approx(1 / 3)
    assert rows[1]["frac_correct"] == pytest.approx(2 / 3)
    assert rows[2]["speedup_best@k"] == pytest.approx(1.5)
    assert rows[2]["frac_opt"] == pytest.approx(2 / 3)


def test_score_groups_by_agent(tmp_path: Path) -> None:
    records = [
        _line("a", 0),
        _line("a", 1, ok=False),
        {**_line("a", 0, ok=False), "agent": "agent-y"},
        {**_line("a", 1, ok=False), "agent": "agent-y"},
    ]
    path = _write(tmp_path / "two.jsonl", records)
    out = tmp_path / "o.json"
    result = CliRunner().invoke(app, ["score", str(path), "--metric", "passk", "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = {row["agent"]: row["pass@k"] for row in json.loads(out.read_text())["rows"]}
    assert rows == {"agent-x": pytest.approx(0.5), "agent-y": 0.0}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


# --- errors: one line on stderr, exit code 2, no traceback -------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optimizer", "score", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("bad_line", "needles"),
    [
        (
            json.dumps(_line("b", 0, speedup="fast")),
            ["line 3", "field 'speedup'", "valid number"],
        ),
        ('{"task_id": "b", "sample": 0,', ["line 3", "not valid JSON"]),
        (
            json.dumps(_line("b", 0, per_test=[{"base": 1.0}])),
            ["line 3", "field 'per_test.0.patch'", "required"],
        ),
        (json.dumps({**_line("b", 0), "correct": False}), ["line 3", "field 'correct'"]),
        (json.dumps(_line("b", 0, speedupp=2.0)), ["line 3", "field 'speedupp'"]),
        ("[1, 2]", ["line 3", "JSON object"]),
        (json.dumps(_line("a", 0)), ["line 3", "already appears on line 1"]),
    ],
)
def test_malformed_results_line(tmp_path: Path, bad_line: str, needles: list[str]) -> None:
    path = _write(tmp_path / "results.jsonl", [RECORDS[0], RECORDS[1], bad_line])
    line = _assert_one_line_error(_cli(str(path), "--metric", "passk"), *needles)
    assert line.startswith("error:") and "results.jsonl" in line and "Fix:" in line


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--metric", "speed"], ["unknown metric 'speed'"]),
        (["--metric", "passk", "-k", "3"], ["k=3", "2 samples"]),
        (["--metric", "passk", "-k", "one"], ["-k 'one'"]),
        (["--metric", "optk", "-k", "3"], ["k=3", "2 runs"]),
    ],
)
def test_bad_flags(results_file: Path, args: list[str], needles: list[str]) -> None:
    _assert_one_line_error(_cli(str(results_file), *args), *needles)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    _assert_one_line_error(_cli(str(tmp_path / "nope.jsonl"), "--metric", "sr"), "does not exist")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    _assert_one_line_error(_cli(str(empty), "--metric", "sr"), "has no results")


def test_metric_needing_a_missing_field(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.jsonl", [_line("a", 0, speedup=2.0)])  # no expert speedup
    _assert_one_line_error(_cli(str(path), "--metric", "sr"), "task 'a' sample 0", "expert_speedup")


# --- the results file itself -------------------------------------------------------------------


def test_results_round_trip(tmp_path: Path, results_file: Path) -> None:
    loaded = load_results(results_file)
    assert [(r.task_id, r.sample) for r in loaded][:3] == [("a", 0), ("a", 1), ("b", 0)]
    assert loaded[4].resolved_expert_speedup() == pytest.approx(2.0)
    assert loaded[0].per_test is not None and loaded[0].per_test[0].expert == 1.0
    copy = tmp_path / "copy.jsonl"
    write_results(copy, loaded)
    assert load_results(copy) == loaded


def test_load_results_rejects_nan_and_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(
        '\n{"task_id": "a", "sample": 0, "agent": "x", "status": "ok", '
        '"correct": true, "speedup": NaN}\n'
    )
    with pytest.raises(UserError, match=r"r\.jsonl line 2: field 'speedup'"):
        load_results(path)


def test_timeout_may_be_correct() -> None:
    # ENAMEL: a timeout at a level >= 1 still counts as correct
    r = SampleResult(task_id="t", sample=0, agent="x", status="timeout", correct=True)
    assert r.correct and r.run_index == 0
