"""The kernel judge: ``grade_kernel``, the grader of ``kind = "kernel"`` tasks.

The steps, in order; the first that fails ends the grade:

1. the patch may change one file, the task's ``kernel.candidate`` (``model_new.py``), and it
   must apply (``rejected_protected`` / ``failed_apply``);
2. static checks on that file (:mod:`kernels.static_checks`): no call of the operator being
   replaced, no try/except fallback, no threads, streams, timer patching, dynamic code or
   state kept between calls (``rejected_guard``);
3. the *reference* process, in a sandbox of the base's tree (no candidate code), makes every
   case's inputs from seeds drawn now and runs ``Model``: ``trials`` rounds x every shape x
   every distribution (``kernels/child.py``);
4. the *candidate* process, in a sandbox of the patched tree, gets only the inputs; each
   call's outputs are poisoned first; it writes its outputs and its inputs after the call;
5. the *verify* process, in the base's sandbox again, compares them with the expected
   outputs (``allclose`` at the dtype policy's tolerances, NaN/inf where the reference has
   none fails) and the inputs with the pristine ones (``failed_equivalence``); the candidate
   process's own report (the torch ops each call ran, its Triton launches, replaced timer
   functions, threads) is checked too: a forbidden op, a non-glue op, no launch at all;
6. on CUDA, both sides are timed with ``triton.testing.do_bench`` (median, L2 flushed, the
   next of several fresh input sets per call), the kernel against eager PyTorch and against
   ``torch.compile``; without a GPU the kernels ran under ``TRITON_INTERPRET=1`` and times
   would be meaningless, so none is reported and the grade says why.

Expected outputs never exist in the candidate's process, and every result travels through
files the harness collects, never stdout.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from pathlib import Path

from kernels import static_checks
from profilers import stats
from sandbox import Limits, Sandbox, Source, open_sandbox
from sandbox.errors import PatchError, SandboxError
from sandbox.gpu import docker_gpu_problem, host_has_gpu
from sandbox.images import EnvRecipe, image_for
from tasks.grade import (
    Candidate,
    Grade,
    GradeOptions,
    GradeStatus,
    KernelReport,
    KernelTiming,
    Measurement,
    Progress,
)
from tasks.guard import touched_paths
from tasks.model import KernelSpec, Task
from tasks.source import task_source

DIR = ".optimizer/kernel"
OUT = f"{DIR}/out"
CHILD = (Path(__file__).parent / "child.py").read_bytes()
#: What the docker image of a kernel task installs when its setup.pip names nothing.
KERNEL_PIP = ["torch==2.13.0", "triton", "numpy"]
#: Speedups above this are flagged for a human to review (harness-defenses: side streams).
REVIEW_SPEEDUP = 10.0
#: do_bench settings (milliseconds) and the timing pool: fresh input sets cycled per call.
TIMING = {"warmup_ms": 25, "rep_ms": 100, "rounds": 5, "host_calls": 20}
POOL = 4
NO_TIMING = (
    "no CUDA device: the kernels ran under TRITON_INTERPRET=1, Triton's CPU interpreter, which "
    "executes each program instance in Python; its times say nothing about GPU speed, so "
    "correctness was checked and no speedup is reported (grade on a host with an NVIDIA GPU "
    "to time it)"
)
#: aten ops a "glue" forward may run besides its kernels: allocation, views, copies, casts.
GLUE = frozenset(
    [
        "empty",
        "empty_like",
        "empty_strided",
        "new_empty",
        "new_empty_strided",
        "zeros",
        "zeros_like",
        "new_zeros",
        "ones",
        "ones_like",
        "full",
        "full_like",
        "new_full",
        "fill_",
        "zero_",
        "copy_",
        "clone",
        "contiguous",
        "set_",
        "view",
        "_unsafe_view",
        "reshape",
        "_reshape_alias",
        "expand",
        "as_strided",
        "t",
        "transpose",
        "permute",
        "unsqueeze",
        "squeeze",
        "select",
        "slice",
        "narrow",
        "detach",
        "alias",
        "lift_fresh",
        "lift_fresh_copy",
        "_to_copy",
        "to",
        "unbind",
        "split",
        "flatten",
        "resize_",
        "is_same_size",
    ]
)
RUN_ENV = {"PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}


def grade_kernel(
    task: Task, candidate: Candidate, opts: GradeOptions, result: Grade, say: Progress
) -> None:
    spec = task.kernel
    assert spec is not None  # the task model requires it for kernel tasks
    if _refused(spec, candidate.patch, result):
        return
    base_src = task_source(task)
    gpus = host_has_gpu()
    backend = _backend(opts.backend)
    if gpus and backend == "docker" and (problem := docker_gpu_problem()):
        raise SandboxError(problem.split(": install")[0], "install" + problem.split(": install")[1])
    image = opts.image or task.setup.image or _image(task, backend)
    limits = Limits(memory_mb=max(task.limits.memory_mb, 4096), pids=task.limits.pids,
                    wall_s=task.limits.workload_s, gpus=gpus)  # fmt: skip
    if opts.cpuset:
        limits = limits.model_copy(update={"cpuset": opts.cpuset})
    env = task.run_env(RUN_ENV)
    cand_src = Source(repo=base_src.repo, rev=base_src.rev, patch=candidate.patch or None)
    with contextlib.ExitStack() as stack:
        try:
            cand = stack.enter_context(open_sandbox(cand_src, backend, limits=limits, image=image))
        except PatchError as exc:
            result.fail(GradeStatus.FAILED_APPLY, exc.problem, str(exc))
            return
        result.applied = True
        say("applied")
        source = _read(cand, spec.candidate)
        if source is None:
            result.fail(GradeStatus.FAILED_EQUIVALENCE,
                        f"there is no {spec.candidate}: the kernel must define "
                        f"{spec.new_entry} there")  # fmt: skip
            return
        findings = static_checks.check_sources({spec.candidate: source}, spec.forbid)
        if findings:
            result.guard = [str(f) for f in findings]
            result.fail(GradeStatus.REJECTED_GUARD, static_checks.refusal(findings))
            return
        say("static checks: clean")
        base = stack.enter_context(open_sandbox(base_src, backend, limits=limits, image=image))
        for sb in (base, cand):
            sb.seal()
        job = _job(spec, gpu=bool(gpus), time=opts.measure and bool(gpus))
        ref = _run(base, "reference", job, {}, env)
        if ref is None or any(f"{OUT}/{n}" not in ref for n in ("inputs.pt", "expected.pt")):
            _harness_failed(result, "the reference Model", ref)
            return
        info = json.loads(ref[f"{OUT}/ref.json"])
        job["device"] = "cuda" if info["device"] != "cpu" else "cpu"
        job["outputs"] = info["outputs"]
        job["cases"] = [job["cases"][i] for i in info.get("kept", range(len(job["cases"])))]
        for shape, why in (info.get("dropped") or {}).items():
            say(f"shape {shape} skipped: the reference itself fails on it ({why[:120]})")
            result.artifacts.setdefault("skipped_shapes", "")
            result.artifacts["skipped_shapes"] += f"{shape}: {why}\n"
        if not any(not c.get("timed") for c in job["cases"]):
            result.fail(GradeStatus.ERROR, "the reference Model fails on every declared shape",
                        result.artifacts.get("skipped_shapes", ""))  # fmt: skip
            return
        inputs = {f"{DIR}/inputs.pt": ref[f"{OUT}/inputs.pt"]}
        say(
            f"reference: {spec.trials} trials x {_shape_count(job)} shapes x "
            f"{len(spec.distributions)} distributions on {info['device']}"
        )
        got = _run(cand, "candidate", job, inputs, env)
        if got is None or f"{OUT}/outputs.pt" not in got:
            tail = (got or {}).get("stderr", b"").decode(errors="replace")
            result.fail(GradeStatus.ERROR, "the kernel's process died before writing its "
                        "outputs (a crash, an out-of-bounds write, or a limit)", tail)  # fmt: skip
            return
        report = json.loads(got.get(f"{OUT}/report.json", b"{}") or b"{}")
        files = {**inputs, f"{DIR}/expected.pt": ref[f"{OUT}/expected.pt"],
                 f"{DIR}/outputs.pt": got[f"{OUT}/outputs.pt"]}  # fmt: skip
        checked = _run(base, "verify", job, files, env)
        if checked is None or f"{OUT}/verdict.json" not in checked:
            _harness_failed(result, "the verifier", checked)
            return
        verdict = json.loads(checked[f"{OUT}/verdict.json"])
        result.kernel = _report(spec, job, info, verdict, report)
        if _wrong(spec, job, report, verdict, result):
            return
        say(f"correct on all {result.kernel.cases} calls")
        result.status, result.correct = GradeStatus.OK, True
        if job["device"] != "cuda":
            result.kernel.timing_note = NO_TIMING
            result.artifacts["timing"] = NO_TIMING
            say("timing: not meaningful without a GPU")
            return
        if opts.measure:
            _measure(info, report, result)


def _backend(backend: str) -> str:
    if backend != "auto":
        return backend
    from sandbox import engine

    return "docker" if engine.available() else "local"


def _image(task: Task, backend: str) -> str | None:
    """Docker: an env layer with torch and triton. Local: this interpreter (which needs the
    ``kernels`` extra) or the task's own recipe venv."""
    if backend == "local" and not task.setup.pip:
        return None
    return image_for(EnvRecipe(pip=task.setup.pip or KERNEL_PIP, apt=task.setup.apt), backend)


def _refused(spec: KernelSpec, patch: str, result: Grade) -> bool:
    others = [p for p in touched_paths(patch) if p != spec.candidate] if patch else []
    if others:
        result.protected = others
        result.fail(
            GradeStatus.REJECTED_PROTECTED,
            f"a kernel candidate changes one file, {spec.candidate}; the patch also changes "
            f"{', '.join(others[:5])}",
        )
        return True
    return False


def _read(sb: Sandbox, path: str) -> str | None:
    run = sb.run(["true"], collect=[path])
    data = run.files.get(path)
    return None if data is None else data.decode("utf-8", errors="replace")


def _job(spec: KernelSpec, *, gpu: bool, time: bool) -> dict:
    """The cases, with seeds drawn now: the candidate never sees them, and no two grades
    share them. The timing pool (GPU only) is the problem's own sizes, normal inputs."""
    atol, rtol = spec.tolerances()
    cases = []
    for trial in range(spec.trials):
        scale = spec.scales[trial % len(spec.scales)]
        for shape in spec.shapes_for(gpu=gpu):
            for dist in spec.distributions:
                cases.append({"trial": trial, "shape": shape, "distribution": dist,
                              "scale": scale, "seed": secrets.randbits(31)})  # fmt: skip
    for _ in range(POOL if time else 0):
        cases.append({"trial": -1, "shape": {}, "distribution": spec.distributions[0],
                      "scale": 1.0, "seed": secrets.randbits(31), "timed": True})  # fmt: skip
    return {
        "reference": spec.reference, "entry": spec.entry, "candidate": spec.candidate,
        "new_entry": spec.new_entry, "dtype": spec.dtype, "atol": atol, "rtol": rtol,
        "cases": cases, "init_seed": secrets.randbits(31), "device": "cpu", "time": time,
        "timing": TIMING, "outputs": [], "nulls": True,
        "skip_invalid_shapes": spec.skip_invalid_shapes,
    }  # fmt: skip


def _run(
    sb: Sandbox, mode: str, job: dict, files: dict[str, bytes], env: dict[str, str]
) -> dict[str, bytes] | None:
    """One child process; its collected files (and its stderr under ``stderr``)."""
    names = {
        "reference": ["inputs.pt", "expected.pt", "ref.json"],
        "candidate": ["outputs.pt", "report.json"],
        "verify": ["verdict.json"],
    }[mode]
    payload = {f"{DIR}/child.py": CHILD, f"{DIR}/job.json": json.dumps(job).encode(), **files}
    run = sb.run(
        ["python3", f"{DIR}/child.py", mode],
        env=env,
        files=payload,
        collect=[f"{OUT}/{n}" for n in names],
    )
    out = dict(run.files)
    out["stderr"] = (run.reason + "\n" + run.stderr[-3000:]).encode()
    if not run.ok and mode != "candidate":
        return None if not run.files else out
    return out


def _harness_failed(result: Grade, what: str, run: dict[str, bytes] | None) -> None:
    tail = (run or {}).get("stderr", b"").decode(errors="replace")
    missing = "No module named 'torch'" in tail or "No module named 'triton'" in tail
    reason = (
        "torch or triton is not installed where kernels run: pip install 'optimizer[kernels]' "
        "for --sandbox local, or list them in the task's setup.pip for docker"
        if missing
        else f"{what} failed to run: {tail.strip().splitlines()[-1] if tail.strip() else '?'}"
    )
    result.fail(GradeStatus.ERROR, reason, tail)
    result.harness_fault = True


def _case(job: dict, index: int) -> str:
    case = job["cases"][index]
    shape = ", ".join(f"{k}={v}" for k, v in case["shape"].items()) or "the problem's own sizes"
    if case.get("timed"):
        return f"a timed call ({shape})"
    return f"trial {case['trial'] + 1}, {shape}, {case['distribution']} inputs x{case['scale']:g}"


def _wrong(spec: KernelSpec, job: dict, report: dict, verdict: dict, result: Grade) -> bool:
    """The first reason the kernel is not correct, as the grade's reason (for the agent)."""
    problem = ""
    if report.get("error"):
        problem = report["error"].splitlines()[0]
        result.artifacts["error"] = report["error"][-4000:]
    elif report.get("tampered"):
        problem = f"the kernel replaced the harness's {', '.join(report['tampered'])}"
    elif report.get("threads", 0) > 0:
        problem = "the kernel started threads that were still running after the calls"
    if not problem:
        problem = _calls_problem(spec, job, report)
    if not problem and verdict.get("failures"):
        first = verdict["failures"][0]
        where = _case(job, first["case"]) if first["case"] >= 0 else "reading the outputs"
        n = len(verdict["failures"])
        problem = f"wrong on {n} of {verdict['compared']} cases; first: {where}: {first['problem']}"
    if not problem:
        return False
    status = GradeStatus.REJECTED_GUARD if problem.startswith("falls back") else None
    result.fail(status or GradeStatus.FAILED_EQUIVALENCE, problem)
    return True


def _calls_problem(spec: KernelSpec, job: dict, report: dict) -> str:
    forbid = {name.lstrip("_").lower() for name in spec.forbid}
    for i, entry in enumerate(report.get("cases", [])):
        if entry.get("error"):
            return f"forward() failed on {_case(job, i)}: {entry['error'].splitlines()[0]}"
        ops = set(entry.get("ops", []))
        banned = sorted(op for op in ops if op.lstrip("_").lower() in forbid)
        if banned:
            return f"falls back to torch: forward() ran aten.{banned[0]}, the operator it replaces"
        if spec.torch_in_forward == "glue" and (other := sorted(ops - GLUE)):
            ran = ", aten.".join(other[:3])
            return (f"falls back to torch: forward() computed with aten.{ran}; only "
                    "allocation, views and copies may run besides Triton kernels")  # fmt: skip
        if not entry.get("launches"):
            return f"forward() launched no Triton kernel on {_case(job, i)}"
    return ""


def _shape_count(job: dict) -> int:
    """The distinct shapes the checked (not timed) cases cover, after any were skipped."""
    checked = {json.dumps(c["shape"], sort_keys=True) for c in job["cases"] if not c.get("timed")}
    return len(checked) or 1


def _report(spec: KernelSpec, job: dict, info: dict, verdict: dict, report: dict) -> KernelReport:
    calls = report.get("cases", [])
    return KernelReport(
        device=info["device"],
        interpreted=job["device"] != "cuda",
        cases=int(verdict.get("compared", 0)),
        shapes=_shape_count(job),
        trials=spec.trials,
        distributions=list(spec.distributions),
        atol=job["atol"],
        rtol=job["rtol"],
        max_abs_err=float(verdict.get("max_abs_err", 0.0)),
        tolerance_used=float(verdict.get("tolerance_used", 0.0)),
        launches=min((c.get("launches", 0) for c in calls), default=0),
        nulls_passing=sorted(k for k, v in (verdict.get("nulls") or {}).items() if v),
        torch_ops=sorted({op for c in calls for op in c.get("ops", [])}),
    )


def _measure(info: dict, report: dict, result: Grade) -> None:
    """The kernel against eager (the deciding base) and torch.compile, from do_bench medians."""
    timing = report.get("timing")
    eager = info.get("eager")
    if not timing or not eager:
        result.kernel.timing_note = "the timed calls did not complete"  # type: ignore[union-attr]
        return
    kernel_ms = _median(timing["medians_ms"])
    flagged = []
    host = float(timing.get("host_ms", 0.0))
    if host > 1.5 * kernel_ms + 0.05:
        flagged.append(f"host clock {host:.3f} ms per call vs {kernel_ms:.3f} ms by events: "
                       "work outside the timed stream? the host time is used")  # fmt: skip
        kernel_ms = host
    eager_ms = _median(eager["medians_ms"])
    compiled = info.get("compile")
    compile_ms = _median(compiled["medians_ms"]) if compiled else None
    speedup = eager_ms / kernel_ms
    if speedup > REVIEW_SPEEDUP:
        flagged.append(f"{speedup:.1f}x over eager is above {REVIEW_SPEEDUP:g}x: review it")
    base_s = [m / 1e3 for m in eager["medians_ms"]]
    head_s = [m / 1e3 for m in timing["medians_ms"]]
    cmp = stats.compare(base_s, head_s, floor=0.02)
    result.kernel.timing = KernelTiming(  # type: ignore[union-attr]
        eager_ms=eager_ms, compile_ms=compile_ms, kernel_ms=kernel_ms, host_ms=host,
        speedup_eager=speedup, speedup_compile=compile_ms / kernel_ms if compile_ms else None,
        compile_error=info.get("compile_error", ""), flagged=flagged,
    )  # fmt: skip
    result.measurement = Measurement(
        verdict=cmp.verdict.value, metric="gpu", speedup=speedup,
        ci=(1 / cmp.ci[1], 1 / cmp.ci[0]), p_value=cmp.p_value,
        base_median_s=eager_ms / 1e3, candidate_median_s=kernel_ms / 1e3,
        pairs=len(head_s), region="kernel",
        rule="triton.testing.do_bench medians (L2 flushed, a fresh input set per call), "
        f"{TIMING['rounds']} rounds per side; the base is eager PyTorch",
        workloads=[],
    )  # fmt: skip


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return float(ordered[len(ordered) // 2])
