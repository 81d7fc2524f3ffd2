"""Benchmark a candidate revision against a base: interleaved runs, adaptive repeats.

Two sandboxes are made, one per side. For each metric, base and candidate runs alternate
(AB, BA, AB, ...) in the same session, each repeat a fresh process. After the first
``repeats`` pairs the samples are compared (``profilers.stats``); while the verdict is
``inconclusive``, more pairs are added, until it is conclusive, ``max_repeats`` pairs are
reached, or the metric's time budget runs out. One warm-up run per side is discarded first.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from optimizer.errors import UserError
from optimizer.results import write_text_atomic
from profilers import (
    COPIED_WORKLOAD,
    HotspotReport,
    Protocol,
    Workload,
    install,
    profile_hotspots,
)
from profilers.compare import (
    INSTRUCTION_PAIRS,
    Metric,
    MetricChoice,
    MetricResult,
    Region,
    Sampler,
    compare_metric,
)
from profilers.models import ProtocolName
from profilers.stats import ALPHAS, FLOORS
from sandbox import Backend, Limits, Source, open_sandbox
from sandbox.images import EnvRecipe, image_for
from sandbox.source import file_at, resolve

__all__ = ["BenchConfig", "BenchRecord", "MetricChoice", "MetricResult", "Side", "run_bench"]


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
    pip: list[str] = Field(
        default_factory=list,
        description="Requirements both sides run with, beside [tool.optimizer.ci] pip.",
    )
    region: Region = Field(
        "workload", description="workload: time workload() only; total: import + setup too."
    )
    protocol: ProtocolName = Field(
        "cold",
        description="cold: `inner` calls per process; warm: setup() before each call, "
        "2 warm-up calls, the median of `inner` (10 when 1) timed calls.",
    )

    def timing(self) -> Protocol:
        return Protocol(name=self.protocol, calls=self.inner if self.inner > 1 else 10)

    @model_validator(mode="after")
    def _repeats_fit(self) -> BenchConfig:
        if self.max_repeats is not None and self.max_repeats < self.repeats:
            raise UserError(
                f"--max-repeats {self.max_repeats} is below --repeats {self.repeats}",
                f"pass --max-repeats {self.repeats} or more, or fewer --repeats",
            )
        return self


class Side(BaseModel):
    label: Literal["base", "head"]
    rev: str
    sha: str
    patched: bool = False

    def name(self) -> str:
        extra = " + patch" if self.patched else ""
        return f"{self.label} {self.rev}{extra} ({self.sha[:12]})"


class BenchRecord(BaseModel):
    version: int = 3
    repo: str
    workload: str
    workload_kind: Literal["file", "command"]
    protocol: str = Field("cold", description="How each process was timed, in words.")
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


def _environment(root: Path, cfg: BenchConfig, say: Callable[[str], None]) -> str | None:
    """The image (docker) or virtualenv (local) both sides run in: ``[tool.optimizer.ci]``
    of the base revision (pip, apt, image), the same settings `optimizer ci` reads, plus
    ``--pip``."""
    from optimizer.ci_benchmarks import read_settings

    with tempfile.TemporaryDirectory() as tmp:
        for name in ("pyproject.toml", "optimizer.toml"):
            if (data := file_at(root, cfg.base, name)) is not None:
                (Path(tmp) / name).write_bytes(data)
        settings = read_settings(Path(tmp))
    recipe = EnvRecipe(pip=[*settings.pip, *cfg.pip], apt=settings.apt)
    if recipe.pip or recipe.apt:
        say(f"environment: pip {recipe.pip or '-'}, apt {recipe.apt or '-'}")
    return image_for(recipe, cfg.sandbox, settings.image, log=say)


def _workload_committed(root: Path, label: str, rev: str, path: str, patch: str | None) -> None:
    """A workload file inside the repository is read from each side's tree: it must be
    committed there (a patch that adds it counts for head)."""
    if label == "head" and patch and f"b/{path}" in patch:
        return
    if file_at(root, rev, path) is not None:
        return
    on_disk = (root / path).is_file()
    raise UserError(
        f"the workload file {path} does not exist on {label} {rev}"
        + (" (it is in the working tree, not committed)" if on_disk else ""),
        f"commit it (git add {path} && git commit), or pass a path outside the repository, "
        "which is copied to both sides as it is",
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
    if workload.kind == "file" and file_bytes is None:
        for label, rev in (("base", cfg.base), ("head", head_rev)):
            _workload_committed(root, label, rev, workload.target, cfg.patch)
    sources = {
        "base": Source(repo=root, rev=cfg.base),
        "head": Source(repo=root, rev=head_rev, patch=cfg.patch),
    }
    limits = Limits(wall_s=cfg.timeout_s)
    image = _environment(root, cfg, say)
    with contextlib.ExitStack() as stack:
        runners: dict[str, Sampler] = {}
        sides: dict[str, Side] = {}
        for label, src in sources.items():
            say(f"copying {label} ({src.rev}) into a {cfg.sandbox} sandbox")
            sb = stack.enter_context(open_sandbox(src, cfg.sandbox, limits=limits, image=image))
            side = Side(label=label, rev=src.rev, sha=sb.sha, patched=bool(src.patch))
            sides[label] = side
            target = install(sb, workload, file_bytes)
            sb.seal()  # every run from here on starts from this tree
            runners[label] = Sampler(
                side.name(), sb, target, timeout_s=cfg.timeout_s, inner=cfg.inner,
                python=cfg.python, region=cfg.region, protocol=cfg.timing(),
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
            for label, r in runners.items():
                with r.blame():
                    hotspots[label] = profile_hotspots(
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
            protocol=base.protocol.label(),
            base=sides["base"],
            head=sides["head"],
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
