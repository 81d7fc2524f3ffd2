"""What this machine has for sandboxing and measuring, and the command that fixes each gap."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

from pydantic import BaseModel

from sandbox import engine
from sandbox.errors import SandboxError


class Check(BaseModel):
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _which(name: str, package: str, why: str, required: bool = True) -> Check:
    path = shutil.which(name)
    return Check(
        name=name,
        ok=path is not None,
        detail=path or f"not found ({why})",
        fix="" if path else f"apt-get install -y {package}",
        required=required,
    )


def _module(name: str, why: str, fix: str) -> Check:
    found = importlib.util.find_spec(name) is not None
    version = ""
    if found:
        try:
            from importlib.metadata import version as dist_version

            version = dist_version(name)
        except Exception:
            version = "installed"
    return Check(
        name=name,
        ok=found,
        detail=version if found else f"not installed ({why})",
        fix="" if found else fix,
        required=False,
    )


def _gpu() -> Check:
    smi = shutil.which("nvidia-smi")
    if smi:
        done = subprocess.run([smi, "-L"], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            return Check(name="gpu", ok=True, detail=done.stdout.strip().splitlines()[0])
    return Check(
        name="gpu",
        ok=False,
        detail="none: kernels run on the CPU with TRITON_INTERPRET=1",
        fix="run on a machine with an NVIDIA GPU and driver for GPU timings",
        required=False,
    )


def checks() -> list[Check]:
    """Every check, in the order a user fixes them."""
    from sandbox.images import SUITE, SUITES, base_tag, image_exists

    result = []
    try:
        version = engine.client().version().get("Version", "?")
        result.append(Check(name="docker engine", ok=True, detail=f"Docker {version}"))
        tag = base_tag()
        built = image_exists(tag)
        result.append(
            Check(
                name="base image",
                ok=built,
                detail=tag if built else f"{tag} is not built",
                fix="" if built else "optimizer sandbox build",
            )
        )
        others = {v: image_exists(base_tag(s)) for s, v in SUITES.items() if s != SUITE}
        missing = [v for v, ok in others.items() if not ok]
        result.append(
            Check(
                name="other Pythons",
                ok=not missing,
                detail="; ".join(
                    f"{v}: {'built' if ok else 'not built'}" for v, ok in others.items()
                )
                + " (for a task's setup.python)",
                fix=" / ".join(f"optimizer sandbox build --python {v}" for v in missing),
                required=False,
            )
        )
    except SandboxError:
        result.append(
            Check(
                name="docker engine",
                ok=False,
                detail="no engine answers (the local sandbox is the fallback)",
                fix="apt-get install -y docker.io && (dockerd > /var/log/dockerd.log 2>&1 &)",
            )
        )
        result.append(
            Check(
                name="base image",
                ok=False,
                detail="needs a Docker engine",
                fix="optimizer sandbox build (once the engine answers)",
            )
        )
    result += [
        _which("mmdebstrap", "mmdebstrap", "builds the base image offline"),
        _which("bwrap", "bubblewrap", "confines the local sandbox", required=False),
        _which("valgrind", "valgrind", "counts instructions"),
        _module("torch", "GPU kernel tasks", 'pip install -e ".[kernels]"'),
        _module("triton", "GPU kernel tasks", 'pip install -e ".[kernels]"'),
        _module("ray", "optimizer evaluate --ray", 'pip install -e ".[ray]"'),
        _gpu(),
    ]
    return result
