"""Tests for profilers.stats (ratio, bootstrap CI, Mann-Whitney, verdict) and the adaptive
interleaving loop."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from profilers.stats import (
    ALPHAS,
    FLOORS,
    Verdict,
    adaptive,
    bootstrap_ratio_ci,
    compare,
    verdict,
)


def test_identical_constant_samples_are_same() -> None:
    c = compare([100.0] * 4, [100.0] * 4, floor=FLOORS["instructions"])
    assert c.verdict is Verdict.SAME
    assert c.ratio == 1.0 and c.ci == (1.0, 1.0)
    assert c.p_value == 1.0


def test_three_percent_deterministic_change_is_slower_at_three_pairs() -> None:
    c = compare([1_000_000.0] * 3, [1_030_000.0] * 3, floor=FLOORS["instructions"])
    assert c.verdict is Verdict.SLOWER and c.deterministic
    assert c.ratio == pytest.approx(1.03)
    assert c.ci[0] == pytest.approx(1.03) and c.ci[1] == pytest.approx(1.03)
    # Constant counts: p is 0 in the ratio's direction (was the MWU p, 0.023, before the
    # deterministic rule); the Mann-Whitney p is still recorded beside it.
    assert c.p_slower == 0.0 and c.p_faster == 1.0
    assert c.p_mwu == pytest.approx(0.0234, abs=1e-3)


def test_faster_is_symmetric() -> None:
    c = compare([1.0] * 5, [0.8] * 5, floor=0.02)
    assert c.verdict is Verdict.FASTER
    assert c.ratio == pytest.approx(0.8)
    assert c.p_value == c.p_faster < 0.05


def test_change_below_floor_is_same_not_slower() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(1.0, 0.001, 30)
    head = base * 1.002  # a real but tiny change, under the 2% floor
    c = compare(base, head, floor=0.02)
    assert c.verdict is Verdict.SAME


def test_wide_spread_is_inconclusive() -> None:
    rng = np.random.default_rng(1)
    base = rng.lognormal(0, 0.5, 6)
    head = rng.lognormal(0, 0.5, 6)
    c = compare(base, head, floor=0.02)
    assert c.verdict is Verdict.INCONCLUSIVE
    assert c.ci[0] < 1 / 1.02 or c.ci[1] > 1.02


def test_noisy_twenty_percent_slowdown_is_detected() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(1.0, 0.05, 20)
    head = rng.normal(1.2, 0.06, 20)
    c = compare(base, head, floor=0.02)
    assert c.verdict is Verdict.SLOWER
    assert c.ci[0] > 1 and c.ci[0] < c.ratio < c.ci[1]


def test_bootstrap_is_reproducible_and_seed_dependent() -> None:
    rng = np.random.default_rng(3)
    b, h = rng.normal(1, 0.1, 15), rng.normal(1.1, 0.1, 15)
    assert bootstrap_ratio_ci(b, h) == bootstrap_ratio_ci(b, h)
    assert bootstrap_ratio_ci(b, h, seed=1) != bootstrap_ratio_ci(b, h, seed=2)
    assert compare(b, h, floor=0.02) == compare(b, h, floor=0.02)


def test_verdict_rule_needs_ratio_ci_and_p() -> None:
    assert verdict(1.05, (1.01, 1.09), 0.01, 0.99, 0.02) is Verdict.SLOWER
    assert verdict(1.05, (0.99, 1.09), 0.01, 0.99, 0.02) is Verdict.INCONCLUSIVE  # CI has 1
    assert verdict(1.05, (1.01, 1.09), 0.20, 0.80, 0.02) is Verdict.INCONCLUSIVE  # p too big
    assert verdict(1.015, (1.01, 1.019), 0.01, 0.99, 0.02) is Verdict.SAME  # under the floor
    assert verdict(0.9, (0.85, 0.95), 0.99, 0.01, 0.02) is Verdict.FASTER


@pytest.mark.parametrize(
    "base, head", [([1.0], [1.0, 2.0]), ([1.0, 0.0], [1.0, 1.0]), ([1.0, float("nan")], [1, 1])]
)
def test_bad_samples_are_refused(base: list[float], head: list[float]) -> None:
    with pytest.raises(ValueError):
        compare(base, head, floor=0.02)


def test_adaptive_stops_when_conclusive_and_interleaves() -> None:
    calls: list[str] = []
    b = itertools.count()

    def mb() -> float:
        calls.append("base")
        return 100.0 + next(b) * 1e-9

    def mh() -> float:
        calls.append("head")
        return 120.0

    cmp, bs, hs, order, stopped = adaptive(mb, mh, floor=0.02, start=4, most=20, budget_s=60)
    assert stopped == "conclusive" and cmp.verdict is Verdict.SLOWER
    assert len(bs) == len(hs) == 4
    assert order == calls == ["base", "head", "head", "base"] * 2


def test_adaptive_adds_pairs_while_inconclusive_until_max() -> None:
    rng = np.random.default_rng(4)
    cmp, bs, hs, _, stopped = adaptive(
        lambda: float(rng.lognormal(0, 0.8)),
        lambda: float(rng.lognormal(0, 0.8)),
        floor=0.001,
        start=4,
        most=10,
        budget_s=60,
    )
    assert stopped == "max_repeats"
    assert len(bs) == len(hs) == 10
    assert cmp.verdict is Verdict.INCONCLUSIVE


def test_adaptive_respects_the_budget() -> None:
    rng = np.random.default_rng(5)
    _, bs, _, _, stopped = adaptive(
        lambda: float(rng.lognormal(0, 0.8)),
        lambda: float(rng.lognormal(0, 0.8)),
        floor=0.001,
        start=3,
        most=1000,
        budget_s=1e-9,
    )
    assert stopped == "budget"
    assert len(bs) == 3


def test_paired_comparison_cancels_slow_and_fast_phases() -> None:
    # Wall times that drift between a fast phase (~440) and a slow one (~740) lasting several
    # runs, as seen on shared VMs; base and head are the same code, each pair run back to back.
    base = [741, 440, 443, 456, 451, 574, 729, 751, 708, 754, 736, 580, 474, 704, 648, 439]
    head = [701, 445, 441, 444, 710, 737, 748, 755, 436, 762, 752, 755, 749, 756, 691, 459]
    wall = ALPHAS["wall"]
    unpaired = compare(base, head, floor=0.02, alpha=wall)
    paired = compare(base, head, floor=0.02, alpha=wall, paired=True)
    assert abs(paired.ratio - 1) < abs(unpaired.ratio - 1)
    assert paired.verdict not in (Verdict.FASTER, Verdict.SLOWER)
    slower = compare(base, [x * 1.05 for x in base], floor=0.02, alpha=wall, paired=True)
    assert slower.verdict is Verdict.SLOWER and slower.ci[0] > 1
    assert slower.ratio == pytest.approx(1.05)
    with pytest.raises(ValueError):
        compare(base, head[:-1], floor=0.02, paired=True)


# The deterministic rule: each side's values constant (callgrind instruction counts).


@pytest.mark.parametrize("n", [2, 3])
def test_deterministic_ten_percent_is_slower_at_two_or_three_pairs(n: int) -> None:
    c = compare([1_000_000.0] * n, [1_100_000.0] * n, floor=FLOORS["instructions"])
    assert c.deterministic
    assert c.verdict is Verdict.SLOWER
    assert c.ratio == 1.1 and c.ci == (1.1, 1.1)
    assert c.p_slower == 0.0 and c.p_value == 0.0 and c.p_faster == 1.0
    assert c.cv_base == 0.0 and c.cv_head == 0.0


def test_deterministic_ten_percent_is_slower_at_the_strictest_alpha() -> None:
    # The rule does not depend on alpha: p is 0, below any Bonferroni share alpha / m.
    c = compare([1e6] * 3, [1.1e6] * 3, floor=0.02, alpha=ALPHAS["instructions"] / 50)
    assert c.deterministic and c.verdict is Verdict.SLOWER


def test_deterministic_change_under_the_floor_is_same() -> None:
    c = compare([1_000_000.0] * 3, [1_003_000.0] * 3, floor=0.005)
    assert c.deterministic
    assert c.ratio == 1.003 and c.ci == (1.003, 1.003)
    assert c.verdict is Verdict.SAME


def test_deterministic_ten_percent_less_is_faster() -> None:
    c = compare([1_000_000.0] * 2, [900_000.0] * 2, floor=FLOORS["instructions"])
    assert c.deterministic
    assert c.verdict is Verdict.FASTER
    assert c.ratio == 0.9 and c.ci == (0.9, 0.9)
    assert c.p_faster == 0.0 and c.p_value == 0.0 and c.p_slower == 1.0


def test_deterministic_equal_constants_are_same_with_p_one() -> None:
    c = compare([5_000_000.0] * 2, [5_000_000.0] * 2, floor=FLOORS["instructions"])
    assert c.deterministic
    assert c.verdict is Verdict.SAME
    assert c.ratio == 1.0 and c.ci == (1.0, 1.0)
    assert c.p_value == 1.0 and c.p_slower == 1.0 and c.p_faster == 1.0


@pytest.mark.parametrize(
    "base, head",
    [
        ([1_000_000.0, 1_000_001.0], [1_100_000.0] * 2),  # one count of spread in base
        ([1_000_000.0] * 2, [1_100_000.0, 1_100_001.0]),  # ... or in head
        ([1_000_000.0, 1_000_001.0, 1_000_000.0], [1_100_000.0] * 3),
    ],
)
def test_any_spread_is_not_deterministic_and_takes_the_ordinary_test(
    base: list[float], head: list[float]
) -> None:
    c = compare(base, head, floor=FLOORS["instructions"])
    assert not c.deterministic
    # The ordinary path: Mann-Whitney p and a bootstrap CI, not the exact point.
    assert c.p_slower == pytest.approx(mannwhitneyu(head, base, alternative="greater").pvalue)
    assert c.p_slower > 0.0
    assert c.ci != (c.ratio, c.ratio) and c.ci[0] < c.ci[1]
    if len(base) == 2:  # 2 x 2 fully separated: MWU cannot get below 0.05
        assert c.verdict is Verdict.INCONCLUSIVE


def test_adaptive_with_constant_callables_stops_at_start_pairs() -> None:
    calls = itertools.count()

    def counted(value: float):
        def measure() -> float:
            next(calls)
            return value

        return measure

    for start in (2, 3):
        cmp, bs, hs, order, stopped = adaptive(
            counted(1_000_000.0), counted(1_100_000.0), floor=FLOORS["instructions"],
            start=start, most=10, budget_s=60, alpha=ALPHAS["instructions"] / 3,
        )  # fmt: skip
        assert stopped == "conclusive"
        assert cmp.deterministic and cmp.verdict is Verdict.SLOWER
        assert len(bs) == len(hs) == start and len(order) == 2 * start
        assert cmp.ci == (1.1, 1.1)
    assert next(calls) == 2 * (2 + 3)  # no pairs beyond start


def test_adaptive_with_equal_constants_stops_at_start_as_same() -> None:
    cmp, bs, _, _, stopped = adaptive(
        lambda: 7.0, lambda: 7.0, floor=0.005, start=3, most=10, budget_s=60, parallel=True
    )
    assert stopped == "conclusive" and len(bs) == 3
    assert cmp.deterministic and cmp.verdict is Verdict.SAME
