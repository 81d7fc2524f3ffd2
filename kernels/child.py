"""The kernel judge's runner, executed INSIDE the sandbox as ``python3 .optimizer/kernel/child.py
MODE`` (a copy of this file; it imports only the standard library, torch and triton).

Three modes, three processes, so that expected outputs never live where candidate code runs:

- ``reference`` (the base's tree, no candidate code): make every case's inputs from the
  seeds in ``job.json``, run the reference ``Model`` and write ``inputs.pt`` and
  ``expected.pt``; on CUDA also time eager and ``torch.compile`` (``ref.json``).
- ``candidate`` (the patched tree): load ``inputs.pt``, build ``ModelNew``, call it once per
  case with outputs poisoned first, and write ``outputs.pt`` (its outputs and its inputs as
  they were after each call) plus ``report.json`` (the torch ops and Triton launches each
  call made, tampering seen); on CUDA also time it. Everything this process writes is the
  candidate's word, so the verdict comes from the next mode.
- ``verify`` (the base's tree again): compare ``outputs.pt`` with ``expected.pt`` and the
  inputs with the pristine ones; write ``verdict.json``. Candidate files are loaded with
  ``weights_only=True``: tensors only, never the candidate's objects.

Results travel in files the harness collects (``.optimizer/kernel/out/``), never on stdout.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import threading
import time
import traceback

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported anywhere

DIR = ".optimizer/kernel"
OUT = f"{DIR}/out"


def _load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _write(name: str, data: object) -> None:
    os.makedirs(OUT, exist_ok=True)
    path = f"{OUT}/{name}"
    if name.endswith(".pt"):
        torch.save(data, path)
    else:
        with open(path, "w") as fh:
            json.dump(data, fh)


def _device(job: dict) -> torch.device:
    return torch.device("cuda" if job["device"] == "cuda" else "cpu")


def _tuple(out: object) -> tuple:
    return tuple(out) if isinstance(out, tuple | list) else (out,)


# --- inputs -------------------------------------------------------------------------------


def _sample(dist: str, like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    shape = like.shape
    if dist == "normal":
        return torch.randn(shape, generator=gen)
    if dist == "uniform":
        return torch.rand(shape, generator=gen) * 2 - 1
    # heavy: Student-t with 3 degrees of freedom, z / sqrt(chi2_3 / 3)
    z = torch.randn(shape, generator=gen)
    chi = sum(torch.randn(shape, generator=gen) ** 2 for _ in range(3)) / 3
    return z / chi.clamp_min(1e-12).sqrt()


_ORIGINAL: dict[int, dict] = {}


def set_shape(ref, shape: dict) -> None:
    """The problem module's sizes as the file has them, then ``shape``'s overrides (a list
    becomes a tuple: ``input_shape = (4096,)``). Every case starts from the file's own
    sizes, so ``{}`` always means them, whatever case came before."""
    original = _ORIGINAL.setdefault(id(ref), {})
    for key in shape:
        original.setdefault(key, getattr(ref, key, None))
    for key, value in original.items():
        setattr(ref, key, value)
    for key, value in shape.items():
        setattr(ref, key, tuple(value) if isinstance(value, list) else value)


def shape_key(case: dict) -> str:
    return json.dumps(case["shape"], sort_keys=True)


def make_inputs(ref, case: dict, dtype: torch.dtype) -> list:
    """One case's inputs: the problem's sizes overridden, floats redrawn and cast."""
    set_shape(ref, case["shape"])
    torch.manual_seed(case["seed"])
    inputs = list(ref.get_inputs())
    gen = torch.Generator().manual_seed(case["seed"] + 1)
    out = []
    for value in inputs:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            if case["distribution"] != "problem":
                value = _sample(case["distribution"], value, gen) * case["scale"]
            value = value.to(dtype)
        out.append(value)
    return out


def build(cls, ref, case: dict, job: dict):
    """``cls(*get_init_inputs())`` at the case's shape (the constructor may take sizes:
    in_channels, features), its parameters from the grade's init seed on both sides."""
    set_shape(ref, case["shape"])
    torch.manual_seed(job["init_seed"])
    return cls(*ref.get_init_inputs())


def _to(values: list, device: torch.device) -> list:
    return [v.to(device) if isinstance(v, torch.Tensor) else v for v in values]


# --- timing (CUDA only) ----------------------------------------------------------------------


def time_calls(fn, pool: list[list], job: dict) -> dict:
    """Median ms per call over ``rounds`` of ``do_bench`` (L2 flushed between calls), each
    call on the next input set of ``pool`` (fresh inputs, fresh outputs), plus a host-clock
    cross-check that synchronizes the whole device after every call."""
    from triton.testing import do_bench

    sync = torch.cuda.synchronize
    spec = job["timing"]
    last: dict[int, object] = {}
    state = {"i": 0}

    def call():
        i = state["i"] % len(pool)
        state["i"] += 1
        last[i] = fn(*pool[i])

    medians = [
        float(do_bench(call, warmup=spec["warmup_ms"], rep=spec["rep_ms"], return_mode="median"))
        for _ in range(spec["rounds"])
    ]
    host = []
    for _ in range(spec["host_calls"]):
        sync()
        start = time.perf_counter()
        call()
        sync()
        host.append((time.perf_counter() - start) * 1e3)
    host.sort()
    outs = [last.get(i) for i in range(len(pool))]
    return {"medians_ms": medians, "host_ms": host[len(host) // 2], "outputs": outs}


def _timing_pool(job: dict, inputs: list, device: torch.device) -> list[list]:
    return [_to(inputs[i], device) for i, c in enumerate(job["cases"]) if c.get("timed")]


# --- the three modes ---------------------------------------------------------------------------


def reference(job: dict) -> None:
    ref = _load(job["reference"], "reference")
    dtype = getattr(torch, job["dtype"])
    device = _device(job)
    models: dict[str, torch.nn.Module] = {}
    inputs, expected, kept, dropped = [], [], [], {}
    with torch.no_grad():
        for i, case in enumerate(job["cases"]):
            key = shape_key(case)
            if key in dropped:
                continue
            try:
                values = make_inputs(ref, case, dtype)
                if key not in models:
                    models[key] = build(getattr(ref, job["entry"]), ref, case, job).to(device)
                    models[key].eval()
                out = _tuple(models[key](*_to([_clone(v) for v in values], device)))
            except Exception as exc:
                if not job.get("skip_invalid_shapes"):
                    raise
                # a derived shape the problem itself rejects (a kernel wider than the input)
                dropped[key] = f"{type(exc).__name__}: {exc}"[:300]
                continue
            kept.append(i)
            inputs.append(values)
            expected.append(tuple(o.detach().cpu() if isinstance(o, torch.Tensor) else o
                                  for o in out))  # fmt: skip
    _write("inputs.pt", inputs)
    _write("expected.pt", expected)
    info: dict = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "outputs": [[_spec(o) for o in out] for out in expected],
        "kept": kept,
        "dropped": dropped,
    }
    if job.get("time") and device.type == "cuda" and "{}" in models:
        model = models["{}"]
        job = {**job, "cases": [job["cases"][i] for i in kept]}
        pool = _timing_pool(job, inputs, device)
        with torch.no_grad():
            info["eager"] = _strip(time_calls(model, pool, job))
            try:
                compiled = torch.compile(model)
                info["compile"] = _strip(time_calls(compiled, pool, job))
            except Exception as exc:  # torch.compile is a baseline, not the judge
                info["compile_error"] = f"{type(exc).__name__}: {exc}"[:500]
    _write("ref.json", info)


def _strip(timing: dict) -> dict:
    return {k: v for k, v in timing.items() if k != "outputs"}


def _spec(value: object) -> dict:
    if isinstance(value, torch.Tensor):
        return {"shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}
    return {"type": type(value).__name__}


def _clone(value):
    return value.clone() if isinstance(value, torch.Tensor) else value


class _Recorder:
    """The torch ops (aten, via a dispatch mode) and Triton launches of one call."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        recorder = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if recorder.active:
                    recorder.ops.add(func.overloadpacket.__name__)
                return func(*args, **(kwargs or {}))

        self.mode = Mode
        self.ops: set[str] = set()
        self.launches = 0
        self.active = False
        self._wrap_launchers()

    def _wrap_launchers(self) -> None:
        import triton.runtime.jit as jit

        classes = [jit.JITFunction]
        try:
            from triton.runtime.interpreter import InterpretedFunction

            classes.append(InterpretedFunction)
        except ImportError:
            pass
        for cls in classes:
            original = cls.run

            def run(fn_self, *args, _original=original, **kwargs):
                if self.active:
                    self.launches += 1
                return _original(fn_self, *args, **kwargs)

            cls.run = run

    def call(self, model, values: list):
        self.ops, self.launches, self.active = set(), 0, True
        try:
            with self.mode():
                return model(*values)
        finally:
            self.active = False


def _guards() -> dict:
    """The harness's objects that a candidate must not replace, by identity."""
    import triton.testing

    names = {
        "torch.cuda.synchronize": (torch.cuda, "synchronize"),
        "torch.cuda.Event": (torch.cuda, "Event"),
        "torch.cuda.Event.elapsed_time": (torch.cuda.Event, "elapsed_time"),
        "torch.cuda.Event.record": (torch.cuda.Event, "record"),
        "triton.testing.do_bench": (triton.testing, "do_bench"),
        "time.perf_counter": (time, "perf_counter"),
        "torch.Tensor.__eq__": (torch.Tensor, "__eq__"),
        "torch.allclose": (torch, "allclose"),
        "torch.save": (torch, "save"),
    }
    return {name: (obj, attr, getattr(obj, attr)) for name, (obj, attr) in names.items()}


def _tampered(guards: dict) -> list[str]:
    return [name for name, (obj, attr, value) in guards.items() if getattr(obj, attr) is not value]


def _poison(specs: list[dict], device: torch.device) -> None:
    """Fill and free a block of each output's size so that an output the kernel allocates
    but does not write holds NaN (or a sentinel), never a correct-looking stale value."""
    for spec in specs:
        if "shape" not in spec:
            continue
        dtype = getattr(torch, spec["dtype"])
        fill = math.nan if dtype.is_floating_point else -7
        block = torch.full(spec["shape"], fill, dtype=dtype, device=device)
        del block


def candidate(job: dict) -> None:
    device = _device(job)
    inputs = torch.load(f"{DIR}/inputs.pt", weights_only=True)
    specs = job["outputs"]
    ref = _load(job["reference"], "reference")
    recorder = _Recorder()
    guards = _guards()
    threads = threading.active_count()
    report: dict = {"cases": [], "tampered": [], "threads": 0, "error": ""}
    outputs: list = [None] * len(inputs)
    after: list = [None] * len(inputs)
    sys.path.insert(0, os.getcwd())
    models: dict[str, object] = {}
    try:
        module = _load(job["candidate"], "model_new")
        cls = getattr(module, job["new_entry"])
        for case in job["cases"]:
            if shape_key(case) not in models:
                model = build(cls, ref, case, job)
                if isinstance(model, torch.nn.Module):
                    model = model.to(device)
                models[shape_key(case)] = model
    except BaseException as exc:  # the candidate's failure, reported to the harness
        report["error"] = _describe(exc, "building ModelNew")
        _finish(outputs, after, report)
        return
    with torch.no_grad():
        for i, (case, values) in enumerate(zip(job["cases"], inputs, strict=True)):
            if case.get("timed") and device.type == "cuda":
                continue
            model = models[shape_key(case)]
            entry = {"ops": [], "launches": 0, "error": ""}
            report["cases"].append(entry)
            values = _to(values, device)
            _poison(specs[i], device)
            try:
                out = recorder.call(model, values)
                if device.type == "cuda":
                    torch.cuda.synchronize()
            except BaseException as exc:
                entry["error"] = _describe(exc, "forward()")
                continue
            finally:
                entry["ops"], entry["launches"] = sorted(recorder.ops), recorder.launches
            entry["error"] = _check_types(out, values, device)
            if not entry["error"]:
                outputs[i] = tuple(o.detach().cpu() for o in _tuple(out))
            after[i] = [v.detach().cpu() if isinstance(v, torch.Tensor) else v for v in values]
        if job.get("time") and device.type == "cuda" and not report["error"]:
            timed = [i for i, c in enumerate(job["cases"]) if c.get("timed")]
            try:
                timing = time_calls(models["{}"], _timing_pool(job, inputs, device), job)
            except BaseException as exc:
                report["error"] = _describe(exc, "the timed calls")
            else:
                for i, out in zip(timed, timing.pop("outputs"), strict=True):
                    problem = _check_types(out, [], device)
                    outputs[i] = None if problem else tuple(o.detach().cpu() for o in _tuple(out))
                report["timing"] = timing
    report["tampered"] = _tampered(guards)
    report["threads"] = threading.active_count() - threads
    _finish(outputs, after, report)


def _finish(outputs: list, after: list, report: dict) -> None:
    _write("outputs.pt", {"outputs": outputs, "inputs_after": after})
    _write("report.json", report)


def _check_types(out: object, values: list, device: torch.device) -> str:
    """A plain torch.Tensor (or a tuple of them) on the device, sharing no memory with an
    input; a subclass or a lazy wrapper is refused before anything reads its values."""
    for o in _tuple(out):
        if type(o) is not torch.Tensor:
            kind = f"{type(o).__module__}.{type(o).__qualname__}"
            return f"forward() returned a {kind}, not a plain torch.Tensor"
        if o.device.type != device.type:
            return f"forward() returned a tensor on {o.device}, not on {device.type}"
        for v in values:
            if isinstance(v, torch.Tensor) and _overlaps(o, v):
                return "forward() returned a tensor sharing memory with an input"
    return ""


def _overlaps(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.numel() == 0 or b.numel() == 0:
        return False
    sa, sb = a.untyped_storage(), b.untyped_storage()
    a0, b0 = sa.data_ptr(), sb.data_ptr()
    return a0 < b0 + sb.nbytes() and b0 < a0 + sa.nbytes()


def _describe(exc: BaseException, where: str) -> str:
    tail = traceback.format_exception(exc)[-6:]
    return f"{where} raised {type(exc).__name__}: {exc}"[:400] + "\n" + "".join(tail)[-1500:]


def verify(job: dict) -> None:
    expected = torch.load(f"{DIR}/expected.pt", weights_only=True)
    inputs = torch.load(f"{DIR}/inputs.pt", weights_only=True)
    verdict: dict = {"failures": [], "max_abs_err": 0.0, "tolerance_used": 0.0, "compared": 0}
    try:
        got = torch.load(f"{DIR}/outputs.pt", weights_only=True)
        outputs, after = got["outputs"], got["inputs_after"]
        if len(outputs) != len(expected) or len(after) != len(expected):
            raise ValueError("wrong number of cases")
    except Exception as exc:
        verdict["failures"].append({"case": -1, "problem": f"unreadable outputs: {exc}"[:300]})
        _write("verdict.json", verdict)
        return
    atol, rtol = job["atol"], job["rtol"]
    for i, case in enumerate(job["cases"]):
        problem = _compare(expected[i], outputs[i], atol, rtol, verdict)
        if not problem and not case.get("timed"):
            problem = _unchanged(inputs[i], after[i])
        verdict["compared"] += 1
        if problem:
            verdict["failures"].append({"case": i, "problem": problem})
    if job.get("nulls"):
        verdict["nulls"] = _nulls(job, expected, inputs)
    _write("verdict.json", verdict)


def _nulls(job: dict, expected: list, inputs: list) -> dict[str, bool]:
    """Whether each null kernel would pass every case: all zeros, the best constant (each
    output's mean), a copy of the first input. A problem that one of them passes cannot tell
    a kernel from no kernel (harness-defenses: outputs below the tolerance)."""

    def copy(e: torch.Tensor, values: list) -> torch.Tensor | None:
        first = next((v for v in values if isinstance(v, torch.Tensor)), None)
        ok = first is not None and first.shape == e.shape and first.dtype == e.dtype
        return first.clone() if ok else None

    makers = {
        "zeros": lambda e, values: torch.zeros_like(e),
        "constant": lambda e, values: (
            torch.full_like(e, float(e.double().mean()))
            if e.numel() and e.is_floating_point()
            else torch.zeros_like(e)
        ),
        "copy": copy,
    }
    found = {}
    for name, make in makers.items():
        passes = True
        for i, exp in enumerate(expected):
            got = tuple(make(e, inputs[i]) for e in exp)
            if any(g is None for g in got) or _compare(exp, got, job["atol"], job["rtol"], {}):
                passes = False
                break
        found[name] = passes
    return found


def _compare(expected: tuple, got: object, atol: float, rtol: float, verdict: dict) -> str:
    if got is None:
        return "no output (forward failed or returned the wrong type)"
    if not isinstance(got, tuple) or len(got) != len(expected):
        return f"{len(got) if isinstance(got, tuple) else '?'} outputs, expected {len(expected)}"
    for k, (e, g) in enumerate(zip(expected, got, strict=True)):
        name = f"output {k}" if len(expected) > 1 else "the output"
        if type(g) is not torch.Tensor:
            return f"{name} is a {type(g).__name__}, not a torch.Tensor"
        if g.shape != e.shape:
            return f"{name} has shape {tuple(g.shape)}, expected {tuple(e.shape)}"
        if g.dtype != e.dtype:
            return f"{name} has dtype {g.dtype}, expected {e.dtype}"
        if not e.is_floating_point():
            if not torch.equal(g, e):
                return f"{name} differs at {int((g != e).sum())} of {e.numel()} elements"
            continue
        bad = ~torch.isfinite(g) & torch.isfinite(e)
        if bool(bad.any()):
            return f"{name} has {int(bad.sum())} NaN/inf values where the reference has none"
        if e.numel():
            err = (g.double() - e.double()).abs().nan_to_num(0.0)
            used = float((err / (atol + rtol * e.double().abs())).max())
            verdict["max_abs_err"] = max(verdict.get("max_abs_err", 0.0), float(err.max()))
            verdict["tolerance_used"] = max(verdict.get("tolerance_used", 0.0), used)
        if not torch.allclose(g, e, atol=atol, rtol=rtol, equal_nan=True):
            limit = atol + rtol * e.double().abs()
            wrong = (err > limit).nonzero()
            first = tuple(int(x) for x in wrong[0]) if len(wrong) else ()
            return (
                f"{name} differs at {len(wrong)} of {e.numel()} elements (first at index "
                f"{first}: {float(g[first]):.6g} vs {float(e[first]):.6g}; max abs error "
                f"{float(err.max()):.3g}, atol {atol:g}, rtol {rtol:g})"
            )
    return ""


def _unchanged(before: list, after: object) -> str:
    if not isinstance(after, list) or len(after) != len(before):
        return "the inputs after the call could not be read back"
    for k, (b, a) in enumerate(zip(before, after, strict=True)):
        if isinstance(b, torch.Tensor):
            same = type(a) is torch.Tensor and a.shape == b.shape and a.dtype == b.dtype
            if not same or not torch.equal(torch.nan_to_num(a), torch.nan_to_num(b)):
                return f"input {k} was modified by forward() (kernels must not write their inputs)"
    return ""


def main() -> None:
    mode = sys.argv[1]
    with open(f"{DIR}/job.json") as fh:
        job = json.load(fh)
    {"reference": reference, "candidate": candidate, "verify": verify}[mode](job)


if __name__ == "__main__":
    main()
