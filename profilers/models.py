"""Typed inputs and outputs of the profilers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Workload(BaseModel):
    """What to measure: a Python file with ``workload()`` (and optional ``setup()``), or a
    shell command. ``target`` is the file path relative to the work dir, or the command."""

    kind: Literal["file", "command"]
    target: str

    def describe(self) -> str:
        return self.target if self.kind == "command" else f"file {self.target}"


class WallRun(BaseModel):
    """One fresh process: the timed calls of the workload in it, and its peak memory."""

    samples_ns: list[int] = Field(description="Each timed call, in ns (warm-up calls dropped).")
    maxrss_kb: int = Field(description="Peak RSS of the process (or of the command), KiB.")
    maxrss_setup_kb: int = Field(0, description="Peak RSS after setup(), before the workload.")
    python: str = ""

    @property
    def seconds(self) -> float:
        """The repeat's value: the median of its timed calls, in seconds."""
        s = sorted(self.samples_ns)
        n = len(s)
        mid = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
        return mid / 1e9


class InstructionRun(BaseModel):
    """One callgrind run: the instructions executed in the workload region."""

    instructions: int
    aslr_off: bool = Field(description="Whether ASLR was turned off (setarch -R) for the run.")
    python: str = ""


class Hotspot(BaseModel):
    """One function in a cProfile summary."""

    location: str = Field(description="file:line(function)")
    calls: int
    own_s: float
    cum_s: float
    own_share: float = Field(description="Own time over the total profiled time, 0..1.")
    cum_share: float = Field(description="Cumulative time over the total profiled time, 0..1.")


class HotspotReport(BaseModel):
    """The top functions of a cProfile run, and a speedscope profile of it."""

    total_s: float
    top: list[Hotspot]
    speedscope: dict = Field(description="A https://www.speedscope.app file (JSON object).")

    def text(self, limit: int = 15) -> str:
        """A short table for an LLM prompt."""
        lines = [
            f"cProfile of workload(): {self.total_s * 1e3:.1f} ms total",
            "own%  cum%  calls  function",
        ]
        for h in self.top[:limit]:
            lines.append(
                f"{h.own_share * 100:5.1f} {h.cum_share * 100:5.1f} {h.calls:6d}  {h.location}"
            )
        return "\n".join(lines)


class MemoryReport(BaseModel):
    """Peak resident memory of the workload's process, KiB (``ru_maxrss``)."""

    peak_rss_kb: int
    setup_rss_kb: int = Field(0, description="Peak RSS after setup(), before workload().")

    @property
    def workload_rss_kb(self) -> int:
        """How far the workload raised the peak above what setup() left."""
        return max(0, self.peak_rss_kb - self.setup_rss_kb)
