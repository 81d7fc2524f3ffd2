"""The ``local`` backend: a temp copy, a subprocess in its own process group, rlimits.

Where bubblewrap (``bwrap``) is installed, each run is also confined: the whole filesystem
is read-only except the work directory and a private /tmp, and the run gets its own network
and PID namespaces (no network; killing it kills every process it started). Without
bubblewrap there is no network or filesystem isolation, and the backend says so.

Sealing keeps a copy of the tree (``sealed/``, read-only to a confined run); every later run
gets a fresh copy of it (``cp -a``, reflinked where the filesystem can) and an empty /tmp.

A task's pip requirements go into a private virtualenv per recipe (:func:`build_venv`, on
this process's own interpreter, cached by content hash); runs get its ``bin`` first on PATH.
A confined run's /tmp is private, so an interpreter or a venv that lives under /tmp (a
``python3 -m venv /tmp/venv`` the harness runs from) is bound into it read-only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from sandbox.base import CANCEL, OutputCapture, Sandbox, classify, wait_run
from sandbox.cgroup import PidsCgroup
from sandbox.errors import SandboxError, telling_line
from sandbox.models import Limits, MiB, RunResult, Source
from sandbox.source import materialize

log = logging.getLogger("optimizer.sandbox")

#: Host variables a run may see; everything else (API keys, tokens) stays out.
_PASS_ENV = ("PATH", "LANG", "LC_ALL", "TERM", "VIRTUAL_ENV", "PYTHONPATH", "TRITON_INTERPRET")
_COLLECT_MAX = 64 * MiB
_warned = False


def bwrap_path() -> str | None:
    """The bubblewrap binary, if this machine has one that works."""
    return shutil.which("bwrap")


# -- the interpreter and per-recipe virtualenvs ---------------------------------------------


def host_python() -> str:
    """The major.minor of the interpreter this process (and so the local backend) runs."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def base_interpreter() -> Path:
    """This process's interpreter outside any virtualenv it runs in."""
    return Path(getattr(sys, "_base_executable", None) or sys.executable)


def check_python(python: str | None) -> None:
    """Fail in one line where ``python`` (major.minor) is not this interpreter's version."""
    if python is None:
        return
    wanted = python.strip().removeprefix("python")
    if wanted == host_python() or wanted.startswith(host_python() + "."):
        return
    raise SandboxError(
        f"the task asks for Python {python.strip()}, but the local sandbox runs this "
        f"interpreter, Python {host_python()} ({sys.executable})",
        f"use --sandbox docker (`optimizer sandbox build --python {wanted}`), or run "
        f"optimizer under a Python {wanted} interpreter",
    )


def cache_dir() -> Path:
    """The tool's cache: $OPTIMIZER_CACHE, else ~/.cache/optimizer (every cache lives there)."""
    if os.environ.get("OPTIMIZER_CACHE"):
        return Path(os.environ["OPTIMIZER_CACHE"]).expanduser()
    return Path.home() / ".cache" / "optimizer"


def _harness_site() -> list[str]:
    """The site-packages of the virtualenv this process runs in (none outside one)."""
    if sys.prefix == sys.base_prefix:
        return []
    paths = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    return sorted(p for p in paths if Path(p).is_dir())


def venv_key(pip: list[str]) -> str:
    """The content hash naming the virtualenv of ``pip`` on this interpreter."""
    recipe = {
        "interpreter": str(base_interpreter()),
        "version": sys.version,
        "harness": _harness_site(),
        "pip": list(pip),
        "layout": 2,  # 2: made --without-pip (the host's pip and setuptools)
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def build_venv(pip: list[str], *, log=print) -> Path:
    """The private virtualenv with ``pip`` installed; built once per recipe, then reused.

    It is made on this process's base interpreter with ``--system-site-packages`` (plus a
    ``.pth`` naming the harness's own virtualenv, if it runs in one): local runs have always
    seen what the host has installed (pytest, the task's usual tools), and a requirement the
    host already satisfies costs no download, while the recipe's own pins come first on
    sys.path and win. pip may use the network here; runs never do.

    The folder is built under a temporary name and published by an atomic symlink,
    ``<cache>/envs/<hash>``: a virtualenv writes its own path into its scripts, so it is never
    renamed, and a build that fails or races another one is never seen half-made.
    """
    key = venv_key(pip)
    root = cache_dir() / "envs"
    link = root / key
    if link.is_symlink() and (link / "pyvenv.cfg").is_file():
        return link.resolve()
    root.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    build.chmod(0o755)  # mkdtemp makes it private to this user; runs only read it
    log(f"building the local env {key}: pip install {' '.join(pip) or '(nothing)'}")
    try:
        # no pip of its own: the venv's bundled pip and setuptools (3.11: setuptools 65, no
        # bdist_wheel without `wheel`) would shadow the host's newer build tools, and an
        # editable install of the package under test fails; the host's pip installs here
        _step([str(base_interpreter()), "-m", "venv", "--system-site-packages", "--without-pip",
               str(build)])  # fmt: skip
        python = build / "bin" / "python"
        harness = _harness_site()
        if harness:
            code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
            site = Path(_step([str(python), "-c", code]).strip())
            (site / "_optimizer_harness.pth").write_text("\n".join(harness) + "\n")
        if pip:
            has_pip = subprocess.run([str(python), "-c", "import pip"], capture_output=True)
            if has_pip.returncode:  # the host has no pip: the venv gets its own after all
                _step([str(python), "-m", "ensurepip", "-q"])
            env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
            _step([str(python), "-m", "pip", "install", "-q", *pip], env=env)
        if link.is_symlink() and not link.exists():  # dangling: its build was removed
            link.unlink()
        try:
            os.symlink(build.name, link)
        except FileExistsError:  # another process published it first: use that one
            shutil.rmtree(build, ignore_errors=True)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return link.resolve()


def _step(cmd: list[str], env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    except subprocess.TimeoutExpired:
        raise SandboxError(
            f"building the local env timed out: {' '.join(cmd[2:4])}",
            "check that the package index is reachable",
        ) from None
    if done.returncode:
        tail = telling_line(done.stderr or done.stdout) or "no output"
        raise SandboxError(
            f"building the local env failed ({' '.join(cmd[1:4])}): {tail}",
            "check the requirement names in setup.pip and that the package index is "
            "reachable (PIP_INDEX_URL)",
        )
    return done.stdout


def local_env(pip: list[str], python: str | None = None, *, log=print) -> str | None:
    """What the local backend needs for a recipe: its virtualenv's path, or None for none.

    A ``python`` version is checked against this interpreter; asked for, it also gets a
    (possibly empty) virtualenv, so ``python3`` in a run is that interpreter whatever PATH says.
    """
    check_python(python)
    if not pip and python is None:
        return None
    return str(build_venv(pip, log=log))


def _under_tmp(paths: list[str | Path]) -> list[str]:
    """The real paths among ``paths`` that lie under /tmp (hidden by a confined run's /tmp)."""
    found: list[str] = []
    for p in paths:
        real = os.path.realpath(p)
        if real.startswith("/tmp/") and os.path.exists(real):
            found.append(real)
    found.sort(key=len)
    kept: list[str] = []
    for p in found:  # a folder inside one already bound needs no bind of its own
        if not any(p == k or p.startswith(k + "/") for k in kept):
            kept.append(p)
    return kept


class LocalSandbox(Sandbox):
    """Runs commands as subprocesses of this process, on a private temp copy."""

    backend = "local"

    def __init__(
        self,
        source: Source,
        limits: Limits | None = None,
        *,
        confine: bool | None = None,
        venv: str | Path | None = None,
    ) -> None:
        super().__init__(source, limits)
        #: The recipe's virtualenv (from :func:`local_env`): its bin comes first on PATH.
        self.venv = _check_venv(venv)
        self._root = Path(tempfile.mkdtemp(prefix="optimizer-sandbox-"))
        self.path = self._root / "work"
        self._tmp = self._root / "tmp"
        self.path.mkdir()
        self._tmp.mkdir()
        try:
            self.sha = materialize(source, self.path)
        except BaseException:
            shutil.rmtree(self._root, ignore_errors=True)
            raise
        self.workdir = str(self.path)
        self._bwrap = bwrap_path() if confine in (None, True) else None
        if confine and not self._bwrap:
            self.close()
            raise RuntimeError("confine=True needs bubblewrap (apt-get install bubblewrap)")
        self._ro_binds = self._visible() if self._bwrap else []
        global _warned
        if not self._bwrap and not _warned:
            _warned = True
            log.warning(
                "the local sandbox does NOT isolate the network or the filesystem: candidate "
                "code can reach both. Use --sandbox docker, or install bubblewrap to confine it."
            )

    @property
    def confined(self) -> bool:
        return self._bwrap is not None

    def _visible(self) -> list[str]:
        """Interpreters and virtualenvs under /tmp a confined run must see (read-only)."""
        paths: list[str | Path] = [
            sys.prefix,
            sys.base_prefix,
            sys.exec_prefix,
            base_interpreter().parent.parent,
        ]
        if self.venv:
            paths.append(self.venv)
            cfg = (self.venv / "pyvenv.cfg").read_text().splitlines()
            home = [line.split("=", 1)[1].strip() for line in cfg if line.startswith("home")]
            paths += [Path(h).parent for h in home]
        return [p for p in _under_tmp(paths) if p != str(self._root) and p != "/tmp"]

    def _write(self, files: dict[str, bytes]) -> None:
        for path, data in files.items():
            target = self.path / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
            target.write_bytes(data)

    def _seal(self) -> None:
        _copy_tree(self.path, self._root / "sealed")
        self._snapshot: dict[str, tuple] | None = None

    def _fresh(self) -> None:
        """Make the work tree the sealed tree again, and /tmp empty.

        The first time the tree is copied whole; after that only what the last run changed is
        put back: every entry whose inode, change time (ctime, which no unprivileged call can
        set back), size or mode differs from the state after the last restore, every new
        entry and every missing one. The clock then moves past the restored entries' ctimes,
        so a write in the next run, however quick, shows.
        """
        _make_removable(self._tmp)
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp.mkdir()
        sealed = self._root / "sealed"
        if self._snapshot is None:
            _make_removable(self.path)
            shutil.rmtree(self.path, ignore_errors=True)
            if self.path.exists():  # something the run made could not be removed
                raise RuntimeError(f"could not clear {self.path} for a pristine run")
            _copy_tree(sealed, self.path)
        else:
            now = _scan(self.path)
            stale = {p for p, st in now.items() if self._snapshot.get(p) != st}
            stale |= {p for p in self._snapshot if p not in now}
            _restore(sealed, self.path, stale)
        self._snapshot = _scan(self.path)
        newest = max((st[1] for st in self._snapshot.values()), default=0)
        while time.clock_gettime_ns(_COARSE_CLOCK) <= newest:
            time.sleep(0.001)

    def close(self) -> None:
        if self._root.exists():
            _make_removable(self._root)
            shutil.rmtree(self._root, ignore_errors=True)

    # -- running ---------------------------------------------------------------------------
    def _command(self, args: list[str]) -> list[str]:
        if not self._bwrap:
            return args
        return [
            self._bwrap,
            "--ro-bind", "/", "/",
            "--tmpfs", "/tmp",
            "--bind", str(self._tmp), "/tmp",
            "--bind", str(self.path), str(self.path),
            *[arg for p in self._ro_binds for arg in ("--ro-bind", p, p)],
            "--dev", "/dev",
            "--proc", "/proc",
            "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--die-with-parent", "--new-session",
            # as root, bwrap keeps every capability: the run could remount / read-write
            "--cap-drop", "ALL",
            "--chdir", str(self.path),
            *args,
        ]  # fmt: skip

    def _env(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
        tmp = "/tmp" if self._bwrap else str(self._tmp)
        env.update(HOME=tmp, TMPDIR=tmp, OPTIMIZER_SANDBOX="local")
        # `python3` in a run is the interpreter the user runs optimizer with (a virtualenv
        # that is not activated, pyenv's), then the recipe's own virtualenv over it
        first = [str(Path(sys.executable).parent)]
        if self.venv:
            first.insert(0, f"{self.venv}/bin")
            env["VIRTUAL_ENV"] = str(self.venv)
        env["PATH"] = os.pathsep.join([*first, env.get("PATH", os.defpath)])
        env.update(extra)
        return env

    def _execute(
        self,
        args: list[str],
        limits: Limits,
        env: dict[str, str],
        collect: list[str],
        stdin: bytes | None,
        files: dict[str, bytes],
    ) -> RunResult:
        for attempt in range(_BWRAP_TRIES):
            if self.sealed:
                self._fresh()
            self._write(files)
            cgroup = PidsCgroup.create(limits.pids) if os.geteuid() == 0 else None
            try:
                result = self._spawn(args, limits, env, collect, stdin, cgroup)
            finally:
                if cgroup:
                    cgroup.remove()
            if not (self._bwrap and _bwrap_setup_failed(result)) or attempt == _BWRAP_TRIES - 1:
                return result
            time.sleep(0.05 * (attempt + 1))  # a mount vanished while bwrap copied them
        raise AssertionError("unreachable")

    def _spawn(
        self,
        args: list[str],
        limits: Limits,
        env: dict[str, str],
        collect: list[str],
        stdin: bytes | None,
        cgroup: PidsCgroup | None,
    ) -> RunResult:
        if CANCEL.is_set():
            raise KeyboardInterrupt
        stop = threading.Event()
        capture = OutputCapture(limits.output_bytes, stop)
        reason: dict[str, str] = {}
        started = time.perf_counter()
        proc = subprocess.Popen(
            self._command(args),
            cwd=self.path,
            env=self._env(env),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_rlimits(limits, cgroup),
        )
        t0 = time.perf_counter()
        ended = [t0]

        def wait() -> None:
            proc.wait()
            ended[0] = time.perf_counter()
            stop.set()

        threads = [
            threading.Thread(target=_pump, args=(proc.stdout, "stdout", capture), daemon=True),
            threading.Thread(target=_pump, args=(proc.stderr, "stderr", capture), daemon=True),
            threading.Thread(target=wait, daemon=True),
        ]
        if os.geteuid() == 0 and cgroup is None:  # no rlimit or cgroup binds: count the tree
            threads.append(
                threading.Thread(
                    target=_watch_pids, args=(proc.pid, limits.pids, stop, reason), daemon=True
                )
            )
        for t in threads:
            t.start()
        if stdin is not None:
            threading.Thread(target=_feed, args=(proc, stdin), daemon=True).start()
        try:
            finished = wait_run(stop, limits.wall_s)
            stopped_at = time.perf_counter()
            if not finished:
                reason.setdefault("stopped", "wall")
            elif capture.truncated:
                reason.setdefault("stopped", "output")
            elif len(_tree(proc.pid)) > limits.pids:  # e.g. a fork bomb whose parent exited
                reason.setdefault("stopped", "pids")
        finally:
            if cgroup:
                cgroup.kill_all()
            _kill_tree(proc)
        for t in threads[:3]:
            t.join(timeout=5)
        duration = (stopped_at if reason else ended[0]) - t0
        code = proc.returncode
        exit_code = 128 - code if code is not None and code < 0 else code
        stderr = capture.text("stderr")
        status, why = classify(
            exit_code, stopped=reason.get("stopped", ""), stderr=stderr, limits=limits
        )
        files = self._collect(collect)
        return RunResult(
            status=status,
            exit_code=None if reason else exit_code,
            duration_s=duration,
            overhead_s=max(0.0, time.perf_counter() - started - duration),
            stdout=capture.text("stdout"),
            stderr=stderr,
            output_truncated=capture.truncated,
            reason=why,
            files=files,
        )

    def _collect(self, paths: list[str]) -> dict[str, bytes]:
        files = {}
        for name in paths:
            p = self.path / name
            if p.is_file() and not p.is_symlink() and p.stat().st_size <= _COLLECT_MAX:
                files[name] = p.read_bytes()
        return files


def _check_venv(venv: str | Path | None) -> Path | None:
    """The recipe's virtualenv; an image tag (a docker backend's env) is no concern here."""
    if venv is None or not str(venv).startswith("/"):
        return None  # None, or a Docker image tag meant for the docker backend
    path = Path(venv)
    if not (path / "pyvenv.cfg").is_file() or not (path / "bin").is_dir():
        raise SandboxError(
            f"{venv} is not a virtual environment for the local sandbox",
            "pass the path `image_for(..., backend='local')` returns, or none",
        )
    return path


#: The clock file systems stamp ctime with (CLOCK_REALTIME_COARSE; Python names no constant).
_COARSE_CLOCK = getattr(time, "CLOCK_REALTIME_COARSE", 5)
#: bubblewrap copies every mount under / (--ro-bind / /): one that vanishes meanwhile (a
#: container of another process on this host) fails its setup; such a run is started again.
_BWRAP_TRIES = 4


def _bwrap_setup_failed(result: RunResult) -> bool:
    """Whether bubblewrap itself failed to set up the run (nothing of the command ran)."""
    first = result.stderr.lstrip().splitlines()[:1]
    return result.exit_code == 1 and bool(first) and first[0].startswith("bwrap: ")


def _scan(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: (inode, ctime ns, size, mode), by relative path."""
    out: dict[str, tuple] = {}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            st = e.stat(follow_symlinks=False)
            rel = os.path.relpath(e.path, root)
            out[rel] = (st.st_ino, st.st_ctime_ns, st.st_size, st.st_mode)
            if e.is_dir(follow_symlinks=False):
                stack.append(Path(e.path))
    return out


def _restore(sealed: Path, work: Path, stale: set[str]) -> None:
    """Put each stale path back as it is in ``sealed``, shallowest first.

    An entry whose type changed (a folder made a file or a link, say) is replaced whole, and
    nothing below it is looked at again, so no path is ever followed through a link the run
    made. Folders that are folders on both sides only get their mode and times back: their
    entries are stale on their own where they changed.
    """
    replaced: list[str] = []
    for rel in sorted(stale, key=lambda p: (p.count(os.sep), p)):
        if any(rel.startswith(r + os.sep) for r in replaced):
            continue
        target, source = work / rel, sealed / rel
        if os.path.realpath(target.parent) != os.path.join(
            os.path.realpath(work), os.path.dirname(rel)
        ).rstrip(os.sep):
            raise RuntimeError(f"{rel}: its folder is not where it should be")
        t_dir = target.is_dir() and not target.is_symlink()
        s_dir = source.is_dir() and not source.is_symlink()
        if t_dir and s_dir:
            shutil.copystat(source, target)
            continue
        if t_dir:
            _make_removable(target)
            shutil.rmtree(target)
        elif os.path.lexists(target):
            target.unlink()
        if s_dir:
            _copy_tree(source, target)
        elif os.path.lexists(source):
            shutil.copy2(source, target, follow_symlinks=False)
        replaced.append(rel)


def _copy_tree(src: Path, dest: Path) -> None:
    """Copy a tree with its modes, times and links (reflinks where the filesystem can)."""
    done = subprocess.run(
        ["cp", "-a", "--reflink=auto", f"{src}/.", str(dest)], capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"copying the sandbox tree failed: {done.stderr.strip()}")


def _rlimits(limits: Limits, cgroup: PidsCgroup | None = None):
    """A pre-exec hook putting the child in its cgroup and setting its rlimits."""
    memory = limits.memory_mb * MiB
    nproc = None if os.geteuid() == 0 else _user_process_count() + limits.pids

    def apply() -> None:
        if cgroup:
            cgroup.join()
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if limits.cpu_s is not None:
            cpu = int(limits.cpu_s + 0.999)
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        cpus = _parse_cpuset(limits.cpuset)
        if cpus:
            os.sched_setaffinity(0, cpus)

    return apply


def _parse_cpuset(spec: str) -> set[int]:
    cpus: set[int] = set()
    for part in filter(None, spec.split(",")):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def _user_process_count() -> int:
    uid = os.getuid()
    return sum(1 for p in Path("/proc").iterdir() if p.name.isdigit() and _owner(p) == uid)


def _owner(p: Path) -> int | None:
    try:
        return p.stat().st_uid
    except OSError:
        return None


def _pump(pipe, stream: str, capture: OutputCapture) -> None:
    while chunk := pipe.read1(65536):
        capture.feed(stream, chunk)
    pipe.close()


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except OSError:
        pass


def _tree(root: int) -> set[int]:
    """The pids of ``root``, its descendants, and everything in its process group."""
    parent: dict[int, int] = {}
    group: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        if int(fields[2]) == root:
            group.add(pid)
    found = {root} | group
    frontier = list(found)
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    while frontier:
        for child in children.get(frontier.pop(), ()):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return {p for p in found if p in parent}


def _watch_pids(root: int, most: int, stop: threading.Event, reason: dict[str, str]) -> None:
    """Stop the run when its process tree grows past ``most`` (rlimits do not bind root)."""
    while not stop.wait(0.1):
        if len(_tree(root)) > most:
            reason.setdefault("stopped", "pids")
            stop.set()


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the run's process group and every descendant, until none is left."""
    for _ in range(100):
        pids = _tree(proc.pid) - {os.getpid()}
        if proc.returncode is None:
            pids.add(proc.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        proc.poll()
        if not (_tree(proc.pid) - {proc.pid}) and proc.returncode is not None:
            return
        time.sleep(0.01)


def _make_removable(root: Path) -> None:
    """A run may have made directories read-only; give them back their write bit."""
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, d), 0o755)
