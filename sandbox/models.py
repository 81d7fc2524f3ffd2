"""Typed inputs and outputs of a sandboxed run."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

MiB = 1024 * 1024


def all_cpus() -> str:
    """The cpuset of every CPU this process may use, e.g. ``"0-1"`` or ``"0,2"``."""
    cpus = sorted(os.sched_getaffinity(0))
    return ",".join(str(c) for c in cpus)


class Limits(BaseModel):
    """Resource limits for one command. Every run gets all of them."""

    model_config = ConfigDict(frozen=True)

    wall_s: float = Field(600.0, gt=0, description="Wall-clock limit; the run is killed after it.")
    cpu_s: float | None = Field(None, gt=0, description="CPU-time limit (RLIMIT_CPU).")
    memory_mb: int = Field(4096, gt=0, description="Memory limit (cgroup, or RLIMIT_AS locally).")
    pids: int = Field(512, gt=0, description="Most processes and threads at once.")
    output_bytes: int = Field(16 * MiB, gt=0, description="Most stdout+stderr bytes kept.")
    cpuset: str = Field(default_factory=all_cpus, description="CPUs the run may use, e.g. '1'.")
    tmp_mb: int = Field(1024, gt=0, description="Size of the private /tmp (docker).")
    gpus: bool = Field(
        False, description="Pass the host's GPUs through (docker: the NVIDIA container runtime)."
    )


class Status(StrEnum):
    """How a run ended."""

    OK = "ok"  # exited with code 0
    ERROR = "error"  # exited with a non-zero code, or could not start
    TIMEOUT = "timeout"  # passed its wall or CPU limit and was killed
    OOM = "oom"  # passed its memory limit
    KILLED = "killed"  # killed for its output or process count, or by a signal


class RunResult(BaseModel):
    """The outcome of one command in a sandbox."""

    status: Status
    exit_code: int | None = Field(None, description="None when the run was killed.")
    duration_s: float = Field(description="Wall time of the command itself.")
    overhead_s: float = Field(0.0, description="Time spent starting and collecting the run.")
    stdout: str = ""
    stderr: str = ""
    output_truncated: bool = False
    reason: str = Field("", description="Why the run ended, for humans, when it is not ok.")
    files: dict[str, bytes] = Field(
        default_factory=dict, description="Collected files, keyed by their path in the work dir."
    )

    @property
    def ok(self) -> bool:
        return self.status is Status.OK


class Source(BaseModel):
    """A source tree: a git revision of a repository, plus an optional patch on top."""

    repo: Path
    rev: str = "HEAD"
    patch: str | None = Field(None, description="A unified diff (as `git diff` writes it).")
