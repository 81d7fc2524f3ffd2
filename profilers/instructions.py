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

from pydantic import BaseModel, Field

from profilers.common import ProfileError, run_harness
from profilers.models import COLD, InstructionRun, Protocol, Workload
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
    protocol: Protocol = COLD,
) -> InstructionRun:
    """Count the instructions of one run of the workload region (``total``: import + setup +
    workload; ``workload``: the call alone). Under a ``warm`` protocol the counted call is
    the one after the warm-up calls (each after a fresh ``setup()`` with caches cleared), and
    the first call's count is kept beside it."""
    warm = protocol.name == "warm" and workload.kind == "file"
    data = run_harness(
        sb, "instructions", workload, python=python, limits=limits, env=env,
        region="workload" if warm else region, preimport=preimport or [],
        materialize=region == "total" and not warm, protocol=protocol.name if warm else "cold",
        warmup=protocol.warmup,
    )  # fmt: skip
    count = data.get("instructions")
    if not isinstance(count, int) or count <= 0:
        raise ProfileError("garbage: callgrind counted no instructions in the workload region")
    output = data.get("output")
    return InstructionRun(
        instructions=count,
        first_instructions=first
        if isinstance(first := data.get("first_instructions"), int)
        else None,
        output=output if isinstance(output, dict) else None,
        aslr_off=bool(data.get("aslr_off")),
        python=str(data.get("python", "")),
    )


#: How much slower a run is under callgrind than natively (for limits and messages).
VALGRIND_SLOWDOWN = 30


class BatchTarget(BaseModel):
    """A workload file of a batch; a driven one measures ``names`` (None: all it marks)."""

    name: str
    target: str
    names: list[str] | None = None


class BatchCount(BaseModel):
    """One callgrind process over many workload files: each region's count, or its error."""

    counts: dict[str, int] = Field(default_factory=dict)
    outputs: dict[str, dict | None] = Field(default_factory=dict)
    errors: dict[str, str] = Field(default_factory=dict)
    stuck: str | None = Field(None, description="The step the watchdog stopped, or a crash.")
    phase: str | None = Field(None, description="The step it was in when it stopped.")
    aslr_off: bool = False
    python: str = ""


def count_batch(
    sb: Sandbox,
    targets: list[BatchTarget],
    *,
    step_timeout_s: float,
    warmup: int = 0,
    python: str = "python3",
    limits: Limits | None = None,
    env: dict[str, str] | None = None,
    toggle: bool = True,
) -> BatchCount:
    """Count the ``workload()`` region of each target in one callgrind process.

    A driven file (``drive(region)``, as the pytest-benchmark runner is) reports the regions
    it marks under their own names. A step (start-up, an import, a setup, a region) that runs
    past ``step_timeout_s`` stops the process; what was counted before it is kept, and
    ``stuck`` names the step. ``warmup`` untimed calls precede each counted one.
    ``toggle=False`` keeps callgrind's instrumentation on throughout (the same counts,
    slower; see the harness's ``mode_batch``).
    """
    data = run_harness(
        sb, "batch", Workload(kind="file", target=targets[0].target if targets else ""),
        python=python, limits=limits, env=env, step_timeout_s=step_timeout_s, warmup=warmup,
        toggle=toggle, targets=[t.model_dump(exclude_none=True) for t in targets],
    )  # fmt: skip
    try:
        return BatchCount.model_validate({**data, "python": str(data.get("python", ""))})
    except ValueError as exc:
        raise ProfileError(f"garbage: malformed batch result ({exc.__class__.__name__})") from None
