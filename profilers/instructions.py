"""Instruction counts of the workload region, with valgrind callgrind.

The harness runs itself under ``valgrind --tool=callgrind --dump-before=getpriority`` with
``PYTHONHASHSEED=0`` and, where the kernel allows it (``setarch -R``; docker's seccomp
profile does not), ASLR off. It calls ``os.getpriority()`` right before the region and right
after it, so the second of exactly two dumps holds the region (plus a constant few thousand
instructions for the calls); a workload that calls ``getpriority`` itself makes a third
dump and is refused, so it cannot cut the count short.
A command workload is counted whole (``--trace-children=yes``, summed over processes).

Counts are deterministic: the same code gives the same count (CV well below 1e-6), so a
3% change in work reads as 3%. Callgrind runs about 30x slower than native: keep the
workload small. Counts miss I/O waits, threads and cache effects; confirm with wall time.
"""

from __future__ import annotations

from profilers.common import ProfileError, run_harness
from profilers.models import InstructionRun, Workload
from sandbox import Limits, Sandbox


def measure_instructions(
    sb: Sandbox,
    workload: Workload,
    *,
    python: str = "python3",
    limits: Limits | None = None,
    region: str = "workload",
    preimport: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> InstructionRun:
    """Count the instructions of one run of the workload region (``total``: import + setup +
    workload; ``workload``: the call alone)."""
    data = run_harness(
        sb, "instructions", workload, python=python, limits=limits, env=env, region=region,
        preimport=preimport or [], materialize=region == "total",
    )  # fmt: skip
    count = data.get("instructions")
    if not isinstance(count, int) or count <= 0:
        raise ProfileError("garbage: callgrind counted no instructions in the workload region")
    output = data.get("output")
    return InstructionRun(
        instructions=count,
        output=output if isinstance(output, dict) else None,
        aslr_off=bool(data.get("aslr_off")),
        python=str(data.get("python", "")),
    )
