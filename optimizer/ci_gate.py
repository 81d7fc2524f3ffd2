"""Measuring and judging `optimizer ci`'s benchmarks, with as few process starts as each
metric allows.

**Instruction counts** (deterministic): one callgrind process per side counts the region of
every benchmark (``profilers.instructions.count_batch``), and the two sides run side by
side, since a count does not depend on load. A round is one such process per side; the
first two rounds are one count and one repeat that proves the counts constant (where
round one counted the same on both sides, to the instruction, that was the repeat: two
processes agree, and the change did not touch the benchmark). Where both
sides' counts are constant, the exact ratio and the threshold decide, whatever the load
and however many benchmarks share the Holm family. Where counts vary (ASLR in Docker,
numpy's threads), more rounds run for those benchmarks alone, while their comparison is
inconclusive, up to ``CI_INSTRUCTION_PAIRS[1]`` rounds or the time budget. Each step of a
round (start-up, an import, a setup, a region) may take ``VALGRIND_SLOWDOWN`` times the
native ``--timeout``; one that takes longer is stopped and named, and the benchmarks it
kept from running are counted in the next round.

**Wall clock**, per benchmark: base and head runs interleaved (AB BA ...), each sample a
fresh process, in one long-lived sandbox per side (``Sandbox.session``: in Docker one
container, each command an exec into it), never two at once.

**Judging**, per metric over all benchmarks: Holm-adjusted p below the metric's alpha,
and a confirming re-run on fresh samples for a change that is not deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from optimizer.ci_benchmarks import Benchmark, MetricChoice
from optimizer.ci_models import (
    BenchmarkDone,
    BenchmarkResult,
    CIConfig,
    MetricVerdict,
    Verdict,
    holm,
    hotspot_diff,
)
from optimizer.errors import UserError
from profilers import HotspotReport, ProfileError, Workload, profile_hotspots
from profilers.compare import (
    INSTRUCTION_PAIRS,
    Metric,
    MetricResult,
    Sampler,
    compare_metric,
    metrics_of,
    outputs_agree,
    samples_result,
)
from profilers.instructions import VALGRIND_SLOWDOWN, BatchCount, BatchTarget, count_batch
from profilers.stats import ALPHAS, compare
from sandbox import Limits, Sandbox

#: Most instruction-count rounds (pairs): six give p = 0.001 where counts vary, enough for
#: alpha / m with dozens of benchmarks; constant counts are decided after two.
CI_INSTRUCTION_PAIRS = (INSTRUCTION_PAIRS[0], 6)
#: cProfile runs per side for a regression's hotspot diff (the median is kept).
HOTSPOT_RUNS = 3
SIDES = ("base", "head")
#: Untimed calls before each counted one: a benchmark is counted warm, as asv and
#: pytest-benchmark time it (first-call costs such as filling a cache are not the steady state).
WARMUP = 1
#: Wall clock: timed calls per process add up to about this much (see ``Gate.calibrate``).
SAMPLE_S = 0.02
MAX_INNER = 1000
#: What the pytest runner says of a test that takes the fixture but never calls it.
NOT_CALLED = "passed without calling benchmark(...)"
#: The steps a batch reports, before a benchmark's name.
_STEPS = ("measuring ", "importing ", "setup of ")


def metrics(b: Benchmark, default: MetricChoice) -> list[Metric]:
    return metrics_of(b.metric or default)


def workload_of(b: Benchmark) -> Workload:
    """A driven benchmark (the pytest runner) names its region; a file or command does not."""
    if b.kind == "command":
        return Workload(kind="command", target=b.command or "")
    driven = b.origin == "pytest-benchmark"
    return Workload(kind="file", target=b.path or "", name=b.name if driven else None)


class Gate:
    """Measures every benchmark on both sides, then applies Holm and the confirming runs.

    ``sides`` maps base and head to (a name for messages, the sealed sandbox to run in).
    """

    def __init__(
        self,
        cfg: CIConfig,
        sides: dict[str, tuple[str, Sandbox]],
        say: Callable[[str], None],
        tick: Callable[[BenchmarkDone], None] | None = None,
    ) -> None:
        self.cfg, self.sides, self.say = cfg, sides, say
        self.tick = tick or (lambda _done: None)
        self.family: dict[str, int] = {}
        self.by_name: dict[str, Benchmark] = {}
        #: Benchmarks found to be none when run (the pytest runner's report), with why.
        self.skipped: list[str] = []

    # -- the parameters ------------------------------------------------------------------
    def alpha(self, metric: Metric) -> float:
        return self.cfg.alpha if self.cfg.alpha is not None else ALPHAS[metric]

    def floor(self, b: Benchmark) -> float:
        return b.threshold or self.cfg.threshold

    def timeout(self, b: Benchmark | None, metric: Metric) -> float:
        native = (b.timeout_s if b else None) or self.cfg.timeout_s
        return native * (VALGRIND_SLOWDOWN if metric == "instructions" else 1)

    # -- the whole run -------------------------------------------------------------------
    def planned(self, b: Benchmark) -> list[Metric]:
        """What is measured up front: with ``both``, instruction counts only; wall clock
        then confirms the benchmarks whose counts moved (``confirm_with_wall``)."""
        chosen = metrics(b, self.cfg.metric)
        return ["instructions"] if chosen == ["instructions", "wall"] else chosen

    def run(self, benchmarks: list[Benchmark]) -> list[BenchmarkResult]:
        self.family = {
            m: sum(m in self.planned(b) for b in benchmarks) or 1 for m in ("wall", "instructions")
        }
        first: dict[str, dict[Metric, MetricResult]] = {b.name: {} for b in benchmarks}
        errors: dict[str, str] = {}
        spent = {b.name: 0.0 for b in benchmarks}
        batched = [b for b in benchmarks if b.kind == "file" and "instructions" in self.planned(b)]
        ticked: list[str] = []

        def finished(b: Benchmark) -> None:
            ticked.append(b.name)
            self.tick(
                BenchmarkDone(
                    index=len(ticked), total=len(benchmarks), name=b.name,
                    error=errors.get(b.name), seconds=spent[b.name],
                    metrics=[(m, r.ratio, r.verdict) for m, r in first[b.name].items()],
                )
            )  # fmt: skip

        def counted(b: Benchmark, got: MetricResult | str) -> None:
            if isinstance(got, str):
                errors[b.name] = got
            else:
                first[b.name]["instructions"] = got
            if isinstance(got, str) or self.planned(b) == ["instructions"]:
                finished(b)  # nothing more to measure: say so now, not after the rounds

        if batched:
            self.count_rounds(batched, spent, counted)
        for b in benchmarks:
            if b.name in ticked:
                continue
            started = time.monotonic()
            if b.name not in errors:
                try:
                    for metric in self.planned(b):
                        if metric not in first[b.name]:
                            first[b.name][metric] = self.measure(b, metric)
                except UserError as exc:
                    errors[b.name] = str(exc)
            spent[b.name] += time.monotonic() - started
            finished(b)
        for name, why in list(errors.items()):  # uses the fixture, never calls it: as
            if NOT_CALLED in why:  # pytest-benchmark, which only warns, not one to measure
                self.skipped.append(f"{name}: {NOT_CALLED}")
                del errors[name]
        kept = [b for b in benchmarks if not any(s.startswith(f"{b.name}: ") for s in self.skipped)]
        verdicts = self.judge(kept, first, errors)
        self.confirm_with_wall(kept, verdicts, errors)
        return [self.result(b, verdicts.get(b.name, []), errors.get(b.name)) for b in kept]

    def confirm_with_wall(self, benchmarks, verdicts, errors) -> None:
        """``both``: wall clock for each benchmark whose instruction count regressed (what
        would fail the job), so the report shows the time too; a wall clock that firmly says
        faster makes the verdict inconclusive (``result``). One Holm family: those confirmed.
        An improvement in counts is reported as it is: it fails nothing."""
        moved = [
            b
            for b in benchmarks
            if b.name not in errors
            and metrics(b, self.cfg.metric) == ["instructions", "wall"]
            and any(mv.verdict == "regression" for mv in verdicts[b.name])
        ]
        if not moved:
            return
        self.family["wall"] = len(moved)
        by = {b.name: b for b in moved}
        self.say(f"wall clock: confirming the {len(moved)} benchmarks whose counts regressed")
        walls: dict[str, MetricResult] = {}
        for b in moved:
            try:
                walls[b.name] = self.measure(b, "wall")
            except UserError as exc:
                errors[b.name] = str(exc)
        names = list(walls)
        for name, p_holm in zip(names, holm([walls[n].p_value for n in names]), strict=True):
            res, b = walls[name], by[name]
            mv = MetricVerdict(
                metric="wall", verdict="inconclusive", threshold=self.floor(b),
                alpha=self.alpha("wall"), p_holm=p_holm, result=res,
            )  # fmt: skip
            if res.verdict == "same":
                mv.verdict = "unchanged"
            elif res.verdict in ("faster", "slower") and p_holm < mv.alpha:
                mv.verdict = "regression" if res.verdict == "slower" else "improvement"
            verdicts[name].append(mv)
            self.say(f"{name}: wall {res.ratio:.3f} {mv.verdict}")

    # -- instruction counts, batched -----------------------------------------------------
    def count_rounds(
        self,
        benchmarks: list[Benchmark],
        spent: dict[str, float],
        counted: Callable[[Benchmark, MetricResult | str], None] = lambda _b, _got: None,
    ) -> dict[str, MetricResult | str]:
        """Rounds of one callgrind process per side while any benchmark is undecided; each
        benchmark's result (or error) goes to ``counted`` as soon as it is final.

        Every round counts the same benchmarks in the same order, decided ones included:
        a benchmark's count depends a little on what ran before it in the process (caches,
        the allocator), so a round over fewer benchmarks is no repeat of the first."""
        by_name = {b.name: b for b in benchmarks}
        self.by_name.update(by_name)
        samples = {b.name: ([], []) for b in benchmarks}
        outputs: dict[str, tuple[list, list]] = {b.name: ([], []) for b in benchmarks}
        done: dict[str, MetricResult | str] = {}
        pending = [b.name for b in benchmarks]
        most = CI_INSTRUCTION_PAIRS[1]
        for round_no in range(1, most + 3):  # two spare rounds for steps stopped part-way
            if not pending:
                break
            runnable = [b.name for b in benchmarks if not isinstance(done.get(b.name), str)]
            self.say(
                f"instructions: round {round_no}, {len(runnable)} benchmarks ({len(pending)} "
                "undecided) in one callgrind process per side, base and head side by side"
            )
            started = time.monotonic()
            try:
                with ThreadPoolExecutor(2) as pool:
                    futures = [pool.submit(self.count, side, runnable, by_name) for side in SIDES]
                    got = [f.result() for f in futures]
            except UserError as exc:
                for name in pending:
                    done[name] = str(exc)
                    counted(by_name[name], done[name])
                pending = []
                break
            share = (time.monotonic() - started) / len(pending)
            for name in pending:
                spent[name] += share
            for k, (side, res) in enumerate(zip(SIDES, got, strict=True)):
                for name, why in self.missing(side, res, pending).items():
                    done.setdefault(name, why)
                for name in pending:
                    if name in res.counts and name not in done:
                        samples[name][k].append(float(res.counts[name]))
                        outputs[name][k].append(res.outputs.get(name))
            for name in [n for n in pending if n not in done]:
                decided = self.decide(by_name[name], *samples[name], spent[name], most)
                if decided is not None:
                    decided.outputs = outputs_agree(*outputs[name])
                    done[name] = decided
            for name in [n for n in pending if n in done]:
                counted(by_name[name], done[name])
            pending = [n for n in pending if n not in done]
            self.say(f"instructions: round {round_no} took {time.monotonic() - started:.0f} s")
        for name in pending:  # steps kept stopping: say what we have
            decided = self.decide(by_name[name], *samples[name], float("inf"), 0)
            done[name] = decided or f"benchmark {name}: too few instruction counts"
            counted(by_name[name], done[name])
        return done

    def decide(
        self, b: Benchmark, bs: list[float], hs: list[float], spent: float, most: int
    ) -> MetricResult | None:
        """The comparison once it is final: the same count on both sides after one round,
        constant counts after two, otherwise a conclusive verdict after three, or the most
        rounds, or the budget."""
        n = min(len(bs), len(hs))
        alpha = self.alpha("instructions") / self.family.get("instructions", 1)
        if n == 1 and len(bs) == len(hs) and bs[0] == hs[0]:
            # Two processes, one per side, counted the same to the instruction: that is the
            # repeat that proves the count constant, and the change did not touch it.
            cmp = compare(bs * 2, hs * 2, floor=self.floor(b), alpha=alpha)
            return samples_result(
                "instructions", cmp, bs, hs, list(SIDES), "identical", floor=self.floor(b)
            )
        if n < 2:
            return None
        cmp = compare(bs, hs, floor=self.floor(b), alpha=alpha)
        if cmp.deterministic or cmp.verdict != "inconclusive" and n >= CI_INSTRUCTION_PAIRS[0]:
            stopped = "conclusive"
        elif n >= most:
            stopped = "max_repeats"
        elif spent > self.cfg.budget_s * VALGRIND_SLOWDOWN:  # the budget is in native time
            stopped = "budget"
        else:
            return None
        order = [s for _ in range(n) for s in SIDES]
        return samples_result(
            "instructions", cmp, bs, hs, order, stopped, floor=self.floor(b), region="workload"
        )

    def count(self, side: str, names: list[str], by_name: dict[str, Benchmark]) -> BatchCount:
        """One callgrind process over ``names`` on one side; driven benchmarks sharing a
        runner file (pytest) go in as one target, in one pytest session."""
        targets: list[BatchTarget] = []
        driven: dict[str, BatchTarget] = {}
        for name in names:
            w = workload_of(by_name[name])
            if w.name is None:
                targets.append(BatchTarget(name=name, target=w.target))
            elif w.target in driven:
                (driven[w.target].names or []).append(name)
            else:  # one session (pytest) for all of them: named by its file
                driven[w.target] = BatchTarget(name=w.target, target=w.target, names=[name])
                targets.append(driven[w.target])
        label, sb = self.sides[side]
        step = self.timeout(None, "instructions")
        limits = sb.limits.model_copy(update={"wall_s": step * (len(names) + 2)})
        try:
            return count_batch(
                sb, targets, step_timeout_s=step, warmup=WARMUP, python=self.cfg.python,
                limits=limits,
            )  # fmt: skip
        except ProfileError as exc:
            raise UserError(
                f"counting instructions failed on {label}: {exc.cause}",
                "run one benchmark by hand on that side (--bench NAME --metric wall) and fix it",
            ) from None

    def missing(self, side: str, res: BatchCount, pending: list[str]) -> dict[str, str]:
        """Errors for the pending benchmarks this side's batch did not count."""
        label = self.sides[side][0]
        out = {
            n: f"benchmark {n} failed on {label}: {why}"
            for n, why in res.errors.items()
            if n in pending
        }
        for runner, why in res.errors.items():  # a driven file that failed as a whole
            for n in pending:
                if workload_of(self.by_name[n]).target == runner and n not in res.counts:
                    out.setdefault(n, f"benchmark {n} failed on {label}: {runner}: {why}")
        if res.stuck:
            phase = res.phase or ""
            name = next((phase[len(s) :] for s in _STEPS if phase.startswith(s)), "")
            native = self.cfg.timeout_s
            why = (
                f"{res.stuck} under valgrind (about {VALGRIND_SLOWDOWN}x slower than native, "
                f"so {VALGRIND_SLOWDOWN} x the --timeout of {native:g} s)"
            )
            fix = "give it more time with --timeout, or make the benchmark smaller"
            if name in pending:
                out.setdefault(name, f"benchmark {name} on {label}: {why}. Fix: {fix}")
            elif not phase.startswith("after ") and "exited with code" not in res.stuck:
                # start-up took the time: no benchmark to blame, none was counted
                for n in pending:
                    out.setdefault(n, f"on {label}: {why}. Fix: {fix}, or lighten the load")
            return out  # the others were not reached: the next round counts them
        for n in pending:
            if n not in res.counts and n not in out:
                out[n] = f"benchmark {n} on {label}: its measured call was never reached"
        return out

    # -- one benchmark, one metric, in fresh processes -----------------------------------
    def samplers(self, b: Benchmark, metric: Metric) -> tuple[Sampler, Sampler]:
        made = [
            Sampler(
                label,
                sb,
                workload_of(b),
                timeout_s=self.timeout(b, metric),
                python=self.cfg.python,
                what=f"benchmark {b.name}",
            )  # fmt: skip
            for label, sb in (self.sides["base"], self.sides["head"])
        ]
        return made[0], made[1]

    def measure(self, b: Benchmark, metric: Metric) -> MetricResult:
        if metric == "instructions" and b.kind == "file":  # a confirming re-count
            got = self.count_rounds([b], {b.name: 0.0})[b.name]
            if isinstance(got, str):
                raise UserError(got, "run the benchmark by hand on that side and fix it")
            return got
        pairs = (
            (self.cfg.repeats, self.cfg.max_repeats) if metric == "wall" else CI_INSTRUCTION_PAIRS
        )
        self.say(f"{b.name}: {metric}")
        samplers = self.samplers(b, metric)
        if metric == "wall" and b.kind == "file":
            self.calibrate(*samplers)
        return compare_metric(
            metric, *samplers, floor=self.floor(b),
            alpha=self.alpha(metric) / self.family.get(metric, 1), pairs=pairs,
            budget_s=self.cfg.budget_s,
        )  # fmt: skip

    @staticmethod
    def calibrate(base: Sampler, head: Sampler) -> None:
        """Timed calls per process (as asv's ``number``): enough for ``SAMPLE_S`` of calls,
        whose median is the process's sample, so a microsecond benchmark is not timer noise.
        The same number on both sides, from one probe run of the base."""
        once = base.wall(keep=False)
        base.inner = head.inner = max(1, min(MAX_INNER, int(SAMPLE_S / max(once, 1e-9))))

    # -- judging -------------------------------------------------------------------------
    def judge(self, benchmarks, first, errors) -> dict[str, list[MetricVerdict]]:
        out: dict[str, list[MetricVerdict]] = {b.name: [] for b in benchmarks}
        by_name = {b.name: b for b in benchmarks}
        for metric in ("instructions", "wall"):
            names = [b.name for b in benchmarks if b.name not in errors and metric in first[b.name]]
            adjusted = holm([first[n][metric].p_value for n in names])
            alpha = self.alpha(metric)
            flagged = [
                (by_name[n], first[n][metric])
                for n, p in zip(names, adjusted, strict=True)
                if first[n][metric].verdict in ("faster", "slower") and p < alpha
                and not first[n][metric].deterministic and by_name[n].kind == "file"
            ]  # fmt: skip
            recounted = (
                self.recount([b for b, _ in flagged])
                if metric == "instructions" and flagged and self.cfg.confirm
                else {}
            )
            for name, p_holm in zip(names, adjusted, strict=True):
                b = by_name[name]
                res = first[name][metric]
                mv = MetricVerdict(
                    metric=metric, verdict="inconclusive", threshold=self.floor(b), alpha=alpha,
                    p_holm=p_holm, result=res, confirm=recounted.get(name),
                )  # fmt: skip
                if res.verdict == "same":
                    mv.verdict = "unchanged"
                elif res.verdict in ("faster", "slower") and p_holm < alpha:
                    mv.verdict = self.confirm(b, metric, mv)
                out[name].append(mv)
        return out

    def recount(self, flagged: list[Benchmark]) -> dict[str, MetricResult]:
        """The confirming re-count of every flagged, not constant, instruction comparison:
        fresh rounds for all of them at once (one callgrind process per side per round)."""
        names = ", ".join(b.name for b in flagged[:3]) + (", ..." if len(flagged) > 3 else "")
        self.say(f"instructions: re-counting {len(flagged)} flagged changes to confirm ({names})")
        again = self.count_rounds(flagged, {b.name: 0.0 for b in flagged})
        for why in {got for got in again.values() if isinstance(got, str)}:
            self.say(f"  the confirming count failed: {why}")
        return {n: got for n, got in again.items() if not isinstance(got, str)}

    def confirm(self, b: Benchmark, metric: Metric, mv: MetricVerdict) -> Verdict:
        """A change is called only if a re-run on fresh samples says the same again
        (instruction counts: re-counted together, in ``recount``, before this)."""
        called: Verdict = "regression" if mv.result.verdict == "slower" else "improvement"
        if not self.cfg.confirm or mv.result.deterministic:
            return called  # constant counts on both sides: a re-run would count the same
        if metric == "instructions" and b.kind == "file":
            again = mv.confirm
        else:
            self.say(f"{b.name}: {metric} looks {mv.result.ratio - 1:+.1%}; confirming")
            try:
                again = mv.confirm = self.measure(b, metric)
            except UserError as exc:
                self.say(f"  the confirming run failed: {exc}")
                return "inconclusive"
        return called if again and again.verdict == mv.result.verdict else "inconclusive"

    def result(self, b: Benchmark, found: list[MetricVerdict], error: str | None):
        workload = b.path if b.kind == "file" else b.command
        res = BenchmarkResult(
            name=b.name, origin=b.origin, workload=workload or "", verdict="error", error=error
        )
        res.metrics = found
        if error is None:
            by = {m.metric: m for m in found}
            primary = by.get("instructions") or by["wall"]
            regressed = any(m.verdict == "regression" for m in found)
            res.verdict = "regression" if regressed else primary.verdict
            wall = by.get("wall") if "instructions" in by else None
            if wall and {wall.verdict, primary.verdict} == {"regression", "improvement"}:
                res.verdict = "inconclusive"
                res.note = (
                    f"instruction counts say {primary.verdict} ({primary.result.ratio:.3f}), "
                    f"the wall clock says {wall.verdict} ({wall.result.ratio:.3f})"
                )
        if res.verdict == "regression" and self.cfg.hotspots:
            self.add_hotspots(b, res)
        return res

    def add_hotspots(self, b: Benchmark, res: BenchmarkResult) -> None:
        if b.kind != "file":
            res.hotspots_note = "hotspots need a Python-file workload (setup/workload)"
            return
        limits = Limits(wall_s=self.timeout(b, "wall"))
        reports: dict[str, list[HotspotReport]] = {"base": [], "head": []}
        try:
            for _ in range(HOTSPOT_RUNS):  # interleaved, like the measurements
                for side, got in reports.items():
                    sb = self.sides[side][1]
                    got.append(
                        profile_hotspots(sb, workload_of(b), python=self.cfg.python, limits=limits)
                    )
        except ProfileError as exc:
            res.hotspots_note = f"profiling failed: {exc.cause}"
            return
        res.hotspots = hotspot_diff(reports["base"], reports["head"])
