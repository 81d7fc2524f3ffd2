"""A pids cgroup for a local run: the kernel caps its processes, and we can kill them all.

RLIMIT_NPROC does not bind root, so a root run of the local backend gets a cgroup of its own
(v1 ``/sys/fs/cgroup/pids`` or a v2 hierarchy with the pids controller) where the machine
allows it. Elsewhere :meth:`PidsCgroup.create` returns None and the caller falls back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

_V1 = Path("/sys/fs/cgroup/pids")
_V2 = Path("/sys/fs/cgroup")


class PidsCgroup:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, limit: int) -> PidsCgroup | None:
        """A fresh cgroup holding at most ``limit`` tasks, or None where none can be made."""
        for root in (_V1, _V2):
            if not (root / "cgroup.procs").exists() or not os.access(root, os.W_OK):
                continue
            if root == _V2 and "pids" not in _read(root / "cgroup.subtree_control"):
                continue
            path = root / f"optimizer-{uuid.uuid4().hex[:12]}"
            try:
                path.mkdir()
                (path / "pids.max").write_text(str(limit))
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            return cls(path)
        return None

    @classmethod
    def available(cls) -> bool:
        """Whether this process can make pids cgroups here."""
        probe = cls.create(1)
        if probe is None:
            return False
        probe.remove()
        return True

    def join(self) -> None:
        """Move the calling process in (call it in the child, before exec)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def procs(self) -> list[int]:
        return [int(p) for p in _read(self.path / "cgroup.procs").split()]

    def kill_all(self) -> None:
        """SIGKILL every task in the cgroup until it is empty (a bomb may still be forking)."""
        for _ in range(200):
            pids = self.procs()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    def remove(self) -> None:
        self.kill_all()
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:  # tasks not yet reaped
                time.sleep(0.01)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
