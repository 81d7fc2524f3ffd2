"""ENAMEL's efficiency metrics (eff@k, per-sample efficiency score) and Codex's pass@k.

Sources:

- ENAMEL: Qiu et al., "How Efficient is LLM-Generated Code? A Rigorous & High-Standard
  Benchmark" (2024): Hodges-Lehmann per-test time, level scores, hardness weights, the time
  limit ``T = alpha * max t*_j`` and the unbiased Rao-Blackwellized eff@k estimator.
- Codex / HumanEval: Chen et al., "Evaluating Large Language Models Trained on Code" (2021):
  the unbiased pass@k estimator.

All functions are pure; invalid input raises ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

#: ENAMEL's default hardness weights h_j for levels 0..3 (level 0 is HumanEval's own tests).
DEFAULT_HARDNESS: tuple[float, ...] = (0.0, 3.0, 3.0, 4.0)
#: ENAMEL's default time-limit factor: T = alpha * max over weighted levels of t*_j.
DEFAULT_ALPHA = 2.0


def _check_k(k: int, n: int, what: str) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ValueError(f"k must be an integer, got {k!r}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if k > n:
        raise ValueError(f"k={k} is larger than the {n} {what} available")


def _finite_1d(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: at least one value is needed")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains an infinite value")
    return arr


def eff_at_k(scores: Sequence[float], k: int) -> float:
    """eff@k of one problem: the expected best efficiency score of k i.i.d. samples.

    ENAMEL (Qiu et al., 2024), the unbiased Rao-Blackwellized estimator from n >= k samples.
    With the scores sorted ``e_(1) <= ... <= e_(n)``::

        eff@k = sum_{r=k..n} C(r-1, k-1) / C(n, k) * e_(r)

    The weights are built without binomials (``C(n, k)`` overflows a float near n = 1030)::

        lambda_n = k / n
        lambda_r = lambda_{r+1} * (1 - (k-1)/r)    for r = n-1 down to k

    and go with the top n-k+1 sorted scores, so the estimator is stable for n up to 1e5 and
    beyond. k = 1 gives the mean and k = n the maximum; with 0/1 scores it equals pass@k.
    Average the result over problems for a benchmark's eff@k.

    Raises:
        ValueError: empty ``scores``, a NaN or infinite score, k < 1 or k > n. (ENAMEL's
            reference code silently returns 0 for k > n; this function refuses.)
    """
    arr = _finite_1d(scores, "scores")
    n = int(arr.size)
    _check_k(k, n, "scores")
    k = int(k)
    top = np.sort(arr)[k - 1 :]  # e_(k) .. e_(n): the n-k+1 largest scores
    r = np.arange(n - 1, k - 1, -1, dtype=float)  # n-1 down to k
    lam_desc = (k / n) * np.concatenate(([1.0], np.cumprod(1.0 - (k - 1) / r)))
    weights = lam_desc[::-1]  # lambda_k .. lambda_n, aligned with ``top``
    return float(np.dot(weights, top))


def pass_at_k(n: int, c: int, k: int) -> float:
    """pass@k of one problem: the chance that at least one of k samples is correct.

    Codex / HumanEval (Chen et al., 2021): ``1 - C(n-c, k) / C(n, k)`` for n samples of which c
    are correct, computed stably as ``1 - prod_{i=n-c+1..n} (1 - k/i)``; it is 1 when
    ``n - c < k``.

    Raises:
        ValueError: n < 1, c outside 0..n, k < 1 or k > n.
    """
    for name, value in (("n", n), ("c", c)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c must be between 0 and n={n}, got {c}")
    _check_k(k, n, "samples")
    if n - c < k:
        return 1.0
    i = np.arange(n - c + 1, n + 1, dtype=float)
    return float(1.0 - np.prod(1.0 - k / i))


def hodges_lehmann(times: Sequence[float]) -> float:
    """Hodges-Lehmann location estimate of one test's repeated run times.

    ENAMEL (Qiu et al., 2024) times each test R times (default 6) and takes the median of all
    pairwise means ``(t_i + t_j) / 2`` over ``i <= j``, the diagonal included (so R = 1 gives
    the single time). Robust to a few outlying runs.

    Raises:
        ValueError: empty ``times``, NaN, infinite or negative times.
    """
    arr = _finite_1d(times, "times")
    if (arr < 0).any():
        raise ValueError("times must not be negative")
    i, j = np.triu_indices(arr.size)
    return float(np.median((arr[i] + arr[j]) / 2.0))


class Outcome(StrEnum):
    """How the candidate's run of one level ended (ENAMEL's failure rules)."""

    OK = "ok"  #: every test's output was correct
    WRONG = "wrong"  #: a wrong output: every level scores 0, the sample is incorrect
    ERROR = "error"  #: an exception: every level scores 0, the sample is incorrect
    TIMEOUT = "timeout"  #: killed at the limit: at level 0 a failure, at j >= 1 zeroes j and up
    MEMORY = "memory"  #: out of memory: treated exactly like a timeout


@dataclass(frozen=True)
class LevelRun:
    """One level of one problem, as measured for one candidate sample.

    Attributes:
        candidate_times: per test, the candidate's R repeated run times in seconds. May be
            empty for a level that did not finish (any outcome other than ``ok``).
        expert_times: per test, the expert reference's R repeated run times in seconds.
        outcome: how the candidate's run of this level ended.
    """

    candidate_times: Sequence[Sequence[float]]
    expert_times: Sequence[Sequence[float]]
    outcome: Outcome = Outcome.OK


@dataclass(frozen=True)
class EfficiencyScore:
    """One sample's ENAMEL efficiency score and the numbers behind it.

    Attributes:
        score: ``e = sum_j h_j e_j / sum_j h_j`` (0 when the sample is incorrect).
        correct: whether the sample counts as correct for pass@k.
        level_scores: ``e_j`` per level, not clipped at 1.
        time_limit: the problem's limit ``T = alpha * max over levels with h_j > 0 of t*_j``.
    """

    score: float
    correct: bool
    level_scores: tuple[float, ...]
    time_limit: float


def _level_time(tests: Sequence[Sequence[float]], who: str, level: int) -> float:
    if len(tests) == 0:
        raise ValueError(f"level {level} has no {who} tests")
    return max(hodges_lehmann(times) for times in tests)


def efficiency_score(
    levels: Sequence[LevelRun],
    hardness: Sequence[float] = DEFAULT_HARDNESS,
    alpha: float = DEFAULT_ALPHA,
) -> EfficiencyScore:
    """ENAMEL's efficiency score of one sample on one problem.

    ENAMEL (Qiu et al., 2024):

    - Per-test time: :func:`hodges_lehmann` of its repeated runs. ``t*_j`` (expert) and ``t_j``
      (candidate) are the maximum per-test time in level j.
    - One limit per problem: ``T = alpha * max over levels with h_j > 0 of t*_j``.
    - Level score ``e_j = max(0, T - t_j) / (T - t*_j)``, NOT clipped at 1 (faster than the
      expert scores above 1); a run at or past T scores 0.
    - A wrong output or an exception at any level makes every level 0 (sample incorrect).
      A timeout (or memory error) at level 0 fails the sample. A timeout at level j >= 1
      zeroes level j and every level above it; the levels below keep their scores and the
      sample still counts as correct.
    - Sample score ``e = sum_j h_j e_j / sum_j h_j``.

    A zero-weight level whose expert time is at or above T (the formula is undefined there)
    gets ``e_j = 0``; it does not affect ``score``.

    Args:
        levels: one :class:`LevelRun` per level, level 0 first.
        hardness: the weights h_j, one per level (default ``(0, 3, 3, 4)``).
        alpha: the time-limit factor (default 2); must be above 1.

    Raises:
        ValueError: mismatched lengths, bad weights, alpha <= 1, or missing/invalid times.
    """
    if len(levels) == 0:
        raise ValueError("levels is empty")
    if len(levels) != len(hardness):
        raise ValueError(f"got {len(levels)} levels but {len(hardness)} hardness weights")
    weights = [float(h) for h in hardness]
    if any(not math.isfinite(h) or h < 0 for h in weights) or sum(weights) <= 0:
        raise ValueError("hardness weights must be finite, >= 0, and not all 0")
    if not math.isfinite(alpha) or alpha <= 1:
        raise ValueError(f"alpha must be above 1, got {alpha}")

    expert = [_level_time(lv.expert_times, "expert", j) for j, lv in enumerate(levels)]
    limit = alpha * max(t for t, h in zip(expert, weights, strict=True) if h > 0)
    outcomes = [Outcome(lv.outcome) for lv in levels]
    zeros = tuple(0.0 for _ in levels)

    if any(o in (Outcome.WRONG, Outcome.ERROR) for o in outcomes):
        return EfficiencyScore(0.0, False, zeros, limit)
    stopped = (Outcome.TIMEOUT, Outcome.MEMORY)
    if outcomes[0] in stopped:
        return EfficiencyScore(0.0, False, zeros, limit)
    first_stop = next((j for j, o in enumerate(outcomes) if o in stopped), len(levels))

    scores: list[float] = []
    for j, lv in enumerate(levels):
        if j >= first_stop:
            scores.append(0.0)
            continue
        t_j = _level_time(lv.candidate_times, "candidate", j)
        denom = limit - expert[j]
        scores.append(0.0 if t_j >= limit or denom <= 0 else (limit - t_j) / denom)
    total = sum(h * e for h, e in zip(weights, scores, strict=True)) / sum(weights)
    return EfficiencyScore(total, True, tuple(scores), limit)
