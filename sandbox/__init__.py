"""Execution: run untrusted commands on a private copy of a source tree, with limits.

>>> from sandbox import Source, open_sandbox
>>> with open_sandbox(Source(repo=".", rev="HEAD")) as sb:
...     result = sb.run("python3 -c 'print(1)'")
"""

from __future__ import annotations

import functools
from typing import Literal

from sandbox.base import Sandbox, SealedError
from sandbox.errors import SandboxError, UserError
from sandbox.models import Limits, RunResult, Source, Status

Backend = Literal["auto", "docker", "local"]

__all__ = [
    "Backend",
    "Limits",
    "RunResult",
    "Sandbox",
    "SandboxError",
    "SealedError",
    "Source",
    "Status",
    "UserError",
    "open_sandbox",
]


@functools.cache
def _say_fallback_once() -> None:
    """``--sandbox auto`` without an engine: say so once per process, never silently."""
    import logging
    import os

    host = os.environ.get("DOCKER_HOST")
    logging.getLogger("sandbox").warning(
        "no Docker engine answers%s: --sandbox auto runs in the local sandbox (process "
        "isolation only); pass --sandbox docker to require Docker",
        f" at DOCKER_HOST={host}" if host else "",
    )


def open_sandbox(
    source: Source,
    backend: Backend = "auto",
    *,
    limits: Limits | None = None,
    image: str | None = None,
) -> Sandbox:
    """Make a private copy of ``source`` in the chosen backend.

    ``auto`` picks docker wherever an engine answers, else local. ``image`` is what
    :func:`sandbox.images.image_for` returned: a Docker image for the docker backend, the
    path of the recipe's virtualenv for the local one (which ignores an image tag).
    """
    from sandbox import engine

    if backend == "auto":
        backend = "docker" if engine.available() else "local"
        if backend == "local":
            _say_fallback_once()
    if backend == "docker":
        from sandbox.docker_sandbox import DockerSandbox

        return DockerSandbox(source, limits, image=image)
    from sandbox.local_sandbox import LocalSandbox

    return LocalSandbox(source, limits, venv=image)
