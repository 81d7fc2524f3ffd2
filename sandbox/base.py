"""The one sandbox interface, and the pieces both backends share."""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from sandbox.models import Limits, RunResult, Source, Status

#: What a command may be: a shell string, or an argv list run without a shell.
Command = str | Sequence[str]

#: In a run's variables, the work directory's absolute path (it differs between sandboxes).
WORKDIR = "{workdir}"
#: Lines in stderr by which a program says it ran out of memory.
_OOM_MARKERS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")


#: Set once on Ctrl-C (the CLI's SIGINT handler, in the main thread): every run in flight, in
#: any thread, is killed at once and raises KeyboardInterrupt, and no new run starts. Without
#: it a worker thread would wait for its valgrind run to end before the interrupt got out.
CANCEL = threading.Event()


def wait_run(stop: threading.Event, timeout: float) -> bool:
    """``stop.wait(timeout)`` that gives up at once on :data:`CANCEL`: True when the run
    ended, False when its wall time ran out; KeyboardInterrupt when cancelled (the caller's
    ``finally`` kills the run)."""
    deadline = time.monotonic() + timeout
    while True:
        if CANCEL.is_set():
            raise KeyboardInterrupt
        left = deadline - time.monotonic()
        if left <= 0:
            return stop.is_set()
        if stop.wait(min(left, 0.05)):
            return True


def argv(cmd: Command) -> list[str]:
    """Turn a command into an argv list (a string runs under ``/bin/sh -c``)."""
    return ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)


def describe(cmd: Command) -> str:
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


class SealedError(RuntimeError):
    """A write into a sealed sandbox: its tree is fixed, each run starts from it afresh."""


class Sandbox(ABC):
    """A private copy of a source tree, and a way to run commands in it with limits.

    Until :meth:`seal` is called, what a run writes into the tree stays (installing, building).
    After it, **every run starts from the same pristine tree**: the sealed copy, with a fresh
    /tmp and home, so nothing one run writes (a cache file, a pickled answer, a rewritten
    source file) exists in the next. Use it as a context manager; ``close()`` removes the copy
    and everything the runs made.
    """

    backend: str
    #: The commit the copy was made from.
    sha: str
    #: The work directory as commands see it.
    workdir: str

    sealed: bool = False

    def __init__(self, source: Source, limits: Limits | None = None) -> None:
        self.source = source
        self.limits = limits or Limits()

    def run(
        self,
        cmd: Command,
        *,
        limits: Limits | None = None,
        env: Mapping[str, str] | None = None,
        collect: Iterable[str] = (),
        stdin: bytes | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> RunResult:
        """Run ``cmd`` in the work directory, with limits, and collect the named files.

        ``collect`` names files relative to the work directory; each one that exists after
        the run comes back in ``RunResult.files``. The harness reads results from those
        files, never from the command's stdout. ``files`` are written into this run's tree
        before it starts (and, once sealed, are gone for the next run).
        """
        paths = [relative(p) for p in collect]
        extra = {relative(k): v for k, v in (files or {}).items()}
        env = {k: v.replace(WORKDIR, self.workdir) for k, v in (env or {}).items()}
        return self._execute(argv(cmd), limits or self.limits, env, paths, stdin, extra)

    def seal(self) -> None:
        """Fix the tree as it is now: from here on every run starts from this state."""
        if not self.sealed:
            self._seal()
            self.sealed = True

    @contextlib.contextmanager
    def session(self, writable: Iterable[str] = ()) -> Iterator[Sandbox]:
        """A sandbox for many short runs, each still starting from the pristine tree.

        Inside ``with sb.session() as s:``, ``s.run(...)`` behaves like ``sb.run(...)``; a
        backend whose pristine runs are costly to start may make them cheaper (docker: one
        long-lived container and a ``docker exec`` per run, where ``writable`` names the
        work-dir paths a run may write). By default it yields the sandbox itself.
        """
        yield self

    def write_file(self, path: str, data: bytes) -> None:
        """Write a file into the copy (relative to the work directory), before sealing."""
        self.write_files({path: data})

    def write_files(self, files: Mapping[str, bytes]) -> None:
        """Write files into the copy (relative to the work directory), before sealing."""
        if self.sealed:
            raise SealedError("the sandbox is sealed: pass per-run files to run(files=...)")
        self._write({relative(k): v for k, v in files.items()})

    @abstractmethod
    def _seal(self) -> None:
        """Keep the current tree as the pristine state every later run starts from."""

    @abstractmethod
    def _write(self, files: dict[str, bytes]) -> None:
        """Write files into the (unsealed) copy."""

    @abstractmethod
    def _execute(
        self,
        args: list[str],
        limits: Limits,
        env: dict[str, str],
        collect: list[str],
        stdin: bytes | None,
        files: dict[str, bytes],
    ) -> RunResult:
        """The backend's part of ``run``, with every argument normalized."""

    @abstractmethod
    def close(self) -> None:
        """Remove the copy and everything the runs left behind. Safe to call twice."""

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OutputCapture:
    """Collects stdout and stderr up to a byte budget; past it, asks for the run to stop."""

    def __init__(self, budget: int, on_overflow: threading.Event) -> None:
        self.budget = budget
        self.used = 0
        self.truncated = False
        self.parts: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        self._overflow = on_overflow
        self._lock = threading.Lock()

    def feed(self, stream: str, data: bytes) -> None:
        with self._lock:
            room = self.budget - self.used
            if room > 0:
                self.parts[stream].append(data[:room])
            self.used += len(data)
            if self.used > self.budget and not self.truncated:
                self.truncated = True
                self._overflow.set()

    def text(self, stream: str) -> str:
        return b"".join(self.parts[stream]).decode("utf-8", errors="replace")


def relative(path: str) -> str:
    """Check that a collected or written path stays inside the work directory."""
    p = Path(path)
    if p.is_absolute() or ".." in p.parts:
        raise ValueError(f"path must be relative to the work directory: {path}")
    return p.as_posix()


def classify(
    exit_code: int | None,
    *,
    stopped: str = "",
    oom_killed: bool = False,
    stderr: str = "",
    limits: Limits,
) -> tuple[Status, str]:
    """Decide a run's status and a human reason from how it ended.

    ``stopped`` names the limit the harness enforced itself ("wall", "output", "pids"), if any.
    ``exit_code`` follows the shell convention: 128+N means killed by signal N.
    """
    if stopped == "wall":
        return Status.TIMEOUT, f"killed after the {limits.wall_s:g} s wall-clock limit"
    if stopped == "output":
        return Status.KILLED, f"killed for printing more than {limits.output_bytes} bytes"
    if stopped == "pids":
        return Status.KILLED, f"killed for starting more than {limits.pids} processes"
    if oom_killed:
        return Status.OOM, f"killed for passing the {limits.memory_mb} MB memory limit"
    if exit_code == 0:
        return Status.OK, ""
    sig = exit_code - 128 if exit_code is not None and 128 < exit_code <= 128 + 64 else 0
    if limits.cpu_s is not None and sig in (signal.SIGXCPU, signal.SIGKILL):
        # the soft CPU limit sends SIGXCPU, the hard one (a second later) SIGKILL
        return Status.TIMEOUT, f"killed after the {limits.cpu_s or 0:g} s CPU-time limit"
    tail = stderr[-4000:]
    if any(marker in tail for marker in _OOM_MARKERS):
        return Status.OOM, f"ran out of memory under the {limits.memory_mb} MB limit"
    if sig:
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
        return Status.KILLED, f"killed by signal {name}"
    return Status.ERROR, f"exited with code {exit_code}"
