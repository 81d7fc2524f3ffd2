"""Where `optimizer evaluate`'s jobs run: here, a local pool of pinned workers, or Ray.

Every executor calls :func:`optimizer.evaluate.execute_job` with the same arguments and hands
each result to ``done`` in the driver, which alone writes the evaluation directory.

- ``local`` with one worker runs the jobs in this process, one after another.
- ``local`` with N workers is a pool of N processes, each pinned to its own CPUs (its own
  ``sched_setaffinity`` and the cpuset of every sandbox run it starts), so that workers do not
  share cores and disturb each other's timings. N is capped at the CPUs this process may use.
- ``ray`` submits each job as a Ray task asking for the CPUs of one worker slot (and a GPU for
  kernel tasks where the cluster has GPUs), on a local Ray instance or ``--ray-address``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Any

from optimizer.evaluate import Job, execute_job
from sandbox.errors import UserError

#: A job's arguments after the spec: (job, reference JSON or None).
Work = tuple[Job, dict[str, Any] | None]
Started = Callable[[Job], None]
Done = Callable[[Job, dict[str, Any] | None, str | None], None]  # result, or a crash message


def cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def plan_workers(requested: int) -> tuple[int, list[str | None], str | None]:
    """(workers, each one's cpuset, a warning) for ``requested`` workers on this machine."""
    mine = cpus()
    warning = None
    n = requested
    if requested > len(mine):
        n = len(mine)
        warning = (
            f"--workers {requested} is more than the {len(mine)} CPUs here; using {n}, one "
            "core or more each, so that workers do not share cores and disturb each other's "
            "timings"
        )
    if n <= 1:
        return 1, [None], warning
    per = len(mine) // n
    sets = [",".join(str(c) for c in mine[i * per : (i + 1) * per]) for i in range(n)]
    return n, list(sets), warning


@dataclass
class Executor:
    spec_json: str
    api_key: str | None
    workers: int = 1
    kind: str = "local"
    ray_address: str | None = None
    gpu_tasks: frozenset[str] = frozenset()
    log: str = os.devnull

    def run(self, work: Sequence[Work], started: Started, done: Done) -> None:
        if not work:
            return
        if self.kind == "ray":
            _run_ray(self, work, started, done)
        elif self.workers <= 1:
            for job, ref in work:
                started(job)
                result = execute_job(self.spec_json, self.api_key, asdict(job), ref, None)
                done(job, result, None)
        else:
            _run_pool(self, work, started, done)


# ---- a local pool of pinned processes ---------------------------------------------------

_CPUSET: str | None = None


def _init_worker(slots: Any, log: str) -> None:
    """Each pool process takes one slot: its CPUs, for itself and every sandbox it starts.
    Its stderr goes to the evaluation's ``workers.log``: the terminal is the driver's."""
    global _CPUSET
    _CPUSET = slots.get()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    if _CPUSET:
        os.sched_setaffinity(0, {int(c) for c in _CPUSET.split(",")})
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM to a worker: its runs in flight stop now, and its sandboxes are removed."""
    from sandbox.base import CANCEL

    CANCEL.set()
    raise KeyboardInterrupt


def _pool_job(spec_json: str, api_key: str | None, job: dict, ref: dict | None) -> dict:
    return execute_job(spec_json, api_key, job, ref, _CPUSET)


def _drive(
    work: Sequence[Work],
    n: int,
    submit: Callable[[Job, dict[str, Any] | None], Any],
    wait_any: Callable[[list[Any]], list[Any]],
    outcome: Callable[[Any], dict[str, Any]],
    started: Started,
    done: Done,
) -> None:
    """At most ``n`` jobs in flight; each result to ``done`` as soon as it is there."""
    queue = list(work)
    running: dict[Any, Job] = {}
    while queue or running:
        while queue and len(running) < n:
            job, ref = queue.pop(0)
            started(job)
            running[submit(job, ref)] = job
        for handle in wait_any(list(running)):
            job = running.pop(handle)
            try:
                result = outcome(handle)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # the worker died (killed, out of memory), or Ray failed
                done(job, None, f"the worker failed: {type(exc).__name__}: {str(exc)[:300]}")
            else:
                done(job, result, None)


def _run_pool(ex: Executor, work: Sequence[Work], started: Started, done: Done) -> None:
    n, sets, _ = plan_workers(ex.workers)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        slots = manager.Queue()
        for cpuset in sets:
            slots.put(cpuset)
        pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker,
                                   initargs=(slots, ex.log))  # fmt: skip
        _run_in(pool, ex, n, work, started, done)


def _run_in(
    pool: ProcessPoolExecutor, ex: Executor, n: int, work: Sequence[Work], started: Started,
    done: Done,
) -> None:  # fmt: skip
    try:
        _drive(
            work, n,
            lambda job, ref: pool.submit(_pool_job, ex.spec_json, ex.api_key, asdict(job), ref),
            lambda futs: list(wait(futs, return_when=FIRST_COMPLETED)[0]),
            lambda fut: fut.result(), started, done,
        )  # fmt: skip
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)


def _stop(pool: ProcessPoolExecutor, grace_s: float = 30.0) -> None:
    """Interrupted: SIGTERM every worker (each removes its sandboxes as it stops), then
    SIGKILL what is still there after ``grace_s``."""
    procs = list(getattr(pool, "_processes", {}).values())
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()


# ---- Ray ----------------------------------------------------------------------------------


def _reachable(address: str) -> None:
    """A one-line error now, rather than Ray retrying an unreachable cluster for minutes."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    fix = "pass --ray-address HOST:6379 (or ray://HOST:10001) of a running cluster"
    if not host or not port.isdigit():
        raise UserError(f"--ray-address {address!r} is not HOST:PORT", fix)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UserError(f"no Ray cluster answers at {hostport} ({exc.strerror or exc})",
                        fix) from None  # fmt: skip


def check_ray(address: str | None) -> Any:
    """The ray module, and the cluster at ``address`` reachable; one-line errors else."""
    try:
        import ray
    except ImportError:
        raise UserError(
            "--executor ray needs Ray, which is not installed",
            'install the extra: pip install -e ".[ray]"',
        ) from None
    if address:
        _reachable(address)
    return ray


def _run_ray(ex: Executor, work: Sequence[Work], started: Started, done: Done) -> None:
    ray = check_ray(ex.ray_address)
    mine = cpus()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if ex.ray_address:
            kwargs["address"] = ex.ray_address
        else:
            kwargs["num_cpus"] = len(mine)
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = ex.ray_address or "a local instance"
            raise UserError(
                f"cannot start Ray on {where}: {str(exc).splitlines()[0][:200]}",
                "check --ray-address (HOST:6379 or ray://HOST:10001), or drop it for a local one",
            ) from None
    resources = ray.cluster_resources()
    n = max(1, ex.workers)
    per = max(1, int(resources.get("CPU", len(mine))) // n)
    gpus = resources.get("GPU", 0) > 0
    remote = ray.remote(max_retries=0)(execute_job)

    def submit(job: Job, ref: dict[str, Any] | None) -> Any:
        gpu = 1 if gpus and job.task_id in ex.gpu_tasks else 0
        call = remote.options(num_cpus=per, num_gpus=gpu)
        return call.remote(ex.spec_json, ex.api_key, asdict(job), ref, None)

    in_flight: list[Any] = []

    def wait_any(refs: list[Any]) -> list[Any]:
        in_flight[:] = refs
        return ray.wait(refs, num_returns=1)[0]

    try:
        _drive(work, n, submit, wait_any, ray.get, started, done)
    finally:
        for ref_ in in_flight:
            ray.cancel(ref_, force=True)
