"""The measurement harness: the script the profilers write into a sandbox copy and run there.

Standard library only (it runs under whatever ``python3`` the sandbox has). It is invoked as::

    python3 .optimizer/harness.py '<config JSON>'

and writes its result as JSON to ``config["out"]`` (a file the profiler collects). Results
never travel through stdout or stderr, which the workload can write to. The result always
echoes ``config["nonce"]``; a missing, malformed or mismatched file means the run failed.

Modes (``config["mode"]``):

- ``wall``: for a workload file, import the modules named in ``preimport`` that live where
  this process cannot write (untimed), then time the import of the workload file
  (``import_ns``), ``setup()`` (``setup_ns``), ``warmup`` untimed calls of ``workload()``,
  and ``inner`` timed calls (``samples_ns``; with ``materialize`` the result's ``repr`` is
  inside the timing). For a command, run it ``warmup`` + ``inner`` times with the shell and
  time each subprocess. Also reports peak RSS (``ru_maxrss``, KiB) after setup and at the end.
  With ``protocol = "warm"`` (a workload file): the first call is timed alone (``first_ns``),
  and every later call gets a fresh ``setup()`` and cleared caches first (:func:`timed_warm`).
- ``imports``: import, ``setup()``, one ``workload()``; report the top-level modules loaded
  from places this process cannot write (what ``preimport`` may import before the timer).
- ``instructions``: run ``region`` mode under valgrind callgrind with ``PYTHONHASHSEED=0``
  (and ASLR off where ``setarch -R`` is allowed), and report the instructions counted between
  the two markers. A command is counted whole, with ``--trace-children=yes``.
- ``region``: (run under callgrind, ``--dump-before=getpriority``) ``os.getpriority(...)``
  before the import (``region`` = ``total``) or right before ``workload()`` (``workload``),
  and again after it: callgrind dumps (and zeroes) its counters on entering ``getpriority``,
  so the second of exactly two dumps holds the region. A workload that calls
  ``getpriority`` itself makes more dumps, and the run is refused rather than miscounted.
- ``hotspots``: import, ``setup()``, then ``workload()`` under cProfile; reports the raw stats.
"""

import contextlib
import glob
import json
import os
import platform
import resource
import subprocess
import sys
import time
import traceback

DUMP_MARK = "getpriority"
#: The clock, bound before any workload code runs: rebinding time.perf_counter_ns later
#: (from the workload's process) does not change what the harness reads. The host's own
#: clock on the whole process is the cross-check (profilers.compare).
_clock = time.perf_counter_ns


class HarnessError(Exception):
    pass


def load(path, name="optimizer_workload"):
    import importlib.util

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if not os.path.isfile(path):
        raise HarnessError(f"workload file {path} does not exist in this tree")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "workload", None)) and not driven(module):
        raise HarnessError(f"workload file {path} defines no workload() function")
    setup = getattr(module, "setup", None)
    if setup is not None and not callable(setup):
        raise HarnessError(f"setup in {path} is not a function")
    return module


def driven(module):
    """Whether the workload file drives itself: ``drive(region)`` instead of ``workload()``.

    A driven file (a pytest run, say) calls ``region(name, fn)`` around each measured call;
    the harness measures ``fn()`` there and returns its result, so the caller's context
    (fixtures, ``setup_method``) stays alive around the measurement; with
    ``region(name, fn, fresh)``, every call after the first is ``fresh()()``, a new call
    made outside the measurement (pytest-benchmark's ``pedantic(setup=...)``).
    ``region.names`` lists the names the harness was asked to measure (None: any), and
    ``region.failed(name, message)`` reports one that failed outside its region.
    """
    return callable(getattr(module, "drive", None))


def progress(cfg, text):
    """Say where the run is (``progress.txt``), so that a timeout can name what took the time."""
    path = cfg.get("progress")
    if path:
        with contextlib.suppress(OSError), open(path, "w") as f:
            f.write(text)


def maxrss_kb(who=resource.RUSAGE_SELF):
    return resource.getrusage(who).ru_maxrss


def run_command(cmd):
    """Run the workload command; its stdout (kept for the output check)."""
    done = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE)
    if done.returncode:
        raise HarnessError(f"workload command exited with code {done.returncode}")
    return done.stdout


def summarize_stdout(data):
    """A command's output, lines stripped of trailing space, as a summary (see summarize)."""
    text = data.decode("utf-8", "replace")
    return summarize([ln.rstrip() for ln in text.strip().splitlines()])


def writable(path):
    """Whether this process could have changed ``path`` (the tree, /tmp, a user site)."""
    return os.access(os.path.dirname(os.path.realpath(path)) or ".", os.W_OK)


def preimport(names):
    """Import top-level modules that live where this process cannot write, before the timer.

    They are not the code under test (the standard library, the image's packages). A name
    whose file lies in a writable place (the work tree, /tmp) is left to the timed import.
    """
    import importlib
    import importlib.util

    sys.path.insert(0, os.getcwd())
    for name in names:
        if not isinstance(name, str) or not name.isidentifier() or name in sys.modules:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        origin = spec.origin if spec.has_location else None
        places = list(spec.submodule_search_locations or []) + ([origin] if origin else [])
        if any(writable(p) for p in places):
            continue
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    sys.path.remove(os.getcwd())


def outside_modules():
    """Top-level modules loaded so far whose files this process cannot write."""
    names = []
    for name, module in list(sys.modules.items()):
        if "." in name or name.startswith("_optimizer") or name == "optimizer_workload":
            continue
        places = list(getattr(module, "__path__", None) or [])
        where = getattr(module, "__file__", None)
        places += [where] if where else []
        if not any(writable(p) for p in places if isinstance(p, str)):
            names.append(name)
    return sorted(names)


def materialize(result):
    """Force a lazy result inside the timed region (a generator, a lazy proxy)."""
    if result is not None:
        repr(result)


def summarize(result):
    """A canonical summary of a workload's result that calls none of its own methods.

    ``skeleton``: a digest of the types, sizes and exact values (strings, ints, bytes, the
    attributes of objects read with ``object.__getattribute__``), floats left out; sets and
    dict keys sorted. ``floats``: the floats, in order (every k-th past 4000, with their
    count and sum), compared with a tolerance. A lazy object, a result computed only when
    not timed, or one of another shape does not match the base's.
    """
    import hashlib
    import math

    parts, floats, seen = [], [], set()

    def canon(x):
        out, fl = [], []
        walk(x, out, fl, 0)
        return "".join(out), fl

    def walk(x, out, fl, depth):
        t = type(x)
        name = f"{t.__module__}.{t.__qualname__}"
        if depth > 60 or id(x) in seen:
            out.append(f"<{name}:cycle>")
            return
        if x is None or t in (bool, int):
            out.append(f"{name}:{x!r};")
        elif isinstance(x, float) and t.__module__ in ("builtins", "numpy"):
            out.append(f"{name}:f;")
            fl.append(float(x))
        elif t in (str, bytes, bytearray):
            raw = x.encode("utf-8", "surrogatepass") if t is str else bytes(x)
            out.append(f"{name}:{len(x)}:{hashlib.sha256(raw).hexdigest()};")
        elif t in (list, tuple):
            seen.add(id(x))
            out.append(f"{name}[{len(x)}](")
            for item in x:
                walk(item, out, fl, depth + 1)
            out.append(")")
            seen.discard(id(x))
        elif t in (set, frozenset, dict):
            seen.add(id(x))
            items = []
            for k in x:
                ks, kf = canon(k)
                if t is dict:
                    vs, vf = canon(dict.__getitem__(x, k))
                else:
                    vs, vf = "", []
                items.append((ks, vs, kf, vf))
            items.sort(key=lambda i: (i[0], i[1]))
            out.append(f"{name}[{len(x)}](")
            for ks, vs, kf, vf in items:
                out.append(f"{ks}={vs},")
                fl.extend(kf)
                fl.extend(vf)
            out.append(")")
            seen.discard(id(x))
        elif name == "numpy.ndarray":
            out.append(f"{name}:{x.dtype.str}:{x.shape}:")
            if x.dtype.kind in "fc":
                flat = x.astype("complex128").view("float64") if x.dtype.kind == "c" else x
                fl.extend(float(v) for v in flat.astype("float64").ravel())
            else:
                out.append(hashlib.sha256(x.tobytes()).hexdigest())
            out.append(";")
        else:
            seen.add(id(x))
            out.append(f"{name}{{")
            try:
                state = object.__getattribute__(x, "__dict__")
            except Exception:
                state = None
            if isinstance(state, dict):
                walk(dict(state), out, fl, depth + 1)
            for slot in getattr(t, "__slots__", ()) or ():
                try:
                    walk(object.__getattribute__(x, slot), out, fl, depth + 1)
                except Exception:
                    out.append("<unset>")
            out.append("}")
            seen.discard(id(x))

    walk(result, parts, floats, 0)
    finite = [v for v in floats if math.isfinite(v)]
    step = max(1, len(floats) // 4000)
    return {
        "skeleton": hashlib.sha256("".join(parts).encode()).hexdigest(),
        "count": len(floats),
        "sum": math.fsum(finite),
        "abs": math.fsum(abs(v) for v in finite),
        "floats": [v if math.isfinite(v) else repr(v) for v in floats[::step]],
    }


def timed_file(cfg):
    """Import, setup() and the workload calls, each timed; the region decides what counts."""
    warmup, inner = int(cfg.get("warmup", 0)), int(cfg.get("inner", 1))
    force = bool(cfg.get("materialize"))
    preimport(cfg.get("preimport") or [])
    t0 = _clock()
    module = load(cfg["target"])
    t1 = _clock()
    if driven(module):
        return timed_drive(cfg, module, t0, t1, warmup, inner, force)
    setup = getattr(module, "setup", None) or (lambda: None)
    setup()
    t2 = _clock()
    work = module.workload
    rss_setup = maxrss_kb()
    if cfg.get("protocol") == "warm":
        return dict(timed_warm(setup, work, warmup, inner), import_ns=t1 - t0, setup_ns=t2 - t1,
                    maxrss_kb=maxrss_kb(), maxrss_setup_kb=rss_setup)  # fmt: skip
    for _ in range(warmup):
        work()
    samples = []
    result = None
    for _ in range(inner):
        t = _clock()
        result = work()
        if force:
            materialize(result)
        samples.append(_clock() - t)
    return {
        "output": summarize(result),
        "samples_ns": samples,
        "import_ns": t1 - t0,
        "setup_ns": t2 - t1,
        "maxrss_kb": maxrss_kb(),
        "maxrss_setup_kb": rss_setup,
    }


def timed_warm(setup, work, warmup, inner):
    """The warm protocol, after the import and the first ``setup()``: the first call (timed
    alone, ``first_ns``), ``warmup - 1`` more untimed calls, then ``inner`` timed calls; before
    every call after the first, the caches of the code under test are cleared and ``setup()``
    runs again (untimed), so each call gets fresh input objects, as SWE-fficiency's and GSO's
    ``timeit.repeat(workload, setup=setup)`` give them. Every call's result must match."""
    t = _clock()
    result = work()
    first = _clock() - t
    output = summarize(result)
    caches = tree_caches()
    samples = []
    for i in range(max(0, warmup - 1) + inner):
        rewarm(caches, setup)
        t = _clock()
        result = work()
        took = _clock() - t
        same_result(output, result)
        if i >= max(0, warmup - 1):
            samples.append(took)
    return {"output": output, "samples_ns": samples, "first_ns": first,
            "caches": sorted({cache_name(c) for c in caches})}  # fmt: skip


def rewarm(caches, setup):
    """Before each warm call after the first (untimed): the tree's caches cleared and a
    fresh ``setup()``."""
    for cache in caches:
        cache.cache_clear()
    setup()


def same_result(first, result):
    """A warm call's result must be the first call's: it must not depend on earlier calls."""
    if summarize(result) != first:
        raise HarnessError(
            "the workload's result changed from call to call in one process (warm protocol): "
            "a result must not depend on earlier calls"
        )


def tree_caches():
    """``functools.lru_cache``/``cache`` wrappers whose code lives where this process can
    write (the code under test, not the standard library or the image's packages)."""
    import functools
    import gc

    found = []
    for obj in gc.get_objects():
        if isinstance(obj, functools._lru_cache_wrapper):
            code = getattr(getattr(obj, "__wrapped__", None), "__code__", None)
            if code is not None and writable(code.co_filename):
                found.append(obj)
    return found


def cache_name(cache):
    wrapped = getattr(cache, "__wrapped__", cache)
    return f"{getattr(wrapped, '__module__', '?')}.{getattr(wrapped, '__qualname__', '?')}"


def timed_drive(cfg, module, t0, t1, warmup, inner, force):
    """A driven file: its first ``region(name, fn)`` for ``cfg["name"]`` is timed; the time
    from the import to that call is its setup."""
    got = {}

    def region(name, fn, fresh=None):
        if got or cfg.get("name") not in (None, name):
            return fn()
        t2 = _clock()
        got.update(setup_ns=t2 - t1, maxrss_setup_kb=maxrss_kb())
        for i in range(warmup):
            (fresh() if fresh and i else fn)()
        samples, result = [], None
        for i in range(inner):
            call = fresh() if fresh and (i or warmup) else fn
            t = _clock()
            result = call()
            if force:
                materialize(result)
            samples.append(_clock() - t)
        got.update(samples_ns=samples, output=summarize(result))
        return result

    failed = {}
    region.names = [cfg["name"]] if cfg.get("name") else None
    region.failed = lambda name, message: failed.setdefault(name, str(message))
    module.drive(region)
    why = failed.get(cfg.get("name")) if cfg.get("name") else next(iter(failed.values()), None)
    if why:
        raise HarnessError(f"{cfg.get('name') or cfg['target']} failed: {why}")
    if "samples_ns" not in got:
        raise HarnessError(f"{cfg.get('name') or cfg['target']} never reached its measured call")
    return dict(got, import_ns=t1 - t0, maxrss_kb=maxrss_kb())


def mode_wall(cfg):
    if cfg["kind"] == "file":
        return timed_file(cfg)
    warmup, inner = int(cfg.get("warmup", 0)), int(cfg.get("inner", 1))
    cmd = cfg["target"]
    samples = []
    out = b""
    for _ in range(warmup):
        run_command(cmd)
    for _ in range(inner):
        t0 = _clock()
        out = run_command(cmd)
        samples.append(_clock() - t0)
    return {
        "output": summarize_stdout(out),
        "samples_ns": samples,
        "maxrss_kb": maxrss_kb(resource.RUSAGE_CHILDREN),
        "maxrss_setup_kb": 0,
    }


def mode_imports(cfg):
    """Import, setup() and one workload() call; report the unwritable modules they loaded."""
    module = load(cfg["target"])
    if getattr(module, "setup", None):
        module.setup()
    module.workload()
    return {"modules": outside_modules()}


def mode_region(cfg):
    """Under callgrind: the counted region is import + setup + workload (``total``) or the
    workload call alone (``workload``), between the two marker syscalls."""
    preimport(cfg.get("preimport") or [])
    total = cfg.get("region", "workload") == "total"
    if total:
        os.getpriority(os.PRIO_PROCESS, 0)  # callgrind dump 1: everything before the region
    module = load(cfg["target"])
    setup = getattr(module, "setup", None) or (lambda: None)
    setup()
    work = module.workload
    if cfg.get("protocol") == "warm":  # dumps: before, the first call, warm-ups, a warm call
        os.getpriority(os.PRIO_PROCESS, 0)
        result = work()
        os.getpriority(os.PRIO_PROCESS, 0)
        first = summarize(result)
        caches = tree_caches()
        calls = max(1, int(cfg.get("warmup", 1)))
        for i in range(calls):
            rewarm(caches, setup)
            if i == calls - 1:
                os.getpriority(os.PRIO_PROCESS, 0)
            result = work()
            if i < calls - 1:
                same_result(first, result)
        os.getpriority(os.PRIO_PROCESS, 0)
        same_result(first, result)
        return {"output": first}
    if not total:
        os.getpriority(os.PRIO_PROCESS, 0)
    result = work()
    if cfg.get("materialize"):
        materialize(result)
    os.getpriority(os.PRIO_PROCESS, 0)  # callgrind dump 2: the region
    return {"output": summarize(result)}


def mode_batch_region(cfg):
    """Under callgrind: each of ``targets`` ({name, target}) in turn, its region between two
    markers; a driven file marks each ``region(name, fn)`` it calls. Each finished region is
    appended to ``regions.jsonl`` (its name, its output, the child processes' callgrind files
    it made), so a run killed part-way still tells what it counted."""
    preimport(cfg.get("preimport") or [])
    cgdir = os.path.dirname(cfg["out"])
    log = os.path.join(cgdir, "regions.jsonl")
    own = f"cg.{os.getpid()}."

    def children():
        return {f for f in os.listdir(cgdir) if f.startswith("cg.") and not f.startswith(own)}

    def record(entry):
        with open(log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    start = instrumentation() if cfg.get("toggle") else None
    warmup = int(cfg.get("warmup", 0))

    started = []

    def region(name, fn, fresh=None):
        before = children()
        progress(cfg, f"measuring {name}")
        entry = {"name": name}
        try:
            for i in range(warmup):  # untimed, as asv and pytest-benchmark warm up
                (fresh() if fresh and i else fn)()
            if fresh and warmup:
                fn = fresh()  # its own arguments, as every call of pedantic(setup=...)
        except BaseException as exc:
            record(dict(entry, failed=error_line(exc)))
            raise
        if start and not started:
            # instrumentation on, for good: off until now (start-up, imports, pytest's
            # collection ran 4x, not 30x slower); never off again, since each switch throws
            # away every translation, which a suite of many small benchmarks pays per region
            start()
            started.append(name)
        os.getpriority(os.PRIO_PROCESS, 0)  # a dump: everything since the last region
        try:
            result = fn()
        except BaseException as exc:
            entry["error"] = error_line(exc)
            raise
        finally:
            os.getpriority(os.PRIO_PROCESS, 0)  # a dump: this region
            entry["children"] = sorted(children() - before)
            if "error" not in entry:
                entry["output"] = summarize(result)
            record(entry)
            progress(cfg, f"after {name}")
        return result

    region.failed = lambda name, message: record({"name": name, "failed": str(message)})
    for i, t in enumerate(cfg["targets"]):
        name = t["name"]
        try:
            progress(cfg, f"importing {name}")
            module = load(t["target"], f"optimizer_workload_{i}")
            if driven(module):
                region.names = t.get("names")
                module.drive(region)
                continue
            if getattr(module, "setup", None):
                progress(cfg, f"setup of {name}")
                module.setup()
            region(name, module.workload)
        except Exception as exc:  # this target failed; the next ones still run
            record({"name": name, "failed": error_line(exc)})
    return {"regions": len(cfg["targets"])}


#: x86-64 code for a Valgrind client request: ``rax`` points at the request and its five
#: arguments; the four ``rol rdi`` and ``xchg rbx, rbx`` are Valgrind's magic preamble (a
#: no-op on a real CPU, where it returns 0).
_CLIENT_REQUEST = "4889f8 31d2 48c1c703 48c1c70d 48c1c73d 48c1c733 4887db 4889d0 c3"
_START_INSTRUMENTATION = 0x43540004  # callgrind.h


def instrumentation():
    """callgrind's START_INSTRUMENTATION, called from Python through ctypes."""
    import ctypes
    import mmap

    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(bytes.fromhex(_CLIENT_REQUEST.replace(" ", "")))
    kind = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.POINTER(ctypes.c_ulong))
    call = kind(ctypes.addressof(ctypes.c_char.from_buffer(page)))

    def request(code):
        call((ctypes.c_ulong * 6)(code, 0, 0, 0, 0, 0))
        return page  # keeps the code alive

    return lambda: request(_START_INSTRUMENTATION)


def error_line(exc):
    return traceback.format_exception_only(type(exc), exc)[-1].strip()[:500]


def mode_batch(cfg):
    """See ``batch_once``: with instrumentation off until the first region where this CPU
    allows it (x86-64), else (or where a region started a child process, whose callgrind
    would start with it off too, or counted nothing) with it on throughout. Counts are the
    same either way; start-up and imports (pytest's collection) run 4x, not 30x, slower."""
    toggle = cfg.get("toggle", True) and platform.machine() in ("x86_64", "AMD64")
    if toggle:
        got = batch_once(cfg, toggle=True)
        if not got.pop("retry"):
            return got
    got = batch_once(cfg, toggle=False)
    got.pop("retry")
    return got


def batch_once(cfg, toggle):
    """Count the regions of many workload files (``targets``) in one callgrind process.

    A watchdog stops the process when one step (start-up, an import, a setup, a region)
    runs past ``step_timeout_s`` (start-up: at least 300 s); the regions counted before it
    are still reported, and ``stuck`` names the step that took the time."""
    cgdir = cfg["cgdir"]
    os.makedirs(cgdir, exist_ok=True)
    for old in glob.glob(os.path.join(cgdir, "*")):
        os.remove(old)
    prefix, aslr_off = aslr_prefix()
    status = os.path.join(cgdir, "progress.txt")
    inner = dict(cfg, mode="batch-region", out=os.path.join(cgdir, "region.json"), progress=status)
    inner["toggle"] = toggle
    argv = prefix + [
        "valgrind",
        "--tool=callgrind",
        *(["--instr-atstart=no"] if toggle else []),
        "--log-file=" + os.path.join(cgdir, "valgrind.%p.log"),
        "--trace-children=yes",
        "--callgrind-out-file=" + os.path.join(cgdir, "cg.%p.out"),
        "--dump-before=" + DUMP_MARK,
        sys.executable,
        os.path.abspath(__file__),
        json.dumps(inner),
    ]
    start = "python start-up under valgrind"  # allowed 300 s: a loaded machine is slow
    progress(inner, start)
    env = dict(os.environ, PYTHONHASHSEED="0")
    try:
        proc = subprocess.Popen(argv, env=env, start_new_session=True)
    except FileNotFoundError:
        raise HarnessError("valgrind is not installed where the workload runs") from None
    limit = float(cfg.get("step_timeout_s") or 0)
    stuck, last, since = None, None, time.monotonic()
    while True:
        try:
            proc.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            pass
        try:
            with open(status) as f:
                now = f.read()
        except OSError:
            now = last
        if now != last:
            last, since = now, time.monotonic()
        elif limit and time.monotonic() - since > (limit if now != start else max(limit, 300)):
            stuck = f"{now} took more than {time.monotonic() - since:.0f} s"
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, 9)
            proc.wait()
            break
    entries = []
    with contextlib.suppress(OSError), open(os.path.join(cgdir, "regions.jsonl")) as f:
        for line in f:
            with contextlib.suppress(ValueError):
                entries.append(json.loads(line))
    regions = [e for e in entries if isinstance(e, dict) and "children" in e]
    parts = sorted(
        glob.glob(os.path.join(cgdir, f"cg.{proc.pid}.out.*")),
        key=lambda p: int(p.rsplit(".", 1)[1]),
    )
    ended = stuck is None and proc.returncode == 0
    if len(parts) not in (
        (2 * len(regions),) if ended else (2 * len(regions), 2 * len(regions) + 1)
    ):
        raise HarnessError(
            f"expected {2 * len(regions)} callgrind dumps around {len(regions)} regions, found "
            f"{len(parts)} (a workload calls os.getpriority, which marks the regions: refused)"
        )
    counts, outputs, errors = {}, {}, {}
    retry = False
    for k, e in enumerate(regions):
        name = str(e.get("name"))
        if "error" in e:
            errors[name] = e["error"]
            continue
        extra = [os.path.join(cgdir, c) for c in e.get("children") or []]
        counts[name] = summary(parts[2 * k + 1]) + sum(summary(c) for c in extra)
        outputs[name] = e.get("output")
        retry = retry or (toggle and (bool(extra) or counts[name] <= 0))
    for e in entries:
        if isinstance(e, dict) and "failed" in e:
            errors[str(e.get("name"))] = str(e["failed"])
    if stuck is None and proc.returncode:
        stuck = f"the process exited with code {proc.returncode} during: {last or 'start-up'}"
    return {
        "counts": counts,
        "outputs": outputs,
        "errors": errors,
        "stuck": stuck,
        "phase": last if stuck else None,
        "aslr_off": aslr_off,
        "retry": retry,
    }


def aslr_prefix():
    """``setarch <arch> -R`` where the kernel lets us turn ASLR off, else nothing."""
    arch = platform.machine()
    try:
        ok = subprocess.run(["setarch", arch, "-R", "true"], capture_output=True).returncode == 0
    except OSError:
        ok = False
    return (["setarch", arch, "-R"], True) if ok else ([], False)


def summary(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise HarnessError(f"callgrind output {path} has no summary line")


def mode_instructions(cfg):
    cgdir = cfg["cgdir"]
    os.makedirs(cgdir, exist_ok=True)
    for old in glob.glob(os.path.join(cgdir, "*")):
        os.remove(old)
    prefix, aslr_off = aslr_prefix()
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        "--log-file=" + os.path.join(cgdir, "valgrind.%p.log"),
    ]
    env = dict(os.environ, PYTHONHASHSEED="0")
    if cfg["kind"] == "file":
        region = dict(cfg, mode="region", out=os.path.join(cgdir, "region.json"))
        argv = (
            prefix
            + valgrind
            + [
                # children count too: work handed to a subprocess is still work
                "--trace-children=yes",
                "--callgrind-out-file=" + os.path.join(cgdir, "cg.%p.out"),
                "--dump-before=" + DUMP_MARK,
                sys.executable,
                os.path.abspath(__file__),
                json.dumps(region),
            ]
        )
    else:
        argv = (
            prefix
            + valgrind
            + [
                "--trace-children=yes",
                "--callgrind-out-file=" + os.path.join(cgdir, "cg.%p.out"),
                "/bin/sh",
                "-c",
                cfg["target"],
            ]
        )
    try:
        command = cfg["kind"] != "file"
        done = subprocess.Popen(  # its pid is the traced workload's (exec)
            argv, env=env, stdout=subprocess.PIPE if command else None
        )
        stdout, _ = done.communicate()
    except FileNotFoundError:
        raise HarnessError("valgrind is not installed where the workload runs") from None
    region_result = {}
    if cfg["kind"] == "file":
        try:
            with open(os.path.join(cgdir, "region.json")) as f:
                region_result = json.load(f)
        except (OSError, ValueError):
            region_result = {}
        if not isinstance(region_result, dict):
            region_result = {}
    if done.returncode:
        why = region_result.get("error")
        raise HarnessError(
            f"workload exited with code {done.returncode} under callgrind"
            + (f": {why}" if why else "")
        )
    if cfg["kind"] == "file":
        if region_result.get("ok") is not True:
            raise HarnessError("the workload did not finish under callgrind")
        out = os.path.join(cgdir, f"cg.{done.pid}.out")
        parts = sorted(glob.glob(out + ".*"), key=lambda p: int(p.rsplit(".", 1)[1]))
        warm = cfg.get("protocol") == "warm"
        if len(parts) != (4 if warm else 2):
            raise HarnessError(
                f"expected {4 if warm else 2} callgrind dumps around the workload region, found "
                f"{len(parts)} (the workload calls os.getpriority, which marks the region: "
                "refused)"
            )
        children = [
            p
            for p in glob.glob(os.path.join(cgdir, "cg.*.out*"))
            if not os.path.basename(p).startswith(f"cg.{done.pid}.")
        ]
        if warm and children:
            raise HarnessError(
                "the workload starts processes, whose instructions cannot be told apart call "
                "by call under the warm protocol: count it with --protocol cold"
            )
        count = summary(parts[-1]) + sum(summary(p) for p in children)
        if warm:
            return {"instructions": count, "first_instructions": summary(parts[1]),
                    "aslr_off": aslr_off, "output": region_result.get("output")}  # fmt: skip
    else:
        files = glob.glob(os.path.join(cgdir, "cg.*.out*"))
        if not files:
            raise HarnessError("callgrind wrote no output")
        count = sum(summary(p) for p in files)
    output = region_result.get("output") if cfg["kind"] == "file" else summarize_stdout(stdout)
    return {"instructions": count, "aslr_off": aslr_off, "output": output}


def mode_hotspots(cfg):
    import cProfile

    if cfg["kind"] != "file":
        raise HarnessError("hotspots need a workload file with workload(), not a command")
    module = load(cfg["target"])
    prof = cProfile.Profile()
    if driven(module):
        seen = []

        def region(name, fn, fresh=None):
            if seen or cfg.get("name") not in (None, name):
                return fn()
            seen.append(name)
            prof.enable()
            try:
                return fn()
            finally:
                prof.disable()

        region.names = [cfg["name"]] if cfg.get("name") else None
        region.failed = lambda name, message: None
        module.drive(region)
    else:
        if getattr(module, "setup", None):
            module.setup()
        work = module.workload
        prof.enable()
        work()
        prof.disable()
    prof.create_stats()
    rows = []
    for (file, line, func), (cc, nc, tt, ct, callers) in prof.stats.items():
        rows.append(
            {
                "file": file,
                "line": line,
                "func": func,
                "primitive_calls": cc,
                "calls": nc,
                "own_s": tt,
                "cum_s": ct,
                "callers": [
                    {"file": k[0], "line": k[1], "func": k[2], "calls": v[1], "cum_s": v[3]}
                    for k, v in callers.items()
                ],
            }
        )
    return {"functions": rows}


MODES = {
    "wall": mode_wall,
    "imports": mode_imports,
    "region": mode_region,
    "batch": mode_batch,
    "batch-region": mode_batch_region,
    "instructions": mode_instructions,
    "hotspots": mode_hotspots,
}


def write(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def main():
    cfg = json.loads(sys.argv[1])
    out = cfg["out"]
    if os.path.dirname(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
    if os.path.exists(out):
        os.remove(out)
    base = {"nonce": cfg["nonce"], "python": platform.python_version()}
    try:
        result = MODES[cfg["mode"]](cfg)
    except HarnessError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"optimizer harness: {exc}\n")
        write(out, dict(base, ok=False, error=str(exc)))
        return 1
    except BaseException as exc:  # the workload raised: keep its traceback for the user
        sys.stdout.flush()
        traceback.print_exc()
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        write(out, dict(base, ok=False, error=last))
        return 1
    write(out, dict(base, ok=True, **result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
