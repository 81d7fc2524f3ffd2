"""Whether this host has NVIDIA GPUs, and whether the Docker engine can pass them through."""

from __future__ import annotations

import glob
import shutil


def host_has_gpu() -> bool:
    """An NVIDIA driver is loaded here (its device nodes exist, or nvidia-smi is installed)."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or shutil.which("nvidia-smi") is not None


def docker_gpu_problem() -> str | None:
    """Why the Docker engine cannot run containers with GPUs, or None when it can (the
    NVIDIA runtime is registered, as the NVIDIA Container Toolkit does)."""
    from sandbox import engine

    info = engine.client().info()
    runtimes = set(info.get("Runtimes") or {})
    if "nvidia" in runtimes or any("nvidia" in str(d) for d in info.get("CDISpecDirs") or []):
        return None
    return (
        "this host has a GPU but the Docker engine has no NVIDIA runtime (runtimes: "
        f"{', '.join(sorted(runtimes)) or 'none'}): install the NVIDIA Container Toolkit "
        "(nvidia-ctk runtime configure --runtime=docker) and restart dockerd, or grade with "
        "--sandbox local"
    )
