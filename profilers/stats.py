"""Comparing a baseline's samples with a candidate's: ratio, confidence interval, p, verdict.

The samples come from interleaved runs of the same session (base and candidate alternate,
AB BA AB ...), never from runs taken minutes apart. Lower is better (time, instructions).

The numbers:

- ``ratio``: median(candidate) / median(base). Above 1 means the candidate is slower.
- ``ci``: a 95% percentile bootstrap interval on that ratio (both sides resampled
  independently, 2000 resamples, fixed seed, so the same samples give the same interval).
- ``p_slower`` / ``p_faster``: one-sided Mann-Whitney U p-values (scipy) that the candidate's
  values are larger / smaller than the base's. ``p_value`` is the one in the direction of
  the ratio (``p_mwu`` always holds the Mann-Whitney one).
- Deterministic (each side's values constant, as instruction counts usually are): the ratio
  is exact, the CI is that point, and p is 0 in the ratio's direction (1 in the other), so
  the verdict follows the ratio and the floor however few pairs the budget allowed.
- Paired (wall clock, where ``adaptive`` ran base and candidate back to back): the ratio is
  the Hodges-Lehmann estimate of the per-pair ratios, the CI its signed-rank interval, and
  the p-values one-sided Wilcoxon signed-rank tests (see ``compare``).

The verdict rule (asv-style: a change must be both large enough and significant), with
``floor`` the noise floor (default 2% for wall time, 0.5% for instruction counts) and
``alpha`` the significance level (``ALPHAS``: 0.005 for wall time, 0.05 for instructions):

- ``slower``: ratio >= 1 + floor, the whole CI is above 1, and p_slower < alpha.
- ``faster``: ratio <= 1 / (1 + floor), the whole CI is below 1, and p_faster < alpha.
- ``same``: the whole CI lies inside [1 / (1 + floor), 1 + floor]: any change is smaller
  than the floor.
- ``inconclusive``: anything else; the spread is too wide to tell. The caller then adds
  repeats (see ``optimizer.bench``) until the verdict is conclusive, the most repeats are
  reached, or the time budget runs out, and reports ``inconclusive`` rather than guessing.

The floor is applied to the point ratio rather than to the CI bound, so that a real 3%
change can be called with a 2% floor without hundreds of repeats; the CI must still exclude
"no change". Instruction counts are near-deterministic (CV ~1e-8), so their CI is tight
and a 0.5% floor calls a 3% change; with identical values on each side, scipy's tie-corrected
Mann-Whitney gives p = 0.023 at 3 pairs, so 3 pairs suffice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum

import numpy as np
from pydantic import BaseModel, Field

#: Default noise floors, by metric.
FLOORS = {"wall": 0.02, "instructions": 0.005}
ALPHA = 0.05
#: Significance level per metric. Wall clock is strict (asv uses 0.002): on shared VMs its
#: per-process times can be bimodal, and the adaptive loop looks at the data several times.
#: Instruction counts are near-deterministic: 3 identical pairs give p = 0.023.
ALPHAS = {"wall": 0.005, "instructions": ALPHA}
RESAMPLES = 2000
SEED = 20240601
CONFIDENCE = 0.95


class Verdict(StrEnum):
    FASTER = "faster"
    SLOWER = "slower"
    SAME = "same"
    INCONCLUSIVE = "inconclusive"


class Comparison(BaseModel):
    """The comparison of a candidate's samples with the base's (lower is better)."""

    n_base: int
    n_head: int
    base_median: float
    head_median: float
    ratio: float = Field(
        description="median(candidate) / median(base), or with `paired` the Hodges-Lehmann "
        "estimate of the per-pair ratios; > 1 is slower."
    )
    paired: bool = Field(False, description="Pairs compared (Wilcoxon) instead of samples (MWU).")
    ci: tuple[float, float] = Field(
        description="95% CI on the ratio: bootstrap, or with `paired` signed-rank."
    )
    p_slower: float = Field(description="One-sided p (MWU or Wilcoxon): candidate is larger.")
    p_faster: float = Field(description="One-sided p (MWU or Wilcoxon): candidate is smaller.")
    p_value: float = Field(description="The one-sided p in the direction of the ratio.")
    p_mwu: float = Field(description="One-sided Mann-Whitney U p in the ratio's direction.")
    floor: float = Field(description="Noise floor: changes smaller than this are 'same'.")
    alpha: float
    verdict: Verdict
    deterministic: bool = Field(
        False,
        description="Each side's values were constant (instruction counts): the ratio and the "
        "floor decide, however few the pairs.",
    )
    cv_base: float = Field(description="Coefficient of variation of the base samples.")
    cv_head: float = Field(description="Coefficient of variation of the candidate samples.")

    @property
    def change(self) -> float:
        """The relative change, e.g. 0.03 for 3% slower."""
        return self.ratio - 1.0


def _cv(x: np.ndarray) -> float:
    mean = float(np.mean(x))
    return float(np.std(x, ddof=1) / mean) if len(x) > 1 and mean else 0.0


def bootstrap_ratio_ci(
    base: np.ndarray,
    head: np.ndarray,
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> tuple[float, float]:
    """Percentile bootstrap CI on median(head) / median(base)."""
    rng = np.random.default_rng(seed)
    b = np.median(base[rng.integers(0, len(base), (resamples, len(base)))], axis=1)
    h = np.median(head[rng.integers(0, len(head), (resamples, len(head)))], axis=1)
    ratios = h / b
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


def verdict(ratio: float, ci: tuple[float, float], p_slower: float, p_faster: float,
            floor: float, alpha: float = ALPHA) -> Verdict:  # fmt: skip
    """Apply the rule in the module docstring."""
    up, down = 1 + floor, 1 / (1 + floor)
    if ratio >= up and ci[0] > 1 and p_slower < alpha:
        return Verdict.SLOWER
    if ratio <= down and ci[1] < 1 and p_faster < alpha:
        return Verdict.FASTER
    if down <= ci[0] and ci[1] <= up:
        return Verdict.SAME
    return Verdict.INCONCLUSIVE


def _paired(b: np.ndarray, h: np.ndarray) -> tuple[float, tuple[float, float], float, float]:
    """Hodges-Lehmann ratio of pairs, its signed-rank CI, and one-sided Wilcoxon p-values.

    The estimate is the median of the Walsh averages (x_i + x_j) / 2, i <= j, of the per-pair
    log-ratios x; the CI is the pair of Walsh averages that the Wilcoxon signed-rank test puts
    at its 2.5% and 97.5% critical ranks (normal approximation), so estimate, interval and
    test agree. It is as robust as the median but about 1.5x as efficient: fewer pairs call
    the same change.
    """
    if len(b) != len(h):
        raise ValueError("paired samples need the same number on each side")
    from scipy.stats import norm, wilcoxon  # here: scipy.stats takes seconds to import

    logs = np.log(h / b)
    if np.all(logs == 0):
        return 1.0, (1.0, 1.0), 1.0, 1.0
    n = len(logs)
    i, j = np.triu_indices(n)
    walsh = np.sort((logs[i] + logs[j]) / 2)
    z = float(norm.ppf(1 - (1 - CONFIDENCE) / 2))
    k = math.floor(n * (n + 1) / 4 - z * math.sqrt(n * (n + 1) * (2 * n + 1) / 24))
    k = min(max(k, 0), (len(walsh) - 1) // 2)
    low, high = np.exp([walsh[k], walsh[len(walsh) - 1 - k]])
    p_slower = float(wilcoxon(logs, alternative="greater", zero_method="zsplit").pvalue)
    p_faster = float(wilcoxon(logs, alternative="less", zero_method="zsplit").pvalue)
    return float(np.exp(np.median(walsh))), (float(low), float(high)), p_slower, p_faster


def compare(
    base: list[float] | np.ndarray,
    head: list[float] | np.ndarray,
    *,
    floor: float,
    alpha: float = ALPHA,
    seed: int = SEED,
    paired: bool = False,
) -> Comparison:
    """Compare candidate samples ``head`` with ``base`` (lower is better).

    With ``paired``, ``base[i]`` and ``head[i]`` ran back to back (as ``adaptive`` runs them)
    and the comparison is of the per-pair ratios: their Hodges-Lehmann estimate, its
    signed-rank CI, and a one-sided Wilcoxon signed-rank p on their logs. On shared VMs wall
    times drift between slow and fast phases lasting seconds; a pair mostly sees one phase,
    so pairing cancels what the ratio of medians and Mann-Whitney mistake for a change.
    """
    from scipy.stats import mannwhitneyu  # here: scipy.stats takes seconds to import

    b = np.asarray(base, dtype=float)
    h = np.asarray(head, dtype=float)
    if len(b) < 2 or len(h) < 2:
        raise ValueError("need at least 2 samples on each side")
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(h))) or b.min() <= 0 or h.min() <= 0:
        raise ValueError("samples must be finite and above 0")
    deterministic = bool(np.ptp(b) == 0 and np.ptp(h) == 0)
    if deterministic:  # no noise to test against: the exact ratio is the answer
        ratio = float(h[0] / b[0])
        ci = (ratio, ratio)
        p_slower = 0.0 if ratio > 1 else 1.0
        p_faster = 0.0 if ratio < 1 else 1.0
    elif paired:
        ratio, ci, p_slower, p_faster = _paired(b, h)
    else:
        ratio = float(np.median(h) / np.median(b))
        ci = bootstrap_ratio_ci(b, h, seed=seed)
        p_slower = float(mannwhitneyu(h, b, alternative="greater").pvalue)
        p_faster = float(mannwhitneyu(h, b, alternative="less").pvalue)
    p_mwu = float(mannwhitneyu(h, b, alternative="greater" if ratio >= 1 else "less").pvalue)
    p_slower = 1.0 if math.isnan(p_slower) else p_slower
    p_faster = 1.0 if math.isnan(p_faster) else p_faster
    return Comparison(
        n_base=len(b),
        n_head=len(h),
        base_median=float(np.median(b)),
        head_median=float(np.median(h)),
        ratio=ratio,
        ci=ci,
        p_slower=p_slower,
        p_faster=p_faster,
        p_value=p_slower if ratio >= 1 else p_faster,
        p_mwu=1.0 if math.isnan(p_mwu) else p_mwu,
        floor=floor,
        alpha=alpha,
        paired=paired,
        verdict=verdict(ratio, ci, p_slower, p_faster, floor, alpha),
        deterministic=deterministic,
        cv_base=_cv(b),
        cv_head=_cv(h),
    )


def adaptive(
    measure_base: Callable[[], float],
    measure_head: Callable[[], float],
    *,
    floor: float,
    start: int,
    most: int,
    budget_s: float,
    step: int | None = None,
    parallel: bool = False,
    alpha: float = ALPHA,
    paired: bool = False,
) -> tuple[Comparison, list[float], list[float], list[str], str]:
    """Interleave base and head runs (AB BA AB ...) until the verdict is conclusive.

    Pairs are added in growing steps (``step``, or half the pairs so far when more), so the
    data is looked at a few times (10, 15, 22, 33, 49, ...), not after every pair.

    With ``parallel`` (for instruction counts, which do not depend on load), the two runs
    of a pair run at the same time. Returns the comparison, both sample lists, the run order
    and why it stopped.
    """
    step = step or max(1, start // 2)
    deadline = time.monotonic() + budget_s
    base: list[float] = []
    head: list[float] = []
    order: list[str] = []
    target = max(2, start)
    while True:
        while len(base) < target:
            if len(base) >= max(2, start) and time.monotonic() > deadline:
                break
            first_base = len(base) % 2 == 0
            if parallel:
                with ThreadPoolExecutor(2) as pool:
                    fb, fh = pool.submit(measure_base), pool.submit(measure_head)
                    base.append(fb.result())
                    head.append(fh.result())
                order += ["base", "head"]
                continue
            for which in ("base", "head") if first_base else ("head", "base"):
                (base if which == "base" else head).append(
                    measure_base() if which == "base" else measure_head()
                )
                order.append(which)
        result = compare(base, head, floor=floor, alpha=alpha, paired=paired)
        if result.verdict != "inconclusive":
            return result, base, head, order, "conclusive"
        if len(base) >= most:
            return result, base, head, order, "max_repeats"
        if time.monotonic() > deadline:
            return result, base, head, order, "budget"
        target = min(most, len(base) + max(step, len(base) // 2))
