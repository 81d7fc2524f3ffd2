"""optimizer.evaluate_summary: scores of small record sets, each number computed by hand."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import ValidationError

from optimizer.evaluate_records import Reference, SampleRecord
from optimizer.evaluate_summary import ONE_GROUP, EvalSummary, Score, summarize
from optimizer.results import PerTestTiming, SampleResult


def ref(task: str, speedup: float | None = None, status: str = "ok", **kw: Any) -> Reference:
    return Reference(task_id=task, metric="wall", status=status, speedup=speedup, **kw)


def rec(
    task: str,
    sample: int = 0,
    *,
    agent: str = "llm",
    model: str | None = None,
    correct: bool = True,
    speedup: float | None = None,
    verdict: str | None = None,
    status: str | None = None,
    **kw: Any,
) -> SampleRecord:
    if correct and verdict is None and speedup is not None:
        verdict = "faster" if speedup > 1 else "same"
    result = SampleResult(
        task_id=task,
        sample=sample,
        agent=agent,
        model=model,
        status=status or ("ok" if correct else "failed_tests"),
        correct=correct,
        speedup=speedup,
        verdict=verdict,
        **kw,
    )
    return SampleRecord(result=result)


def curve(summary: EvalSummary, name: str, group: int = 0) -> list[float]:
    return [p.value for p in summary.groups[group].curves[name]]


def test_sr_harmonic_and_geometric_means_and_the_fractions_by_hand():
    refs = {t: ref(t, e) for t, e in [("t1", 2.0), ("t2", 10.0), ("t3", 4.0), ("t4", 1.25)]}
    refs["t5"] = ref("t5", 1.1)
    records = [
        rec("t1", speedup=4.0),  # SR 2.0, faster
        rec("t2", correct=False),  # incorrect: speedup 1.0, SR 1/10
        rec("t3", speedup=1.0, verdict="same"),  # SR 0.25, correct but not faster
        rec("t4", speedup=1.25, verdict="faster"),  # SR 1.0
        # SR 1.0 and a speedup above 1, but the judge could not tell it from the base: not
        # faster (aggregate_sr's own speedup <= 1 rule would count it faster)
        rec("t5", speedup=1.1, verdict="inconclusive"),
    ]
    s = summarize(records, refs)
    (g,) = s.groups
    sc = g.scores
    assert sc["sr_hmean"].value == pytest.approx(5 / (1 / 2 + 1 / 0.1 + 1 / 0.25 + 1 + 1))
    assert sc["sr_gmean"].value == pytest.approx((2 * 0.1 * 0.25 * 1 * 1) ** (1 / 5))
    assert sc["sr_hmean"].value < sc["sr_gmean"].value  # the harmonic mean is pulled by t2
    assert sc["frac_sr_ge_0.95"].value == pytest.approx(3 / 5)
    assert sc["frac_incorrect"].value == pytest.approx(1 / 5)
    assert sc["frac_correct_not_faster"].value == pytest.approx(2 / 5)
    assert sc["pass@1"].value == pytest.approx(4 / 5)
    assert (g.tasks, g.samples, g.k, g.sr_tasks, g.correct, g.faster) == (5, 5, 1, 5, 4, 2)
    # one run: no noise; one group: no signal, and the summary says what would give one
    assert sc["sr_hmean"].noise is None and sc["sr_hmean"].noise_note == "k < 3"
    assert sc["sr_hmean"].snr is None and sc["sr_hmean"].snr_note == ONE_GROUP
    assert any(ONE_GROUP in n for n in s.notes)
    # the per-task cells: the best correct candidate and its SR
    cells = {t.task_id: t.cells[0] for t in s.tasks}
    assert cells["t1"].best_speedup == 4.0 and cells["t1"].sr == pytest.approx(2.0)
    assert cells["t2"].best_speedup is None and cells["t2"].sr == pytest.approx(0.1)
    assert cells["t3"].statuses == {"ok": 1} and cells["t2"].statuses == {"failed_tests": 1}


def test_pass_at_k_curve_and_a_task_without_an_expert_counted_in_pass_at_k_only():
    # task A: 1 correct of 3 (expert 2x); task B: 3 of 3, but it has no expert
    refs = {
        "A": ref("A", 2.0, ci=(1.9, 2.1)),
        "B": ref("B", None, status="none", reason="no expert"),
    }
    records = [
        rec("A", 0, correct=False),
        rec("A", 1, speedup=3.0, speedup_ci=(2.8, 3.3)),
        rec("A", 2, correct=False),
        *(rec("B", j, speedup=1.5) for j in range(3)),
    ]
    s = summarize(records, refs)
    (g,) = s.groups
    # pass@1 = mean(1/3, 1); pass@2 = mean(1 - C(2,2)/C(3,2), 1) = mean(2/3, 1); pass@3 = 1
    assert curve(s, "pass@k") == pytest.approx([2 / 3, 5 / 6, 1.0])
    assert [p.k for p in g.curves["pass@k"]] == [1, 2, 3]
    # per run: run j is the j-th sample of every task
    pass1 = g.scores["pass@1"]
    assert pass1.runs == pytest.approx([1 / 2, 1.0, 1 / 2])
    assert pass1.value == pytest.approx(2 / 3)
    assert pass1.noise == pytest.approx(math.sqrt(1 / 12))  # SD of (1/2, 1, 1/2), ddof=1
    # SR is over task A only: SR 1.5 in run 1, 1/2 in runs 0 and 2
    assert g.sr_tasks == 1 and g.tasks == 2
    assert g.scores["sr_hmean"].runs == pytest.approx([0.5, 1.5, 0.5])
    assert g.scores["sr_hmean"].value == pytest.approx(2.5 / 3)
    assert [(e.task_id, e.reason) for e in s.sr_excluded] == [("B", "no expert")]
    # best of k SR: the harmonic mean over A alone of the best of the first k samples
    assert curve(s, "sr@k") == pytest.approx([0.5, 1.5, 1.5])
    rows = {t.task_id: t for t in s.tasks}
    assert rows["A"].sr_scored and not rows["B"].sr_scored
    assert rows["A"].cells[0].best_ci == (2.8, 3.3) and rows["A"].expert_ci == (1.9, 2.1)
    assert rows["A"].cells[0].srs == pytest.approx([0.5, 1.5, 0.5])
    assert rows["B"].cells[0].sr is None and rows["B"].cells[0].srs == []


def test_cost_of_pass_and_tokens_per_verified_speedup_and_the_infinite_case():
    refs = {"a": ref("a", 2.0), "b": ref("b", 2.0)}
    tokens = {"prompt_tokens": 100, "completion_tokens": 10}
    records = [
        rec("a", 0, speedup=2.0, cost_usd=0.1, **tokens),  # the only verified speedup
        rec("a", 1, speedup=1.0, verdict="same", cost_usd=0.2, **tokens),  # correct, not faster
        rec("b", 0, correct=False, cost_usd=0.3, **tokens),
        rec("b", 1, correct=False, cost_usd=0.4, **tokens),
        *(rec(t, j, agent="noop", speedup=1.0, cost_usd=0.0) for t in "ab" for j in range(2)),
    ]
    s = summarize(records, refs)
    llm = next(g for g in s.groups if g.agent == "llm")
    noop = next(g for g in s.groups if g.agent == "noop")
    assert llm.cost_usd == pytest.approx(1.0) and llm.cost_per_sample_usd == pytest.approx(0.25)
    assert llm.tokens == 440 and llm.tokens_per_sample == pytest.approx(110)
    assert llm.faster == 1
    assert llm.scores["cost_of_pass_usd"].value == pytest.approx(1.0 / 1)
    assert llm.scores["tokens_per_pass"].value == pytest.approx(440 / 1)
    # run 0 (samples 0): $0.4 for one speedup; run 1: $0.6 for none, infinite
    assert llm.scores["cost_of_pass_usd"].runs == pytest.approx([0.4, None])
    cells = {t.task_id: next(c for c in t.cells if c.agent == "llm") for t in s.tasks}
    assert cells["a"].cost_usd == pytest.approx(0.15) and cells["b"].cost_usd == pytest.approx(0.35)
    # no verified speedup at all: infinite, which JSON holds as null with a flag
    cop = noop.scores["cost_of_pass_usd"]
    assert cop.value is None and cop.infinite and noop.cost_usd == 0.0
    assert "tokens_per_pass" not in noop.scores  # noop recorded no tokens
    # an infinite score in one group leaves the range across groups undefined
    assert llm.scores["cost_of_pass_usd"].signal is None
    assert llm.scores["cost_of_pass_usd"].snr_note == "infinite in a group: no range"


def test_signal_noise_and_snr_with_two_groups_and_k_3_by_hand():
    refs = {"a": ref("a", 2.0), "b": ref("b", 4.0)}

    def run(agent: str, task: str, j: int, ok: bool) -> SampleRecord:
        return rec(task, j, agent=agent, speedup=4.0 if ok else None, correct=ok)

    # A: run 0 both tasks correct, runs 1 and 2 one of two -> pass@1 runs (1, 1/2, 1/2)
    a = [(("a", "b"), 0), (("a",), 1), (("b",), 2)]
    # B: run 0 none correct, run 1 one, run 2 both -> pass@1 runs (0, 1/2, 1)
    b = [((), 0), (("a",), 1), (("a", "b"), 2)]
    records = [run("A", t, j, t in ok) for ok, j in a for t in "ab"]
    records += [run("B", t, j, t in ok) for ok, j in b for t in "ab"]
    s = summarize(records, refs)
    ga, gb = s.groups
    assert (ga.agent, gb.agent, ga.k, gb.k) == ("A", "B", 3, 3)
    pa, pb = ga.scores["pass@1"], gb.scores["pass@1"]
    assert pa.runs == pytest.approx([1, 0.5, 0.5]) and pb.runs == pytest.approx([0, 0.5, 1])
    assert pa.value == pytest.approx(2 / 3) and pb.value == pytest.approx(1 / 2)
    # noise: SD (ddof=1) of the runs; A: mean 2/3, deviations (1/3, -1/6, -1/6)
    assert pa.noise == pytest.approx(math.sqrt((1 / 9 + 1 / 36 + 1 / 36) / 2))
    assert pb.noise == pytest.approx(0.5)
    # signal: the range of the two means; SNR = signal / each group's noise
    assert pa.signal == pb.signal == pytest.approx(2 / 3 - 1 / 2)
    assert pa.snr == pytest.approx((1 / 6) / math.sqrt(1 / 12))
    assert pb.snr == pytest.approx((1 / 6) / 0.5)
    # SR: a correct sample is 4x; on a (expert 2x) SR 2, on b (expert 4x) SR 1; incorrect
    # 1/2 and 1/4. A's runs: hmean(2, 1), hmean(2, 1/4), hmean(1/2, 1)
    hm = [2 / (1 / 2 + 1), 2 / (1 / 2 + 4), 2 / (2 + 1)]
    assert ga.scores["sr_hmean"].runs == pytest.approx(hm)
    hb = [2 / (2 + 4), 2 / (1 / 2 + 4), 2 / (1 / 2 + 1)]
    assert gb.scores["sr_hmean"].runs == pytest.approx(hb)
    signal = abs(sum(hm) / 3 - sum(hb) / 3)
    assert ga.scores["sr_hmean"].signal == pytest.approx(signal)
    mean = sum(hm) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in hm) / 2)
    assert ga.scores["sr_hmean"].snr == pytest.approx(signal / sd)
    assert s.dispersion.noise.startswith("sample standard deviation (ddof=1)")
    assert "range (max - min)" in s.dispersion.signal
    assert not any(ONE_GROUP in n for n in s.notes)


def test_harness_failures_are_listed_and_left_out_of_every_score():
    refs = {"t": ref("t", 2.0), "u": ref("u", 2.0)}
    records = [
        rec("t", 0, speedup=3.0, cost_usd=0.1),
        rec(
            "t",
            1,
            correct=False,
            status="error",
            fault="harness",
            reason="the API was down",
            cost_usd=5.0,
        ),  # fmt: skip
        rec("t", 2, correct=False, fault="agent", cost_usd=0.1),
        rec("t", 3, speedup=3.0, cost_usd=0.1),
        rec("u", 0, correct=False, status="error", fault="harness", reason="docker died"),
    ]
    s = summarize(records, refs)
    (g,) = s.groups
    # t has 3 scored samples (2 correct); u none: it is out of the scores altogether
    assert (g.samples, g.harness_failed, g.tasks, g.k) == (3, 2, 1, 3)
    assert g.scores["pass@1"].value == pytest.approx(2 / 3)  # 2/4 if the failure counted
    assert curve(s, "pass@k")[0] == pytest.approx(2 / 3)
    assert g.cost_usd == pytest.approx(0.3)  # the failed sample's $5 is not the agent's
    assert g.scores["cost_of_pass_usd"].value == pytest.approx(0.3 / 2)
    assert [(h.task_id, h.sample, h.reason) for h in s.harness_failures] == [
        ("t", 1, "the API was down"),
        ("u", 0, "docker died"),
    ]
    assert any("every sample failed in the harness (u)" in n for n in g.notes)
    cell = next(t for t in s.tasks if t.task_id == "t").cells[0]
    assert (cell.samples, cell.harness_failed, cell.correct) == (3, 1, 2)
    assert cell.statuses == {"failed_tests": 1, "ok": 2}


def test_opt_at_k_from_per_test_times_and_left_out_with_a_note_without_them():
    refs = {"t": ref("t", 1.4), "u": ref("u", 1.4)}
    # base 1s; the candidate 1/1.5 s and the expert 1/1.4 s: opt_commit (1.5 >= 1.2, and
    # expert / patch = 1.5 / 1.4 > 0.95); 1/1.1 s is below GSO's 1.2x
    win = [PerTestTiming(base=1.0, patch=1 / 1.5, expert=1 / 1.4)]
    slow = [PerTestTiming(base=1.0, patch=1 / 1.1, expert=1 / 1.4)]
    records = [
        rec("t", 0, speedup=1.1, per_test=slow),
        rec("t", 1, speedup=1.5, per_test=win),
        rec("u", 0, correct=False),
        rec("u", 1, speedup=1.5, per_test=win),
        rec("t", 0, agent="noop", speedup=1.0),  # correct, but no per-test times
        rec("u", 0, agent="noop", speedup=1.0),
    ]
    s = summarize(records, refs)
    llm, noop = (next(g for g in s.groups if g.agent == a) for a in ("llm", "noop"))
    # opt@1 uses the first run: neither task; opt@2: both
    assert curve(s, "opt@k", s.groups.index(llm)) == pytest.approx([0.0, 1.0])
    assert llm.scores["opt@1"].runs == pytest.approx([0.0, 1.0])
    assert "opt@k" not in noop.curves and "opt@1" not in noop.scores
    why = "opt@k left out: task 't' sample 0 has no per_test"
    assert any(n.startswith(why) for n in noop.notes)


def test_eff_and_dps_means_where_the_results_carry_them():
    refs = {"t": ref("t", 2.0), "u": ref("u", 2.0)}
    records = [
        rec("t", 0, speedup=2.0, efficiency=0.8, dps=80.0, dps_norm=75.0),
        rec("u", 0, correct=False),  # no efficiency or DPS: an incorrect sample scores 0
    ]
    s = summarize(records, refs)
    sc = s.groups[0].scores
    assert sc["eff@1"].value == pytest.approx(0.4) and curve(s, "eff@k") == pytest.approx([0.4])
    assert sc["dps"].value == pytest.approx(40.0) and sc["dps_norm"].value == pytest.approx(37.5)
    assert "fast_1" not in sc  # no KernelBench reference times here


def test_the_summary_is_json_without_nan_or_infinity():
    refs = {"t": ref("t", 3.0)}
    records = [rec("t", j, agent="noop", speedup=1.0, cost_usd=0.0) for j in range(3)]
    s = summarize(records, refs)
    text = s.model_dump_json(indent=2)

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in summary.json")

    data = json.loads(text, parse_constant=refuse)
    assert data["v"] == 1
    assert data["groups"][0]["scores"]["cost_of_pass_usd"] == {
        "value": None,
        "infinite": True,
        "runs": [None, None, None],
        "noise": None,
        "noise_note": "infinite in a run (no verified speedup there)",
        "signal": None,
        "snr": None,
        "snr_note": ONE_GROUP,
    }
    assert EvalSummary.model_validate_json(text) == s
    with pytest.raises(ValidationError):
        Score(value=math.nan, runs=[])
    with pytest.raises(ValidationError):
        Score(value=1.0, runs=[math.inf])


def test_an_unusable_expert_is_left_out_of_sr_with_why():
    refs = {
        "bad": ref("bad", None, status="failed_tests", reason="a test fails"),
        "ok": ref("ok", 2.0),
    }
    records = [rec("bad", speedup=2.0), rec("ok", speedup=2.0), rec("missing", speedup=2.0)]
    s = summarize(records, refs)
    assert {e.task_id: e.reason for e in s.sr_excluded} == {
        "bad": "the expert did not grade ok (failed_tests: a test fails)",
        "missing": "no reference recorded",
    }
    g = s.groups[0]
    assert g.sr_tasks == 1 and g.scores["sr_hmean"].value == pytest.approx(1.0)
    assert g.scores["pass@1"].value == pytest.approx(1.0) and g.tasks == 3
    assert {t.task_id: t.expert_status for t in s.tasks} == {
        "bad": "failed_tests",
        "missing": "missing",
        "ok": "ok",
    }


def test_kernel_scores_fast_p_against_eager_and_compile_and_perf_at_1_by_hand():
    from optimizer.results import RefTimes

    refs = {
        "k1": ref("k1", 2.0, kernel_time_s=1.0),  # the expert kernel: 1 s
        "k2": ref("k2", 3.0, kernel_time_s=2.0),
    }
    records = [
        # eager/kernel 4.0 (fast_2 yes), compile/kernel 1.5 (fast_1 only); expert/kernel 2.0
        rec(
            "k1",
            speedup=4.0,
            candidate_time_s=0.5,
            ref_times=RefTimes(t_ref=2.0, t_ref_compile=0.75),
        ),  # fmt: skip
        rec("k2", correct=False),  # counts in N, and 0 in Perf@1
    ]
    sc = summarize(records, refs).groups[0].scores
    assert sc["fast_0"].value == pytest.approx(0.5)  # the correctness rate
    assert sc["fast_1"].value == pytest.approx(0.5) and sc["fast_2"].value == pytest.approx(0.5)
    assert sc["fast_1_compile"].value == pytest.approx(0.5)
    assert sc["fast_2_compile"].value == pytest.approx(0.0)
    assert sc["perf@1"].value == pytest.approx((1.0 / 0.5 + 0.0) / 2)
