"""Tests for optimizer.stats (ratio, bootstrap CI, Mann-Whitney, verdict) and the adaptive
interleaving loop."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from optimizer.stats import (
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
    assert c.verdict is Verdict.SLOWER
    assert c.ratio == pytest.approx(1.03)
    assert c.ci[0] == pytest.approx(1.03) and c.ci[1] == pytest.approx(1.03)
    assert c.p_slower < 0.05 < c.p_faster


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
