"""The measurement harness: the script the profilers write into a sandbox copy and run there.

Standard library only (it runs under whatever ``python3`` the sandbox has). It is invoked as::

    python3 .optimizer/harness.py '<config JSON>'

and writes its result as JSON to ``config["out"]`` (a file the profiler collects). Results
never travel through stdout or stderr, which the workload can write to. The result always
echoes ``config["nonce"]``; a missing, malformed or mismatched file means the run failed.

Modes (``config["mode"]``):

- ``wall``: for a workload file, import it, call ``setup()`` (untimed), call ``workload()``
  ``warmup`` times (untimed), then ``inner`` times, each timed with ``perf_counter_ns``.
  For a command, run it ``warmup`` + ``inner`` times with the shell and time each subprocess.
  Also reports peak RSS (``ru_maxrss``, KiB) after setup and at the end.
- ``instructions``: run ``region`` mode under valgrind callgrind with ``PYTHONHASHSEED=0``
  (and ASLR off where ``setarch -R`` is allowed), and report the instructions counted between
  the two markers. A command is counted whole, with ``--trace-children=yes``.
- ``region``: (run under callgrind) import, ``setup()``, then ``os.getsid(0)`` (callgrind
  zeroes its counters on entering ``getsid``), ``workload()``, ``os.getpriority(...)``
  (callgrind dumps the counters on entering ``getpriority``).
- ``hotspots``: import, ``setup()``, then ``workload()`` under cProfile; reports the raw stats.
"""

import glob
import json
import os
import platform
import resource
import subprocess
import sys
import time
import traceback

ZERO_MARK = "getsid"
DUMP_MARK = "getpriority"


class HarnessError(Exception):
    pass


def load(path):
    import importlib.util

    sys.path.insert(0, os.getcwd())
    if not os.path.isfile(path):
        raise HarnessError(f"workload file {path} does not exist in this tree")
    spec = importlib.util.spec_from_file_location("optimizer_workload", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["optimizer_workload"] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "workload", None)):
        raise HarnessError(f"workload file {path} defines no workload() function")
    setup = getattr(module, "setup", None)
    if setup is not None and not callable(setup):
        raise HarnessError(f"setup in {path} is not a function")
    return module


def maxrss_kb(who=resource.RUSAGE_SELF):
    return resource.getrusage(who).ru_maxrss


def run_command(cmd):
    done = subprocess.run(cmd, shell=True)
    if done.returncode:
        raise HarnessError(f"workload command exited with code {done.returncode}")


def mode_wall(cfg):
    warmup, inner = int(cfg.get("warmup", 0)), int(cfg.get("inner", 1))
    samples = []
    if cfg["kind"] == "file":
        module = load(cfg["target"])
        if getattr(module, "setup", None):
            module.setup()
        work = module.workload
        rss_setup = maxrss_kb()
        for _ in range(warmup):
            work()
        for _ in range(inner):
            t0 = time.perf_counter_ns()
            work()
            samples.append(time.perf_counter_ns() - t0)
        rss = maxrss_kb()
    else:
        cmd = cfg["target"]
        rss_setup = 0
        for _ in range(warmup):
            run_command(cmd)
        for _ in range(inner):
            t0 = time.perf_counter_ns()
            run_command(cmd)
            samples.append(time.perf_counter_ns() - t0)
        rss = maxrss_kb(resource.RUSAGE_CHILDREN)
    return {"samples_ns": samples, "maxrss_kb": rss, "maxrss_setup_kb": rss_setup}


def mode_region(cfg):
    module = load(cfg["target"])
    if getattr(module, "setup", None):
        module.setup()
    work = module.workload
    os.getsid(0)  # callgrind: --zero-before=getsid
    work()
    os.getpriority(os.PRIO_PROCESS, 0)  # callgrind: --dump-before=getpriority
    return {}


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
        out = os.path.join(cgdir, "cg.out")
        argv = (
            prefix
            + valgrind
            + [
                "--callgrind-out-file=" + out,
                "--zero-before=" + ZERO_MARK,
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
        done = subprocess.run(argv, env=env)
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
        parts = sorted(glob.glob(out + ".*"))
        if len(parts) != 1:
            raise HarnessError(
                f"expected one callgrind dump of the workload region, found {len(parts)} "
                "(does the workload call os.getpriority?)"
            )
        count = summary(parts[0])
    else:
        files = glob.glob(os.path.join(cgdir, "cg.*.out*"))
        if not files:
            raise HarnessError("callgrind wrote no output")
        count = sum(summary(p) for p in files)
    return {"instructions": count, "aslr_off": aslr_off}


def mode_hotspots(cfg):
    import cProfile

    if cfg["kind"] != "file":
        raise HarnessError("hotspots need a workload file with workload(), not a command")
    module = load(cfg["target"])
    if getattr(module, "setup", None):
        module.setup()
    work = module.workload
    prof = cProfile.Profile()
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
    "region": mode_region,
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
