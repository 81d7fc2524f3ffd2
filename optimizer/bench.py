"""Benchmark a candidate revision against a base: interleaved runs, adaptive repeats.

Two sandboxes are made, one per side. For each metric, base and candidate runs alternate
(AB, BA, AB, ...) in the same session, each repeat a fresh process. After the first
``repeats`` pairs the samples are compared (``optimizer.stats``); while the verdict is
``inconclusive``, more pairs are added, until it is conclusive, ``max_repeats`` pairs are
reached, or the metric's time budget runs out. One warm-up run per side is discarded first.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from optimizer.errors import UserError
from optimizer.results import write_text_atomic
from optimizer.stats import ALPHAS, FLOORS, adaptive
from profilers import (
    COPIED_WORKLOAD,
    HotspotReport,
    ProfileError,
    Workload,
    install,
    measure_instructions,
    measure_wall,
    profile_hotspots,
)
from sandbox import Backend, Limits, Sandbox, Source, open_sandbox
from sandbox.source import resolve

Metric = Literal["wall", "instructions"]
MetricChoice = Literal["wall", "instructions", "both"]
UNITS = {"wall": "s", "instructions": "instructions"}
#: Pairs to start with, and the most pairs, for instruction counts (near-deterministic).
INSTRUCTION_PAIRS = (3, 6)


class BenchConfig(BaseModel):
    """What `optimizer bench` measures, and how hard it tries."""

    repo: Path
    workload: str = Field(description="A shell command, or a .py file with workload().")
    base: str = "HEAD"
    head: str | None = Field(None, description="Candidate revision; None: base (+ patch).")
    patch: str | None = Field(None, description="Unified diff applied on top of base.")
    metrics: list[Metric] = Field(default_factory=lambda: ["wall", "instructions"])
    repeats: int = Field(10, ge=2, description="Wall-clock pairs to start with.")
    max_repeats: int | None = Field(None, description="Most wall-clock pairs (default 20x).")
    budget_s: float = Field(120.0, gt=0, description="Time budget per metric for more pairs.")
    timeout_s: float = Field(120.0, gt=0, description="Wall-clock limit of one run.")
    sandbox: Backend = "auto"
    floors: dict[str, float] = Field(default_factory=lambda: dict(FLOORS))
    inner: int = Field(1, ge=1, description="Timed workload() calls per process.")
    python: str = "python3"
    hotspots: bool = Field(False, description="Also profile each side once with cProfile.")


class Side(BaseModel):
    label: Literal["base", "head"]
    rev: str
    sha: str
    patched: bool = False

    def name(self) -> str:
        extra = " + patch" if self.patched else ""
        return f"{self.label} {self.rev}{extra} ({self.sha[:12]})"


class MetricResult(BaseModel):
    metric: Metric
    unit: str
    verdict: str
    ratio: float = Field(description="Candidate over base (medians); > 1 is slower.")
    ci: tuple[float, float]
    p_value: float
    p_slower: float
    p_faster: float
    p_mwu: float | None = Field(None, description="One-sided Mann-Whitney U p, for reference.")
    floor: float
    pairs: int
    stopped: str = Field(description="Why repeats stopped: conclusive, max_repeats, budget.")
    base_median: float
    head_median: float
    cv_base: float
    cv_head: float
    base_samples: list[float]
    head_samples: list[float]
    order: list[str] = Field(description="The run order, e.g. ['base', 'head', 'head', ...].")
    base_raw_ns: list[list[int]] | None = Field(None, description="Wall: timed calls per run.")
    head_raw_ns: list[list[int]] | None = None


class BenchRecord(BaseModel):
    version: int = 1
    repo: str
    workload: str
    workload_kind: Literal["file", "command"]
    base: Side
    head: Side
    backend: str
    environment: dict[str, str | int | float | bool | None]
    metrics: list[MetricResult]
    memory_kb: dict[str, int] | None = Field(None, description="Median peak RSS per side.")
    hotspots: dict[str, HotspotReport] | None = Field(None, description="cProfile per side.")
    started_at: str
    elapsed_s: float


def resolve_workload(root: Path, spec: str) -> tuple[Workload, bytes | None]:
    """A ``.py`` path is a workload file; anything else is a shell command.

    A file inside the repository is read from each revision's tree (by its path relative to
    the repository root); a file outside is copied into both sandboxes identically.
    """
    spec = spec.strip()
    if not spec:
        raise UserError("the workload is empty", "pass --workload 'COMMAND' or --workload FILE.py")
    if not (spec.endswith(".py") and not any(c.isspace() for c in spec)):
        return Workload(kind="command", target=spec), None
    path = Path(spec).expanduser()
    here = path if path.is_absolute() else Path.cwd() / path
    if here.is_file():
        here = here.resolve()
        with contextlib.suppress(ValueError):
            return Workload(kind="file", target=here.relative_to(root.resolve()).as_posix()), None
        return Workload(kind="file", target=COPIED_WORKLOAD), here.read_bytes()
    if path.is_absolute():
        raise UserError(f"workload file {path} does not exist", "pass an existing .py file")
    return Workload(kind="file", target=path.as_posix()), None


def machine_info(
    backend: str, sandbox_python: str = ""
) -> dict[str, str | int | float | bool | None]:
    """CPU model, cores, load, Python versions, backend: what the numbers depend on."""
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    valgrind = None
    if shutil.which("valgrind"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            valgrind = subprocess.run(
                ["valgrind", "--version"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "cpus_allowed": len(os.sched_getaffinity(0)),
        "load_1m": round(load, 2) if load is not None else None,
        "os": platform.platform(),
        "host_python": platform.python_version(),
        "sandbox_python": sandbox_python,
        "backend": backend,
        "valgrind_host": valgrind,
    }


class SideRunner:
    """Runs one side's measurements and turns failures into one-line user errors."""

    def __init__(
        self,
        side: Side,
        sb: Sandbox,
        workload: Workload,
        *,
        timeout_s: float = 120.0,
        inner: int = 1,
        python: str = "python3",
        what: str = "the workload",
    ) -> None:
        self.side, self.sb, self.workload = side, sb, workload
        self.inner, self.python, self.what = inner, python, what
        self.limits = Limits(wall_s=timeout_s)
        self.python_version = ""
        self.rss: list[int] = []
        self.raw: list[list[int]] = []

    @contextlib.contextmanager
    def blame(self):
        try:
            yield
        except ProfileError as exc:
            fix = (
                "give it more time with --timeout, or make the workload smaller"
                if "timeout" in exc.cause.split(":")[0]
                else f"run the workload by hand at {self.side.sha[:12]} and fix it"
            )
            raise UserError(f"{self.what} failed on {self.side.name()}: {exc.cause}", fix) from None

    def wall(self, keep: bool = True) -> float:
        with self.blame():
            run = measure_wall(
                self.sb, self.workload, inner=self.inner, python=self.python,
                limits=self.limits, hash_seed=len(self.raw),  # the i-th runs of a pair share it
            )  # fmt: skip
        self.python_version = run.python
        if keep:
            self.rss.append(run.maxrss_kb)
            self.raw.append(run.samples_ns)
        return run.seconds

    def instructions(self) -> float:
        with self.blame():
            run = measure_instructions(
                self.sb, self.workload, python=self.python, limits=self.limits
            )
        self.python_version = run.python
        return float(run.instructions)


def compare_metric(
    metric: Metric,
    base: SideRunner,
    head: SideRunner,
    *,
    floor: float,
    alpha: float,
    pairs: tuple[int, int],
    budget_s: float,
    say: Callable[[str], None] = lambda _msg: None,
) -> MetricResult:
    """Interleave one metric's runs of both sides (adaptive pairs) and compare them."""
    if metric == "wall":
        say("wall clock: warm-up run per side (discarded)")
        base.raw.clear()  # a pair's index is its hash seed
        head.raw.clear()
        base.wall(keep=False)
        head.wall(keep=False)
        mb, mh = base.wall, head.wall
    else:
        mb, mh = base.instructions, head.instructions
    start, most = pairs
    say(f"{metric}: {start} to {most} interleaved pairs")
    cmp, bs, hs, order, stopped = adaptive(
        mb, mh, floor=floor, start=start, most=max(start, most), budget_s=budget_s,
        parallel=metric == "instructions", alpha=alpha, paired=metric == "wall",
    )  # fmt: skip
    return MetricResult(
        metric=metric,
        unit=UNITS[metric],
        verdict=cmp.verdict.value,
        ratio=cmp.ratio,
        ci=cmp.ci,
        p_value=cmp.p_value,
        p_slower=cmp.p_slower,
        p_faster=cmp.p_faster,
        p_mwu=cmp.p_mwu,
        floor=floor,
        pairs=min(len(bs), len(hs)),
        stopped=stopped,
        base_median=cmp.base_median,
        head_median=cmp.head_median,
        cv_base=cmp.cv_base,
        cv_head=cmp.cv_head,
        base_samples=bs,
        head_samples=hs,
        order=order,
        base_raw_ns=list(base.raw) if metric == "wall" else None,
        head_raw_ns=list(head.raw) if metric == "wall" else None,
    )


def run_bench(cfg: BenchConfig, progress: Callable[[str], None] | None = None) -> BenchRecord:
    """Measure base and candidate, interleaved, and compare every requested metric."""
    say = progress or (lambda _msg: None)
    if cfg.head is not None and cfg.patch is not None:
        raise UserError("--head and --patch were both given", "pass one of them, not both")
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    root, _ = resolve(Source(repo=cfg.repo, rev=cfg.base))
    workload, file_bytes = resolve_workload(root, cfg.workload)
    head_rev = cfg.head or cfg.base
    sources = {
        "base": Source(repo=root, rev=cfg.base),
        "head": Source(repo=root, rev=head_rev, patch=cfg.patch),
    }
    limits = Limits(wall_s=cfg.timeout_s)
    with contextlib.ExitStack() as stack:
        runners: dict[str, SideRunner] = {}
        for label, src in sources.items():
            say(f"copying {label} ({src.rev}) into a {cfg.sandbox} sandbox")
            sb = stack.enter_context(open_sandbox(src, cfg.sandbox, limits=limits))
            side = Side(label=label, rev=src.rev, sha=sb.sha, patched=bool(src.patch))
            runners[label] = SideRunner(
                side, sb, install(sb, workload, file_bytes), timeout_s=cfg.timeout_s,
                inner=cfg.inner, python=cfg.python,
            )  # fmt: skip
        base, head = runners["base"], runners["head"]
        backend = base.sb.backend
        results: list[MetricResult] = []
        for metric in cfg.metrics:
            pairs = (
                (cfg.repeats, cfg.max_repeats or 20 * cfg.repeats)
                if metric == "wall"
                else INSTRUCTION_PAIRS
            )
            floor = cfg.floors.get(metric, FLOORS[metric])
            results.append(
                compare_metric(
                    metric,
                    base,
                    head,
                    floor=floor,
                    alpha=ALPHAS[metric],
                    pairs=pairs,
                    budget_s=cfg.budget_s,
                    say=say,
                )
            )
        hotspots = None
        if cfg.hotspots and workload.kind == "file":
            say("hotspots: one cProfile run per side")
            hotspots = {}
            for r in (base, head):
                with r.blame():
                    hotspots[r.side.label] = profile_hotspots(
                        r.sb, r.workload, python=cfg.python, limits=r.limits
                    )
        memory = None
        if base.rss and head.rss:
            memory = {"base": sorted(base.rss)[len(base.rss) // 2]}
            memory["head"] = sorted(head.rss)[len(head.rss) // 2]
        return BenchRecord(
            repo=str(root),
            workload=workload.target if file_bytes is None else cfg.workload,
            workload_kind=workload.kind,
            base=base.side,
            head=head.side,
            backend=backend,
            environment=machine_info(backend, base.python_version),
            metrics=results,
            memory_kb=memory,
            hotspots=hotspots,
            started_at=started_at,
            elapsed_s=round(time.monotonic() - started, 3),
        )
    raise AssertionError("unreachable")  # pragma: no cover


def write_record(record: BenchRecord, path: Path) -> None:
    """Write the record as JSON atomically (a temp file in the same folder, then rename)."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, record.model_dump_json(indent=2) + "\n")
