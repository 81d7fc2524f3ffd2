"""Tests for optimizer.scoring: properties, brute force, and values computed by hand."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.scoring import (
    Generation,
    GsoRun,
    KernelResult,
    LevelRun,
    Outcome,
    PerTestTimes,
    PieProgram,
    SRTask,
    aggregate_sr,
    eff_at_k,
    efficiency_score,
    fast_p,
    geomean_speedup,
    hodges_lehmann,
    opt_at_k,
    opt_base,
    opt_commit,
    pass_at_k,
    pie_metrics,
    speedup_ratio,
)

scores_st = st.lists(
    st.floats(min_value=0.0, max_value=5.0, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=30,
)


# --- eff@k: properties -----------------------------------------------------------------------


@given(scores_st)
def test_eff_at_1_is_the_mean(scores: list[float]) -> None:
    assert eff_at_k(scores, 1) == pytest.approx(sum(scores) / len(scores), rel=1e-9, abs=1e-12)


@given(scores_st)
def test_eff_at_n_is_the_max(scores: list[float]) -> None:
    assert eff_at_k(scores, len(scores)) == max(scores)


@given(st.lists(st.booleans(), min_size=1, max_size=40), st.data())
def test_eff_at_k_with_binary_scores_is_pass_at_k(flags: list[bool], data: st.DataObject) -> None:
    n = len(flags)
    k = data.draw(st.integers(min_value=1, max_value=n))
    expected = pass_at_k(n, sum(flags), k)
    assert eff_at_k([float(f) for f in flags], k) == pytest.approx(expected, abs=1e-12)


@given(scores_st, st.data())
def test_eff_at_k_ignores_the_order(scores: list[float], data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=1, max_value=len(scores)))
    shuffled = data.draw(st.permutations(scores))
    assert eff_at_k(shuffled, k) == pytest.approx(eff_at_k(scores, k), rel=1e-12, abs=1e-12)


@given(scores_st)
def test_eff_at_k_is_monotone_in_k(scores: list[float]) -> None:
    values = [eff_at_k(scores, k) for k in range(1, len(scores) + 1)]
    for lower, higher in itertools.pairwise(values):
        assert lower <= higher + 1e-12
    assert min(scores) - 1e-12 <= values[0] and values[-1] == max(scores)


# --- eff@k: brute force and exact cross-checks ---------------------------------------------


@settings(max_examples=60)
@given(
    st.lists(st.floats(min_value=0.0, max_value=3.0, allow_nan=False), min_size=1, max_size=8),
    st.data(),
)
def test_eff_at_k_matches_brute_force_over_all_subsets(
    scores: list[float], data: st.DataObject
) -> None:
    # eff@k is the expected max of k samples drawn without replacement from the n: average
    # max(subset) over every k-subset.
    k = data.draw(st.integers(min_value=1, max_value=len(scores)))
    subsets = list(itertools.combinations(scores, k))
    brute = sum(max(s) for s in subsets) / len(subsets)
    assert eff_at_k(scores, k) == pytest.approx(brute, rel=1e-9, abs=1e-12)


def test_eff_at_k_matches_the_binomial_formula_exactly_computed() -> None:
    # eff@k = sum_{r=k..n} C(r-1, k-1)/C(n, k) * e_(r), in exact rational arithmetic.
    rng = np.random.default_rng(7)
    scores = [float(x) for x in rng.uniform(0, 2, size=60)]
    ordered = sorted(scores)
    n = len(scores)
    for k in (1, 2, 5, 17, 59, 60):
        exact = sum(
            Fraction(math.comb(r - 1, k - 1), math.comb(n, k)) * Fraction(ordered[r - 1])
            for r in range(k, n + 1)
        )
        assert eff_at_k(scores, k) == pytest.approx(float(exact), rel=1e-10)


def test_eff_at_k_is_stable_at_n_100000() -> None:
    # C(100000, k) overflows a float for k >= 2 already near n = 1030; the recursion must not.
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.0, 1.5, size=100_000)
    for k in (1, 2, 10, 1000, 50_000, 99_999, 100_000):
        value = eff_at_k(scores, k)
        assert math.isfinite(value)
        assert scores.min() <= value <= scores.max()
    assert eff_at_k(scores, 1) == pytest.approx(float(scores.mean()), rel=1e-9)
    assert eff_at_k(scores, 100_000) == float(scores.max())
    # With 0/1 scores it is still pass@k: 30 correct of 100,000, k = 1000.
    flags = np.zeros(100_000)
    flags[:30] = 1.0
    assert eff_at_k(flags, 1000) == pytest.approx(pass_at_k(100_000, 30, 1000), rel=1e-9)


@pytest.mark.parametrize(
    ("scores", "k", "match"),
    [
        ([0.5, 0.7], 0, "at least 1"),
        ([0.5, 0.7], -1, "at least 1"),
        ([0.5, 0.7], 3, "larger than"),
        ([], 1, "empty"),
        ([0.5, float("nan")], 1, "NaN"),
        ([0.5, float("inf")], 1, "infinite"),
        ([0.5, 0.7], 1.5, "integer"),
    ],
)
def test_eff_at_k_rejects_bad_input(scores: list[float], k: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        eff_at_k(scores, k)


# --- pass@k ---------------------------------------------------------------------------------


def test_pass_at_k_known_values() -> None:
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10 = 0.7
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    # n=10, c=3, k=1: c/n = 0.3
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    # n=10, c=3, k=5: 1 - C(7,5)/C(10,5) = 1 - 21/252 = 0.916666...
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)
    # n - c < k: certain
    assert pass_at_k(3, 2, 2) == 1.0
    assert pass_at_k(10, 0, 4) == 0.0


@pytest.mark.parametrize(("n", "c", "k"), [(0, 0, 1), (5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_pass_at_k_rejects_bad_input(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


# --- Hodges-Lehmann and the ENAMEL efficiency score --------------------------------------------


def test_hodges_lehmann_includes_the_diagonal() -> None:
    # [1, 2, 10]: pairwise means i <= j: 1, 1.5, 5.5, 2, 6, 10 -> sorted 1, 1.5, 2, 5.5, 6, 10
    # -> median (2 + 5.5) / 2 = 3.75. Without the diagonal it would be median(1.5, 5.5, 6) = 5.5.
    assert hodges_lehmann([1.0, 2.0, 10.0]) == pytest.approx(3.75)
    # [1, 2]: 1, 1.5, 2 -> 1.5
    assert hodges_lehmann([2.0, 1.0]) == pytest.approx(1.5)
    assert hodges_lehmann([4.0]) == 4.0
    # One outlier among six repeats: 15 of the 21 pairwise means are 0.5 -> median 0.5.
    assert hodges_lehmann([0.5] * 5 + [50.0]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        hodges_lehmann([])
    with pytest.raises(ValueError):
        hodges_lehmann([1.0, float("nan")])


EXPERT = [0.1, 1.0, 2.0, 4.0]  # t*_j per level, one test each
CANDIDATE = [0.1, 0.5, 3.0, 6.0]  # t_j per level


def _levels(
    candidate: list[float] = CANDIDATE,
    expert: list[float] = EXPERT,
    outcomes: dict[int, Outcome] | None = None,
) -> list[LevelRun]:
    outcomes = outcomes or {}
    return [
        LevelRun(
            candidate_times=[[c, c]],
            expert_times=[[e, e, e]],
            outcome=outcomes.get(j, Outcome.OK),
        )
        for j, (c, e) in enumerate(zip(candidate, expert, strict=True))
    ]


# h = [0, 3, 3, 4], alpha = 2: T = 2 * max(1.0, 2.0, 4.0) = 8 (level 0 has h = 0)
# e_0 = (8-0.1)/(8-0.1) = 1
# e_1 = (8-0.5)/(8-1) = 7.5/7 = 1.0714...   (faster than the expert: above 1, not clipped)
# e_2 = (8-3)/(8-2) = 5/6
# e_3 = (8-6)/(8-4) = 0.5
# e = (3*7.5/7 + 3*5/6 + 4*0.5) / 10 = (22.5/7 + 2.5 + 2) / 10 = 0.771428...
FULL = (22.5 / 7 + 2.5 + 2.0) / 10


def test_efficiency_score_by_hand() -> None:
    result = efficiency_score(_levels())
    assert result.time_limit == pytest.approx(8.0)
    assert result.level_scores == pytest.approx((1.0, 7.5 / 7, 5 / 6, 0.5))
    assert result.level_scores[1] > 1.0
    assert result.score == pytest.approx(FULL)
    assert result.correct is True


def test_efficiency_limit_uses_only_weighted_levels() -> None:
    # Level 0 (h = 0) takes 5 s for the expert: T stays 2 * 4 = 8, not 10.
    result = efficiency_score(_levels(expert=[5.0, 1.0, 2.0, 4.0]))
    assert result.time_limit == pytest.approx(8.0)
    assert result.score == pytest.approx(FULL)


def test_efficiency_alpha_and_weights_are_parameters() -> None:
    # alpha = 3, h = [0, 1, 1, 1]: T = 3 * 4 = 12
    # e_1 = 11.5/11, e_2 = (12-3)/(12-2) = 0.9, e_3 = (12-6)/(12-4) = 0.75; e = mean of the three
    result = efficiency_score(_levels(), hardness=[0, 1, 1, 1], alpha=3.0)
    assert result.time_limit == pytest.approx(12.0)
    assert result.score == pytest.approx((11.5 / 11 + 0.9 + 0.75) / 3)
    # h = [0, 1, 0, 0]: T = 3 * t*_1 = 3 only; e = e_1 = (3-0.5)/(3-1) = 1.25
    result = efficiency_score(_levels(), hardness=[0, 1, 0, 0], alpha=3.0)
    assert result.time_limit == pytest.approx(3.0)
    assert result.score == pytest.approx(1.25)


def test_efficiency_uses_hodges_lehmann_and_the_slowest_test() -> None:
    # Level 1 has two candidate tests: an outlier repeat does not move HL (0.5, see above),
    # and the level time is the max over tests: max(0.5, 0.4) = 0.5 -> same as FULL.
    levels = _levels()
    levels[1] = LevelRun(
        candidate_times=[[0.5] * 5 + [50.0], [0.4, 0.4]], expert_times=[[1.0], [0.2]]
    )
    assert efficiency_score(levels).score == pytest.approx(FULL)


@pytest.mark.parametrize("outcome", [Outcome.WRONG, Outcome.ERROR])
@pytest.mark.parametrize("level", [0, 1, 3])
def test_wrong_output_or_exception_zeroes_everything(outcome: Outcome, level: int) -> None:
    result = efficiency_score(_levels(outcomes={level: outcome}))
    assert result.score == 0.0
    assert result.level_scores == (0.0, 0.0, 0.0, 0.0)
    assert result.correct is False


@pytest.mark.parametrize("outcome", [Outcome.TIMEOUT, Outcome.MEMORY])
def test_timeout_at_level_0_fails_the_sample(outcome: Outcome) -> None:
    result = efficiency_score(_levels(outcomes={0: outcome}))
    assert (result.score, result.correct) == (0.0, False)


@pytest.mark.parametrize("outcome", [Outcome.TIMEOUT, Outcome.MEMORY])
def test_timeout_at_a_higher_level_zeroes_it_and_above_but_stays_correct(outcome: Outcome) -> None:
    # Timeout at level 2: e_0 = 1 and e_1 = 7.5/7 kept, e_2 = e_3 = 0.
    # e = 3 * 7.5/7 / 10 = 0.3214...
    result = efficiency_score(_levels(outcomes={2: outcome}))
    assert result.level_scores == pytest.approx((1.0, 7.5 / 7, 0.0, 0.0))
    assert result.score == pytest.approx(3 * 7.5 / 7 / 10)
    assert result.correct is True


@pytest.mark.parametrize("t3", [8.0, 9.5])
def test_a_run_at_or_past_the_limit_scores_zero(t3: float) -> None:
    # t_3 >= T = 8 -> e_3 = 0; e = (22.5/7 + 2.5) / 10
    result = efficiency_score(_levels(candidate=[0.1, 0.5, 3.0, t3]))
    assert result.level_scores[3] == 0.0
    assert result.score == pytest.approx((22.5 / 7 + 2.5) / 10)
    assert result.correct is True


def test_efficiency_score_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="hardness"):
        efficiency_score(_levels(), hardness=[0, 3, 3])
    with pytest.raises(ValueError, match="alpha"):
        efficiency_score(_levels(), alpha=1.0)
    with pytest.raises(ValueError, match="no candidate"):
        efficiency_score([LevelRun([], [[1.0]]), *_levels()[1:]])


# --- SWE-fficiency speedup ratio ------------------------------------------------------------


def test_speedup_ratio() -> None:
    assert speedup_ratio(2.0, 4.0, correct=True) == pytest.approx(0.5)
    # failed: counted as speedup 1.0, so SR = 1/4 (not 0), whatever the candidate measured
    assert speedup_ratio(None, 4.0, correct=False) == pytest.approx(0.25)
    assert speedup_ratio(3.0, 4.0, correct=False) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        speedup_ratio(None, 4.0, correct=True)
    with pytest.raises(ValueError):
        speedup_ratio(2.0, 0.0, correct=True)


def test_aggregate_sr_by_hand() -> None:
    tasks = [
        SRTask(2.0, 2.0, True),  # SR 1.0
        SRTask(0.8, 1.0, True),  # SR 0.8, correct but not faster
        SRTask(None, 4.0, False),  # SR 1/4 = 0.25, incorrect
        SRTask(1.9, 2.0, True),  # SR 0.95: counts as >= 0.95
    ]
    s = aggregate_sr(tasks)
    # harmonic: 4 / (1/1 + 1/0.8 + 1/0.25 + 1/0.95) = 4 / 7.30263... = 0.54774...
    assert s.harmonic_mean == pytest.approx(4 / (1 + 1.25 + 4 + 1 / 0.95))
    # geometric: (1 * 0.8 * 0.25 * 0.95) ** (1/4) = 0.19 ** 0.25 = 0.66022...
    assert s.geometric_mean == pytest.approx(0.19**0.25)
    assert s.frac_sr_ge_095 == pytest.approx(2 / 4)
    assert s.frac_correct_not_faster == pytest.approx(1 / 4)
    assert s.frac_incorrect == pytest.approx(1 / 4)
    assert s.n_tasks == 4
    with pytest.raises(ValueError):
        aggregate_sr([])


# --- GSO opt@k ------------------------------------------------------------------------------


def _run(
    base: list[float], patch: list[float], expert: list[float], correct: bool = True
) -> GsoRun:
    times = zip(base, patch, expert, strict=True)
    return GsoRun(correct, [PerTestTimes(b, p, e) for b, p, e in times])


def test_opt_base_rounds_the_geomean_to_one_decimal() -> None:
    # gm = 1.16 -> round 1.2 >= 1.2 (would fail without rounding); gm = 1.14 -> 1.1 fails
    assert opt_base(_run([1.16], [1.0], [1.0])) is True
    assert opt_base(_run([1.14], [1.0], [1.0])) is False


def test_opt_base_needs_faster_on_average() -> None:
    # per-test ratios 10 and 0.5: gm = sqrt(5) = 2.24 >= 1.2, but mean base 50.5 < mean patch
    # 100.05, so not faster on average.
    assert opt_base(_run([1.0, 100.0], [0.1, 200.0], [1.0, 1.0])) is False


def test_opt_commit_needs_harmonic_mean_vs_expert_above_095() -> None:
    # base/patch = 2 everywhere; expert/patch per test 0.96 -> hm 0.96 > 0.95
    assert opt_commit(_run([2.0, 2.0], [1.0, 1.0], [0.96, 0.96])) is True
    # 0.94 -> fails opt_commit but still opt_base
    run = _run([2.0, 2.0], [1.0, 1.0], [0.94, 0.94])
    assert opt_base(run) is True and opt_commit(run) is False
    # hm, not am: expert/patch = 2.0 and 0.5 -> am 1.25 but hm 2/(0.5+2) = 0.8 -> fails
    assert opt_commit(_run([2.0, 2.0], [1.0, 1.0], [2.0, 0.5])) is False
    # an incorrect run never counts, however fast
    assert opt_commit(_run([9.0], [1.0], [1.0], correct=False)) is False


def test_opt_at_k_is_the_union_over_runs() -> None:
    good = _run([2.0], [1.0], [1.0])
    bad = GsoRun(False)
    tasks = {"t1": [bad, good], "t2": [good, bad], "t3": [bad, bad]}
    assert opt_at_k(tasks, 1) == pytest.approx(1 / 3)  # only t2's first run succeeds
    assert opt_at_k(tasks, 2) == pytest.approx(2 / 3)  # t1 and t2; t3 never
    with pytest.raises(ValueError, match="fewer than k"):
        opt_at_k(tasks, 3)


# --- KernelBench fast_p ---------------------------------------------------------------------


KERNELS = [
    KernelResult(True, t_ref=2.0, t_new=1.0),  # speedup 2.0
    KernelResult(True, t_ref=1.0, t_new=1.0),  # speedup 1.0
    KernelResult(True, t_ref=1.0, t_new=2.0),  # speedup 0.5
    KernelResult(False),  # failed: still counts in N
]


def test_fast_p_is_strict_and_counts_every_task() -> None:
    assert fast_p(KERNELS, 0.0) == pytest.approx(3 / 4)  # fast_0 = correctness rate
    assert fast_p(KERNELS, 0.5) == pytest.approx(1 / 4 * 2)  # 2.0 and 1.0; 0.5 is not > 0.5
    assert fast_p(KERNELS, 1.0) == pytest.approx(1 / 4)  # exactly 1.0 does not count
    assert fast_p(KERNELS, 2.0) == 0.0  # exactly 2.0 does not count
    # geomean over correct tasks only: (2 * 1 * 0.5) ** (1/3) = 1
    assert geomean_speedup(KERNELS) == pytest.approx(1.0)
    assert geomean_speedup([KernelResult(False)]) is None
    with pytest.raises(ValueError):
        fast_p([], 1.0)


# --- PIE ------------------------------------------------------------------------------------


PROGRAMS = [
    # t_src 10; gens: wrong, 5 s, 4 s -> best@1 = 1 (no correct), @2 = 10/5 = 2, @3 = 10/4 = 2.5
    PieProgram(10.0, [Generation(False), Generation(True, 5.0), Generation(True, 4.0)]),
    # t_src 1.1; first gen 1.0 s -> 1.1/1.0 = 1.1 at every k: exactly the 1.10 %Opt bar
    PieProgram(1.1, [Generation(True, 1.0), Generation(False), Generation(False)]),
    # t_src 1; gens 2 s (slower), wrong, 0.5 s -> @1 = max(1, 0.5) = 1, @2 = 1, @3 = 2
    PieProgram(1.0, [Generation(True, 2.0), Generation(False), Generation(True, 0.5)]),
]


@pytest.mark.parametrize(
    ("k", "speedup", "frac_opt", "frac_correct"),
    [
        (1, (1.0 + 1.1 + 1.0) / 3, 1 / 3, 2 / 3),
        (2, (2.0 + 1.1 + 1.0) / 3, 2 / 3, 3 / 3),
        (3, (2.5 + 1.1 + 2.0) / 3, 3 / 3, 3 / 3),
    ],
)
def test_pie_metrics_by_hand(k: int, speedup: float, frac_opt: float, frac_correct: float) -> None:
    s = pie_metrics(PROGRAMS, k)
    assert s.speedup == pytest.approx(speedup)
    assert s.frac_opt == pytest.approx(frac_opt)
    assert s.frac_correct == pytest.approx(frac_correct)
    assert s.n_programs == 3


def test_pie_metrics_rejects_k_above_generations() -> None:
    with pytest.raises(ValueError, match="fewer than k"):
        pie_metrics(PROGRAMS, 4)


def test_dps_follows_evalperf_cumulative_ratios():
    """metrics.md's example: cumulative ratios [30%, 50%, 80%, 100%]; the 3rd cluster is 80."""
    from optimizer.scoring import dps, dps_clusters

    speeds = [1.0, 1.02, 1.05, 2.0, 2.1, 4.0, 4.2, 4.3, 8.0, 8.5]
    clusters = dps_clusters(speeds)
    assert [round(c.cumulative, 3) for c in clusters] == [0.3, 0.5, 0.8, 1.0]
    assert [c.size for c in clusters] == [3, 2, 3, 2]
    assert dps(4.5, True, clusters) == (80.0, 75.0)  # reaches the 3rd level, not the 4th
    assert dps(3.7, True, clusters) == (80.0, 75.0)  # within the 10% tolerance of 4.0
    assert dps(3.5, True, clusters) == (50.0, 50.0)
    assert dps(9.0, True, clusters) == (100.0, 100.0)
    assert dps(9.0, False, clusters) == (0.0, 0.0)  # an incorrect candidate scores 0
    assert dps(0.5, True, clusters) == (0.0, 0.0)  # slower than every reference
    with pytest.raises(ValueError):
        dps_clusters([])
