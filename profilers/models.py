"""Typed inputs and outputs of the profilers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Workload(BaseModel):
    """What to measure: a Python file with ``workload()`` (and optional ``setup()``), or a
    shell command. ``target`` is the file path relative to the work dir, or the command."""

    kind: Literal["file", "command"]
    target: str
    name: str | None = Field(
        None, description="For a driven file (drive(region)): the region to measure."
    )

    def describe(self) -> str:
        return self.target if self.kind == "command" else f"file {self.target}"


ProtocolName = Literal["cold", "warm"]


class Protocol(BaseModel):
    """How each fresh process times the workload.

    ``cold``: one call per fresh process (with its one-time costs). ``warm``: ``setup()``,
    ``warmup`` untimed calls (the first of them timed alone, for the caching check), then
    ``calls`` timed calls, each after a fresh ``setup()`` with the code under test's
    ``lru_cache``s cleared; the process's value is their median (steady state).
    """

    name: ProtocolName = "cold"
    warmup: int = Field(2, ge=1, le=1000, description="Warm: untimed calls before the timed.")
    calls: int = Field(10, ge=1, le=10000, description="Warm: timed calls per process.")

    def label(self) -> str:
        """``cold``, or ``warm (median of 10 calls after 2 warm-up)``."""
        if self.name == "cold":
            return "cold"
        return f"warm (median of {self.calls} calls after {self.warmup} warm-up)"

    def rule(self) -> str:
        if self.name == "cold":
            return "cold: one call per fresh process"
        return (
            f"warm: in each fresh process, setup() and {self.warmup} untimed warm-up call(s), "
            f"then the median of {self.calls} timed workload() calls, each after a fresh "
            "setup() with the code under test's lru_caches cleared"
        )


COLD = Protocol()


class WallRun(BaseModel):
    """One fresh process: the timed import, setup and calls of the workload, and its memory."""

    samples_ns: list[int] = Field(description="Each timed call, in ns (warm-up calls dropped).")
    import_ns: int = Field(0, ge=0, description="Importing the workload file (and its code).")
    setup_ns: int = Field(0, ge=0, description="The workload's setup().")
    region: str = Field("workload", description="total (import + setup + calls) or workload.")
    process_s: float = Field(0.0, description="The whole process, by the host's clock.")
    output: dict | None = Field(None, description="A summary of the result (harness.summarize).")
    maxrss_kb: int = Field(description="Peak RSS of the process (or of the command), KiB.")
    maxrss_setup_kb: int = Field(0, description="Peak RSS after setup(), before the workload.")
    first_ns: int | None = Field(None, ge=0, description="Warm: the first call, timed alone.")
    caches: list[str] = Field(default_factory=list, description="Warm: lru_caches cleared.")
    python: str = ""

    @property
    def cold_s(self) -> float | None:
        """Warm: this process's cold value (import + setup + the first call), in seconds."""
        if self.first_ns is None:
            return None
        return (self.import_ns + self.setup_ns + self.first_ns) / 1e9

    @property
    def workload_s(self) -> float:
        """The median of the timed workload() calls, in seconds."""
        s = sorted(self.samples_ns)
        n = len(s)
        mid = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
        return mid / 1e9

    @property
    def seconds(self) -> float:
        """The repeat's value: the workload calls' median, plus import and setup when the
        region is ``total``."""
        extra = (self.import_ns + self.setup_ns) / 1e9 if self.region == "total" else 0.0
        return self.workload_s + extra

    def parts(self) -> dict[str, float]:
        """Import, setup and workload seconds of this run."""
        return {
            "import_s": self.import_ns / 1e9,
            "setup_s": self.setup_ns / 1e9,
            "workload_s": self.workload_s,
        }


class InstructionRun(BaseModel):
    """One callgrind run: the instructions executed in the workload region."""

    instructions: int
    first_instructions: int | None = Field(None, description="Warm: the first call's count.")
    output: dict | None = Field(None, description="A summary of the result (harness.summarize).")
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
