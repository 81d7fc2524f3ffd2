"""Connecting to the Docker engine, with one-line errors when there is none."""

from __future__ import annotations

import functools
import os
import socket

import docker
import docker.errors

from sandbox.errors import SandboxError

#: The label every sandbox container and instance image carries (value: the sandbox id), with
#: ``LABEL.owner`` = OWNER beside it.
LABEL = "optimizer.sandbox"
#: The label of env-image build containers (value: OWNER); the env images inherit it.
BUILD_LABEL = "optimizer.build"
#: Who made an item: this host and process, so a sweep can tell a dead owner's leftovers.
OWNER = f"{socket.gethostname()}:{os.getpid()}"

NO_ENGINE_FIX = (
    "start one (`apt-get install -y docker.io && dockerd &`, or Docker Desktop), "
    "or use `--sandbox local`"
)


@functools.cache
def client() -> docker.DockerClient:
    """A client for the engine named by DOCKER_HOST (or the local socket)."""
    try:
        c = docker.from_env(timeout=120)
        c.ping()
    except docker.errors.DockerException as exc:
        reason = str(exc).split(":")[0] if str(exc) else type(exc).__name__
        host = os.environ.get("DOCKER_HOST")
        where = f" at DOCKER_HOST={host}" if host else ""
        fix = f"check or unset DOCKER_HOST ({host}); {NO_ENGINE_FIX}" if host else NO_ENGINE_FIX
        raise SandboxError(f"no Docker engine answers{where} ({reason})", fix) from None
    return c


def available() -> bool:
    """Whether a Docker engine answers."""
    try:
        client()
    except SandboxError:
        return False
    return True
