"""Peak memory of the workload: ``ru_maxrss`` of the harness process (or of the command)."""

from __future__ import annotations

from profilers.models import MemoryReport, WallRun, Workload
from profilers.wall import measure_wall
from sandbox import Limits, Sandbox


def from_wall(run: WallRun) -> MemoryReport:
    """The memory figures a wall-clock run already carries."""
    return MemoryReport(peak_rss_kb=run.maxrss_kb, setup_rss_kb=run.maxrss_setup_kb)


def measure_memory(
    sb: Sandbox,
    workload: Workload,
    *,
    python: str = "python3",
    limits: Limits | None = None,
    env: dict[str, str] | None = None,
) -> MemoryReport:
    """Peak RSS (KiB) of one fresh process that runs setup() and workload() once."""
    return from_wall(measure_wall(sb, workload, python=python, limits=limits, env=env))
