"""Instance images that a Ctrl-C left to remove, removed by a detached process.

Removing an instance image means deleting its layer's files; for a real repository that is
0.2-0.3 s an image on a busy engine, and a `ci` or `run` has two sandboxes of about three
images each. Done before exiting, that is most of the time a Ctrl-C takes (1.4-2.5 s seen at
load 5.7 on 2 cores). So after a Ctrl-C :meth:`DockerSandbox.close` removes its containers
at once (nothing of the candidate's runs on) and hands its images here; when the CLI exits,
one process in a session of its own (a second Ctrl-C does not reach it) removes them,
newest first, as ``close`` would have. If it cannot, the next sandbox's sweep does: the
images carry the ended CLI's pid as their owner.

    python -m sandbox.reap IMAGE_ID ...
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

_PENDING: list[str] = []  # newest first within each sandbox's chain


def defer(image_ids: list[str]) -> None:
    """Remove these images (a chain, newest first) once this process exits."""
    if not _PENDING:
        atexit.register(_start)
    _PENDING.extend(image_ids)


def _start() -> None:
    if not _PENDING:
        return
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get(
        "PYTHONPATH")]))}  # fmt: skip
    with contextlib.suppress(OSError):
        subprocess.Popen(
            [sys.executable, "-m", "sandbox.reap", *_PENDING],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    _PENDING.clear()


def main(image_ids: list[str]) -> None:
    import docker

    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(docker.errors.DockerException):
        api = docker.from_env(timeout=120).api
        for image_id in image_ids:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                api.remove_image(image_id, force=True, noprune=True)


if __name__ == "__main__":
    main(sys.argv[1:])
