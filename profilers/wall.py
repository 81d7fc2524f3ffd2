"""Wall-clock time of the workload region, one fresh process per repeat.

Every call starts a new process in the sandbox (so nothing the workload caches in memory
survives to the next repeat) and times, with ``perf_counter_ns``, the import of the workload
file, ``setup()``, and ``inner`` calls of ``workload()`` (after ``warmup`` untimed ones).
``region`` says which of them the run's value covers (see ``profilers.compare``):
``total`` (import + setup + workload) or ``workload``. Interpreter start-up is never timed.
A command workload is timed as a whole subprocess.
"""

from __future__ import annotations

from profilers.common import ProfileError, run_harness
from profilers.models import COLD, Protocol, WallRun, Workload
from sandbox import Limits, Sandbox


def measure_wall(
    sb: Sandbox,
    workload: Workload,
    *,
    inner: int = 1,
    warmup: int = 0,
    python: str = "python3",
    limits: Limits | None = None,
    hash_seed: int | None = None,
    region: str = "workload",
    preimport: list[str] | None = None,
    env: dict[str, str] | None = None,
    protocol: Protocol = COLD,
) -> WallRun:
    """Time the workload in one fresh process; the raw timed calls are in ``samples_ns``.

    ``hash_seed`` sets PYTHONHASHSEED: string hashing changes dict and set layouts, and so
    the speed of a process. Give the two runs of a pair the same seed, and each pair its own.
    A ``warm`` protocol (a workload file) sets ``inner`` and ``warmup`` from itself and
    times the ``workload()`` calls only; its first call is in ``first_ns``.
    """
    warm = protocol.name == "warm" and workload.kind == "file"
    if warm:
        inner, warmup, region = protocol.calls, protocol.warmup, "workload"
    env = dict(env or {})
    if hash_seed is not None:
        env["PYTHONHASHSEED"] = str(hash_seed)
    data = run_harness(
        sb, "wall", workload, python=python, limits=limits, env=env, inner=inner,
        warmup=warmup, region=region, preimport=preimport or [], materialize=region == "total",
        protocol=protocol.name if warm else "cold",
    )  # fmt: skip
    try:
        run = WallRun.model_validate({**data, "python": data.get("python", ""), "region": region})
    except ValueError as exc:
        raise ProfileError(f"garbage: malformed wall result ({exc.__class__.__name__})") from None
    if (
        len(run.samples_ns) != inner
        or any(s < 0 for s in run.samples_ns)
        or (warm and run.first_ns is None)
    ):
        raise ProfileError("garbage: the wall result has the wrong number of samples")
    return run
