"""The one measurement path: two sides' runs, interleaved, compared, with adaptive pairs.

Grading, ``optimizer bench`` and ``optimizer ci`` all measure through :func:`compare_metric`:
a :class:`Sampler` per side (a sandbox, a workload, limits), base and candidate runs
alternating (AB BA AB ... for wall time, side by side for instruction counts, which do not
depend on load), more pairs in growing steps while the verdict is ``inconclusive``
(``profilers.stats.adaptive``), and a :class:`MetricResult` holding the raw samples and the
statistics.

**The timed region** (``region``) of a Python-file workload:

- ``total`` (grading's default): importing the workload file (and with it the code under
  test), ``setup()``, and ``workload()`` with its result materialized (``repr``). Work
  moved into import time, into module-level code or into ``setup()`` is still timed, so
  it cannot pass for a speedup. Modules the base imports from places the sandbox cannot
  write (the standard library, the image's site-packages) are imported before the timer
  on both sides: they are not the code under test, and they would only dilute the ratio.
- ``workload`` (``bench`` and ``ci``'s default, as asv and pytest-benchmark time it): only
  the ``workload()`` calls. Import and setup times are still recorded beside it.

A command workload is timed as a whole process in both regions.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from profilers.common import ProfileError, run_harness
from profilers.instructions import measure_instructions
from profilers.models import COLD, Protocol, Workload
from profilers.stats import ALPHAS, FLOORS, Comparison, adaptive, compare
from profilers.wall import measure_wall
from sandbox import Sandbox
from sandbox.errors import UserError

Metric = Literal["wall", "instructions"]
MetricChoice = Literal["wall", "instructions", "both"]
Region = Literal["total", "workload"]
UNITS = {"wall": "s", "instructions": "instructions"}
#: Pairs to start with, and the most pairs, for instruction counts (near-deterministic).
INSTRUCTION_PAIRS = (3, 6)
#: What each region times, for records and reports.
REGION_RULES = {
    "total": "import of the workload file and the code under test + setup() + workload() "
    "(its result materialized with repr), in a fresh process per run; modules the sandbox "
    "cannot write (stdlib, the image's packages) are imported before the timer",
    "workload": "workload() calls only (import and setup() are recorded, not compared)",
}
#: Warm: a candidate whose first call is slower than its later calls by a factor more than
#: this times the base's factor, and by more time than this times the base's own first-call
#: excess (plus that excess's uncertainty, see ``_unsure``), keeps work across calls (a
#: cache): its warm reading is not credited, and the same processes' cold reading decides.
#: Warm-up (cold CPU caches, bytecode specialization, a first allocation) costs a first call
#: about the same time whatever the call's length, so a candidate many times faster than its
#: base shows a larger factor with no cache at all; a cache costs its first call the work it
#: saves. A cache that saves less than 1 - 1/CACHE_RATIO of a call (23%), or less time than
#: the base's own warm-up and its uncertainty, is not told apart from warm-up.
CACHE_RATIO = 1.3
#: ... and a candidate whose first call is more than this times its later calls (and
#: CACHE_RATIO times the base's factor) gets no warm credit whatever the base's excess: on a
#: busy machine a long base call reads its own warm-up to within milliseconds at best, and a
#: memo on a 20 us call saves 0.2 ms (CI under load: first call 12.8x the later ones, base
#: excess -46 us +- 0.2 ms). Warm-up that doubles a call leaves the warm reading unsure by
#: as much, so the cold reading, honest either way, decides.
CACHE_FACTOR = 2.0


def metrics_of(choice: MetricChoice) -> list[Metric]:
    """``both`` -> instructions (the deterministic gate) and wall (the confirmation)."""
    return ["instructions", "wall"] if choice == "both" else [choice]


class MetricResult(BaseModel):
    """One metric's comparison of a candidate with its base (lower is better)."""

    metric: Metric
    unit: str
    region: Region = "workload"
    verdict: str
    ratio: float = Field(
        description="Candidate over base; > 1 is slower. See `estimator` for how: with paired "
        "runs it is not the ratio of the two medians shown beside it."
    )
    estimator: str = Field(
        "of medians",
        description="How `ratio` was taken: 'exact' (constant counts), 'paired HL' (the "
        "Hodges-Lehmann estimate of the back-to-back pairs' ratios: wall clock), or "
        "'of medians' (the ratio of the two medians).",
    )
    ci: tuple[float, float]
    p_value: float
    p_slower: float
    p_faster: float
    p_mwu: float | None = Field(None, description="One-sided Mann-Whitney U p, for reference.")
    deterministic: bool = Field(
        False, description="Both sides' values were constant: the ratio decided, not a test."
    )
    floor: float
    pairs: int
    stopped: str = Field(
        description="Why repeats stopped: conclusive, max_repeats, budget, or identical (one "
        "count per side, the same to the instruction)."
    )
    base_median: float
    head_median: float
    cv_base: float
    cv_head: float
    base_samples: list[float]
    head_samples: list[float]
    order: list[str] = Field(description="The run order, e.g. ['base', 'head', 'head', ...].")
    base_raw_ns: list[list[int]] | None = Field(None, description="Wall: timed calls per run.")
    head_raw_ns: list[list[int]] | None = None
    base_parts_s: dict[str, float] | None = Field(
        None, description="Wall: median import, setup and workload seconds of the base."
    )
    head_parts_s: dict[str, float] | None = None
    outputs: str | None = Field(
        None,
        description="Whether every timed run's result matched the base's ('match'), why not "
        "('differ: ...'), or 'unverifiable' (the base's own results vary from run to run).",
    )
    clocks: str | None = Field(
        None,
        description="Wall: whether the host's clock on the whole process saw the saving the "
        "in-process clock claims ('agree'), or not (then the verdict is inconclusive).",
    )
    protocol: str = Field("cold", description="How each process was timed: cold or warm.")
    protocol_label: str = Field("cold", description="The protocol in words, with its counts.")
    cold: ColdReading | None = Field(
        None, description="Warm: the same processes read cold (import + setup + first call)."
    )
    caching: str | None = Field(
        None,
        description="Warm: why the warm reading was not credited (the candidate's later calls "
        "gain over its first far more than the base's); the ratio is then the cold reading's.",
    )

    @property
    def speedup(self) -> float:
        """Base over candidate: above 1 is faster."""
        return 1.0 / self.ratio


class ColdReading(BaseModel):
    """A warm measurement's processes read cold: import + setup + the first call (wall), or
    the first call's count (instructions), compared the same way."""

    ratio: float
    ci: tuple[float, float]
    verdict: str
    base_median: float
    head_median: float
    first_excess: tuple[float, float] = Field(
        description="Median of (first call - later calls' median) per process: base, candidate."
    )
    first_factor: tuple[float, float] = Field(
        (1.0, 1.0),
        description="Median of (first call / later calls' median) per process: base, candidate.",
    )

    @property
    def speedup(self) -> float:
        return 1.0 / self.ratio


MetricResult.model_rebuild()


class Sampler:
    """One side's measurements: fresh processes in its sandbox, failures as one-line errors.

    ``name`` names the side in errors (e.g. ``base HEAD (1a2b3c4d5e6f)``).
    """

    def __init__(
        self,
        name: str,
        sb: Sandbox,
        workload: Workload,
        *,
        timeout_s: float = 120.0,
        inner: int = 1,
        python: str = "python3",
        what: str = "the workload",
        region: Region = "workload",
        env: dict[str, str] | None = None,
        protocol: Protocol = COLD,
    ) -> None:
        self.name, self.sb, self.workload = name, sb, workload
        self.protocol = protocol if workload.kind == "file" else COLD
        if self.protocol.name == "warm":
            region = "workload"
        self.inner, self.python, self.what, self.region = inner, python, what, region
        self.env = dict(env or {})
        self.limits = sb.limits.model_copy(update={"wall_s": timeout_s})
        self.python_version = ""
        self.preimport: list[str] = []
        self.rss: list[int] = []
        self.raw: list[list[int]] = []
        self.parts: list[dict[str, float]] = []
        self.values: list[float] = []
        self.process: list[float] = []
        self.outputs: list[dict | None] = []
        self.first: list[float] = []  # warm: each run's first call (s or instructions)
        self.cold: list[float] = []  # warm: each run's cold value (import + setup + first)

    def clear(self) -> None:
        for kept in (self.raw, self.parts, self.values, self.process, self.outputs):
            kept.clear()  # a pair's index (len(raw)) is its hash seed
        self.first.clear()
        self.cold.clear()

    @contextlib.contextmanager
    def blame(self):
        try:
            yield
        except ProfileError as exc:
            cause = exc.cause.removeprefix("error: ")
            missing = re.search(r"No module named '([^'.]+)", cause)
            if "timeout" in cause.split(":")[0]:
                fix = "give it more time with --timeout, or make the workload smaller"
            elif missing:
                fix = (
                    f"install {missing[1]} where it runs: `--pip {missing[1]}` (bench), or "
                    f'pip = ["{missing[1]}"] under [tool.optimizer.ci] in pyproject.toml'
                )
            else:
                fix = "run the workload by hand on that side (its error is above) and fix it"
            raise UserError(f"{self.what} failed on {self.name}: {cause}", fix) from None

    def discover_imports(self) -> list[str]:
        """Top-level modules the workload imports from places the sandbox cannot write."""
        if self.workload.kind != "file" or self.region != "total":
            return []
        with self.blame():
            data = run_harness(
                self.sb, "imports", self.workload, python=self.python, limits=self.limits,
                env=self.env,
            )  # fmt: skip
        names = data.get("modules")
        return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []

    def wall(self, keep: bool = True) -> float:
        with self.blame():
            run = measure_wall(
                self.sb, self.workload, inner=self.inner, python=self.python,
                limits=self.limits, hash_seed=len(self.raw),  # the i-th runs of a pair share it
                region=self.region, preimport=self.preimport, env=self.env,
                protocol=self.protocol,
            )  # fmt: skip
        self.python_version = run.python
        if keep:
            if run.first_ns is not None and run.cold_s is not None:
                self.first.append(run.first_ns / 1e9)
                self.cold.append(run.cold_s)
            self.rss.append(run.maxrss_kb)
            self.raw.append(run.samples_ns)
            self.parts.append(run.parts())
            self.values.append(run.seconds)
            self.process.append(run.process_s)
            self.outputs.append(run.output)
        return run.seconds

    def instructions(self) -> float:
        with self.blame():
            run = measure_instructions(
                self.sb, self.workload, python=self.python, limits=self.limits,
                region=self.region, preimport=self.preimport, env=self.env,
                protocol=self.protocol,
            )  # fmt: skip
        self.python_version = run.python
        self.outputs.append(run.output)
        if run.first_instructions is not None:
            self.first.append(float(run.first_instructions))
            self.cold.append(float(run.first_instructions))
        return float(run.instructions)

    def median_parts(self) -> dict[str, float] | None:
        if not self.parts:
            return None
        keys = self.parts[0].keys()
        return {k: sorted(p[k] for p in self.parts)[len(self.parts) // 2] for k in keys}


def compare_metric(
    metric: Metric,
    base: Sampler,
    head: Sampler,
    *,
    floor: float | None = None,
    alpha: float | None = None,
    pairs: tuple[int, int] | None = None,
    budget_s: float = 120.0,
    say: Callable[[str], None] = lambda _msg: None,
) -> MetricResult:
    """Interleave one metric's runs of both sides (adaptive pairs) and compare them.

    The base's imports from unwritable places are discovered first and imported before the
    timer on both sides (``region="total"``); one warm-up wall run per side is discarded.
    """
    floor = FLOORS[metric] if floor is None else floor
    alpha = ALPHAS[metric] if alpha is None else alpha
    pairs = pairs or ((10, 200) if metric == "wall" else INSTRUCTION_PAIRS)
    if base.region != head.region:
        raise ValueError("both sides must time the same region")
    if not base.preimport:
        base.preimport = base.discover_imports()
    head.preimport = base.preimport
    if metric == "wall":
        say("wall clock: warm-up run per side (discarded)")
        for s in (base, head):
            s.clear()
            s.wall(keep=False)
        mb, mh = base.wall, head.wall
    else:
        base.clear()
        head.clear()
        mb, mh = base.instructions, head.instructions
    start, most = pairs
    say(f"{metric}: {start} to {most} interleaved pairs")
    cmp, bs, hs, order, stopped = adaptive(
        mb, mh, floor=floor, start=start, most=max(start, most), budget_s=budget_s,
        parallel=metric == "instructions", alpha=alpha, paired=metric == "wall",
    )  # fmt: skip
    wall = metric == "wall"
    cold, caching = warm_check(
        base, head, bs, hs, warm_ratio=cmp.ratio, floor=floor, alpha=alpha, paired=wall
    )
    judged = cmp
    if caching:
        judged = compare(base.cold, head.cold, floor=floor, alpha=alpha, paired=wall)
        say(f"not credited warm: {caching}")
    verdict, clocks = judged.verdict.value, None
    if wall:
        clocks = clocks_agree(base, head)
        if verdict == "faster" and clocks != "agree":
            verdict = "inconclusive"
    return samples_result(
        metric, judged, bs, hs, order, stopped, floor=floor,
        region=base.region if base.workload.kind == "file" else "total", verdict=verdict,
        protocol=base.protocol.name, protocol_label=base.protocol.label(), cold=cold,
        caching=caching,
        base_raw_ns=list(base.raw) if wall else None,
        head_raw_ns=list(head.raw) if wall else None,
        base_parts_s=base.median_parts() if wall else None,
        head_parts_s=head.median_parts() if wall else None,
        clocks=clocks, outputs=outputs_agree(base.outputs, head.outputs),
    )  # fmt: skip


def warm_check(
    base: Sampler, head: Sampler, bs: list[float], hs: list[float], *, warm_ratio: float,
    floor: float, alpha: float, paired: bool,
) -> tuple[ColdReading | None, str | None]:  # fmt: skip
    """Warm only: the same processes read cold, and whether the candidate keeps work across
    calls: the factor by which its first call is slower than its later ones (per process,
    the median) above ``CACHE_RATIO`` times the base's, and its first call's excess time
    above ``CACHE_RATIO`` times the base's excess. A cache of results (a module-level dict
    keyed by the input) makes the later calls cheap and leaves the first one as slow as the
    work it saves (``warm_ratio``: the warm comparison's candidate/base ratio, for the
    message). Warm-up (bytecode specialization, cold CPU caches) adds about the same time to
    either side's first call: a large factor on a short call, a small one on a long call."""
    n = min(len(base.cold), len(head.cold), len(bs), len(hs))
    if base.protocol.name != "warm" or n < 2:
        return None, None
    cmp = compare(base.cold[:n], head.cold[:n], floor=floor, alpha=alpha, paired=paired)
    excess_b = [f - v for f, v in zip(base.first, bs, strict=False)]
    eb = _median(excess_b)
    eh = _median([f - v for f, v in zip(head.first, hs, strict=False)])
    fb = _median([f / v for f, v in zip(base.first, bs, strict=False) if v > 0])
    fh = _median([f / v for f, v in zip(head.first, hs, strict=False) if v > 0])
    cold = ColdReading(
        ratio=cmp.ratio, ci=cmp.ci, verdict=cmp.verdict.value, base_median=cmp.base_median,
        head_median=cmp.head_median, first_excess=(eb, eh), first_factor=(fb, fh),
    )  # fmt: skip
    warm_up = eh <= CACHE_RATIO * max(eb, 0.0) + _unsure(excess_b)
    if fh <= CACHE_RATIO * max(fb, 1.0) or (warm_up and fh <= CACHE_FACTOR * max(fb, 1.0)):
        return cold, None
    return cold, (
        f"the candidate's first call is {fh:.3g}x slower than its later calls, the base's "
        f"{fb:.3g}x: it keeps results across calls, so its warm reading "
        f"({1 / warm_ratio:.3g}x) is not credited; judged on the same processes "
        f"read cold ({cold.speedup:.3g}x)"
    )


def samples_result(
    metric: Metric, cmp: Comparison, bs: list[float], hs: list[float], order: list[str],
    stopped: str, *, floor: float, region: Region = "workload", **extra: object,
) -> MetricResult:  # fmt: skip
    """A MetricResult from two sides' samples and their comparison (``extra``: the rest)."""
    fields: dict = dict(
        metric=metric, unit=UNITS[metric], region=region, verdict=cmp.verdict.value,
        ratio=cmp.ratio, ci=cmp.ci, p_value=cmp.p_value, p_slower=cmp.p_slower,
        p_faster=cmp.p_faster, p_mwu=cmp.p_mwu, deterministic=cmp.deterministic, floor=floor,
        pairs=min(len(bs), len(hs)), stopped=stopped, base_median=cmp.base_median,
        head_median=cmp.head_median, cv_base=cmp.cv_base, cv_head=cmp.cv_head,
        base_samples=bs, head_samples=hs, order=order, estimator=estimator(cmp),
    )  # fmt: skip
    return MetricResult(**(fields | extra))


def estimator(cmp: Comparison) -> str:
    """What the ratio of a comparison is, in words a table column can carry."""
    if cmp.deterministic:
        return "exact"
    return "paired HL" if cmp.paired else "of medians"


def outputs_agree(base: list[dict | None], head: list[dict | None]) -> str | None:
    """Every timed run's result against the base's (the harness's summaries).

    A candidate that does its work only when it is not being timed (it can tell: another
    argv, another environment) returns something else in the timed runs than in the checks.
    """
    if not base or not head or any(o is None for o in base + head):
        return None
    first = base[0]
    if any(_differs(first, o) for o in base[1:]):
        return "unverifiable: the base's own results vary from run to run"
    for i, o in enumerate(head):
        why = _differs(first, o)
        if why:
            return f"differ: timed run {i + 1} of the candidate: {why}"
    return "match"


def _differs(a: dict, b: dict, rtol: float = 1e-6, atol: float = 1e-9) -> str:
    if a.get("skeleton") != b.get("skeleton"):
        return "another type, shape or exact value than the base's result"
    if a.get("count") != b.get("count") or len(a.get("floats", [])) != len(b.get("floats", [])):
        return "another number of floats than the base's result"
    scale = max(float(a.get("abs") or 0.0), float(b.get("abs") or 0.0))
    if abs(float(a.get("sum") or 0.0) - float(b.get("sum") or 0.0)) > rtol * scale + atol:
        return "the floats sum to another value"
    for x, y in zip(a.get("floats", []), b.get("floats", []), strict=True):
        if isinstance(x, str) or isinstance(y, str):
            if x != y:
                return "a float differs (nan or inf)"
        elif abs(x - y) > rtol * max(abs(x), abs(y)) + atol:
            return f"a float differs ({x!r} vs {y!r})"
    return ""


def _unsure(excess: list[float]) -> float:
    """How far the base's first-call excess can be from its true warm-up (s or counts): two
    standard errors of its median (from the spread across processes), and the size of the
    median itself when it is negative. Warm-up never makes a first call faster, so a base
    whose first calls read faster than its later ones (a busy machine slowing its later
    calls: CI read 0.955x on a 250 ms call) shows by how much a single call wanders, and
    the candidate's excess is held to that: a 2.5 ms warm-up on the spans expert was read
    as a cache against a base excess of -11 ms."""
    m = _median(excess)
    mad = _median([abs(x - m) for x in excess])
    return max(-m, 0.0) + 2 * 1.2533 * 1.4826 * mad / max(len(excess), 1) ** 0.5


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if s else 0.0


def clocks_agree(base: Sampler, head: Sampler) -> str:
    """Cross-check the in-process clock with the host's clock on the whole process.

    An honest speedup shortens the whole process too: the time outside the timed region
    (interpreter start, pre-imports) is the same on both sides. A candidate that fools the
    clock inside its process (rebinding the harness's timer, say) shortens the region but
    not the process, so its time outside the region grows by what it claims to save.
    """
    pairs = list(zip(base.values, base.process, head.values, head.process, strict=False))
    claimed = _median([bv - hv for bv, _, hv, _ in pairs])  # per pair: back to back
    seen = _median([bp - hp for _, bp, _, hp in pairs])
    if claimed <= 0 or seen >= 0.5 * claimed:
        return "agree"
    saving, grew = claimed, claimed - seen
    return (
        f"disagree: the region is {saving * 1e3:.1f} ms shorter, but the time outside it grew "
        f"{grew * 1e3:.1f} ms (the host's clock does not see the saving)"
    )
