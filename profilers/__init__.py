"""Measurement: wall clock, instruction counts, hotspots, memory and GPU time.

Each profiler writes a small stdlib-only harness (``profilers/harness.py``) into a sandbox
copy under ``.optimizer/``, runs it in a fresh process per repeat, and reads its result from
a JSON file the harness writes (never from the workload's stdout).

This package never imports ``optimizer``; failures raise :class:`ProfileError`.
"""

from profilers.common import COPIED_WORKLOAD, ProfileError, install
from profilers.hotspots import profile_hotspots
from profilers.instructions import measure_instructions
from profilers.memory import measure_memory
from profilers.models import (
    COLD,
    Hotspot,
    HotspotReport,
    InstructionRun,
    MemoryReport,
    Protocol,
    WallRun,
    Workload,
)
from profilers.wall import measure_wall

__all__ = [
    "COPIED_WORKLOAD",
    "Hotspot",
    "HotspotReport",
    "InstructionRun",
    "MemoryReport",
    "ProfileError",
    "COLD",
    "Protocol",
    "WallRun",
    "Workload",
    "install",
    "measure_instructions",
    "measure_memory",
    "measure_wall",
    "profile_hotspots",
]
