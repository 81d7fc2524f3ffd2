"""Images built offline: a Debian base from mmdebstrap, and environment layers on top.

Like SWE-bench's harness, images are layered base -> env -> (task), and each is tagged
by a content hash of its recipe, so a recipe is built once and reused until it changes.
Builds may use the host network (for apt and pip), with the host's CA bundle passed in;
candidate runs never get a network.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker.errors
from pydantic import BaseModel, Field

from sandbox.engine import BUILD_LABEL, OWNER, client
from sandbox.errors import SandboxError

#: The default Debian suite of the base image.
SUITE = "bookworm"
#: The CPython each Debian stable suite carries as ``python3`` (checked on the mirror:
#: bullseye 3.9.2, bookworm 3.11.2, trixie 3.13.5), with python3-pip, python3-venv and
#: valgrind under those names. Testing and sid move, so they are not offered.
SUITES = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}
BASE_REPO = "optimizer-base"
ENV_REPO = "optimizer-env"
SANDBOX_UID = 1000
#: Debian packages of the base image: python3 for workloads, valgrind for instruction counts.
BASE_PACKAGES = (
    "python3",
    "python3-pip",
    "python3-venv",
    "ca-certificates",
    "git",
    "procps",
    "valgrind",
)


def base_packages(suite: str = SUITE) -> tuple[str, ...]:
    """The packages of the base on ``suite``: from trixie on, ``login`` is no longer essential
    and ``useradd`` (package passwd) must be asked for; the default suite's list is as ever."""
    return BASE_PACKAGES if suite == SUITE else (*BASE_PACKAGES, "passwd")


_HOOKS = (
    'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
    f'chroot "$1" useradd --uid {SANDBOX_UID} --create-home --shell /bin/sh sandbox',
    'mkdir -p "$1/work" && chown 1000:1000 "$1/work"',
    'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*',
)
_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "ENV PYTHONDONTWRITEBYTECODE=1",
    "WORKDIR /work",
    'CMD ["python3"]',
)
_log = logging.getLogger("optimizer.sandbox")
#: The host CA bundle, as build containers see it.
_CA_IN_CONTAINER = "/tmp/optimizer-host-ca.crt"


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def base_tag(suite: str = SUITE) -> str:
    """The tag of the base image (on Debian ``suite``) this version of the code wants."""
    packages = base_packages(suite)
    recipe = {"suite": suite, "packages": packages, "hooks": _HOOKS, "changes": _CHANGES}
    return f"{BASE_REPO}:{_digest(recipe)}"


def python_version(python: str) -> str:
    """``"3.13"`` from ``"3.13"``, ``" 3.13 "`` or ``"python3.13"``; the major.minor asked for."""
    version = python.strip().removeprefix("python")
    parts = version.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        version = ".".join(parts[:2])  # a patch release: Debian pins its own
    return version


def suite_for(python: str | None) -> str:
    """The Debian suite whose ``python3`` is Python ``python`` (the default suite for None)."""
    if python is None:
        return SUITE
    version = python_version(python)
    for suite, carried in SUITES.items():
        if carried == version:
            return suite
    offered = ", ".join(f"{v} ({s})" for s, v in SUITES.items())
    raise SandboxError(
        f"no Debian suite carries Python {python.strip()} for the docker sandbox "
        f"(it can build {offered})",
        f"set setup.python in task.toml to one of {', '.join(SUITES.values())}, "
        "or give a prebuilt image with that interpreter as setup.image",
    )


def build_fix(suite: str = SUITE) -> str:
    """The command that builds the base image on ``suite``."""
    if suite == SUITE:
        return "run `optimizer sandbox build`"
    return f"run `optimizer sandbox build --python {SUITES[suite]}`"


def image_exists(tag: str) -> bool:
    try:
        client().images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def mirror() -> str:
    """The Debian mirror: $OPTIMIZER_DEBIAN_MIRROR, else the host's apt source, else Debian's."""
    if url := os.environ.get("OPTIMIZER_DEBIAN_MIRROR"):
        return url
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    return "http://deb.debian.org/debian"


def build_base(*, suite: str = SUITE, force: bool = False, log=print) -> str:
    """Build the base image on Debian ``suite`` with mmdebstrap + ``docker import``.

    Return its tag. The default suite's image is also tagged ``latest``, any other one by
    its suite's name (``optimizer-base:trixie``).
    """
    if suite not in SUITES:
        raise SandboxError(
            f"unknown Debian suite {suite!r} for the base image",
            f"use one of {', '.join(SUITES)}",
        )
    tag = base_tag(suite)
    if image_exists(tag) and not force:
        log(f"base image {tag} is up to date")
        return tag
    if not shutil.which("mmdebstrap"):
        raise SandboxError(
            "mmdebstrap is not installed",
            "`apt-get install -y mmdebstrap`, then run `optimizer sandbox build` again",
        )
    with tempfile.TemporaryDirectory(prefix="optimizer-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        cmd = [
            "mmdebstrap",
            "--variant=apt",
            "--quiet",
            f"--include={','.join(base_packages(suite))}",
            *[f"--customize-hook={hook}" for hook in _HOOKS],
            suite,
            str(rootfs),
            mirror(),
        ]
        log(
            f"building the base rootfs with mmdebstrap ({suite}, Python {SUITES[suite]}, "
            f"{len(base_packages(suite))} packages)"
        )
        with heartbeat(log, "building the rootfs"):
            done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            lines = (done.stderr or done.stdout).strip().splitlines()
            errors = [ln for ln in lines if ln.startswith("E:") and "failed to run" not in ln]
            tail = errors[-1:] or lines[-1:] or ["no output"]
            raise SandboxError(
                f"mmdebstrap failed ({suite}): {tail[0]}",
                f"check that the Debian mirror {mirror()} "
                "is reachable (set OPTIMIZER_DEBIAN_MIRROR to another one)",
            )
        log(f"importing the rootfs as {tag}")
        repo, version = tag.split(":")
        client().api.import_image_from_file(
            str(rootfs), repository=repo, tag=version, changes=list(_CHANGES)
        )
    client().images.get(tag).tag(BASE_REPO, "latest" if suite == SUITE else suite)
    return tag


@contextlib.contextmanager
def heartbeat(log, what: str, every: float = 15.0) -> Iterator[None]:
    """While a long silent step runs, a line every ``every`` seconds (``still building the
    rootfs (45 s)``): a log that says nothing for minutes looks hung."""
    done = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not done.wait(every):
            log(f"  still {what} ({time.monotonic() - started:.0f} s)")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=1)


class EnvRecipe(BaseModel):
    """A per-target environment layer: what to install on top of the base image."""

    apt: list[str] = Field(default_factory=list, description="Debian packages.")
    pip: list[str] = Field(default_factory=list, description="pip requirement specifiers.")
    run: list[str] = Field(default_factory=list, description="Shell commands, run as root.")

    def script(self) -> str:
        steps = []
        if self.apt:
            steps.append("apt-get update -qq")
            steps.append(
                f"DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {' '.join(self.apt)}"
            )
            steps.append("rm -rf /var/lib/apt/lists/*")
        if self.pip:
            quoted = " ".join(f"'{req}'" for req in self.pip)
            steps.append(f"python3 -m pip install --no-cache-dir -q {quoted}")
        steps.extend(self.run)
        return " && ".join(steps) or "true"


def _single_file_tar(name: str, path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(path, arcname=name)
    return buf.getvalue()


def host_ca_bundle() -> Path | None:
    """The host's CA bundle, so pip works behind a TLS-inspecting proxy."""
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def host_wheelhouses() -> list[str]:
    """The local folders the host's pip finds wheels in (``PIP_FIND_LINKS`` or pip's
    ``find-links`` setting), mounted read-only into env builds so that a wheel this machine
    keeps (a CPU build of torch, say) is the one installed, not a download."""
    value = os.environ.get("PIP_FIND_LINKS")
    if value is None:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.find-links"],
            capture_output=True, text=True,
        )  # fmt: skip
        value = done.stdout if done.returncode == 0 else ""
    folders = [v.removeprefix("file://") for v in value.split()]
    return [f for f in folders if f.startswith("/") and Path(f).is_dir()]


def env_tag(recipe: EnvRecipe, base: str | None = None) -> str:
    base = base or base_tag()
    return f"{ENV_REPO}:{_digest({'base': base, 'recipe': recipe.model_dump()})}"


def build_env(recipe: EnvRecipe, *, base: str | None = None, log=print) -> str:
    """Build (or reuse) the env layer for ``recipe`` on top of ``base``; return its tag."""
    base = base or base_tag()
    tag = env_tag(recipe, base)
    if image_exists(tag):
        return tag
    if not image_exists(base):
        raise SandboxError(f"base image {base} is missing", "run `optimizer sandbox build`")
    env = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_ROOT_USER_ACTION": "ignore"}
    for key in ("PIP_INDEX_URL", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        if key in os.environ:
            env[key] = os.environ[key]
    script = recipe.script()
    ca = host_ca_bundle()
    if ca:  # copied in (not mounted), used by pip and apt, and removed before the commit
        env.update(PIP_CERT=_CA_IN_CONTAINER, SSL_CERT_FILE=_CA_IN_CONTAINER)
        env["REQUESTS_CA_BUNDLE"] = _CA_IN_CONTAINER
        script = f"({script}); code=$?; rm -f {_CA_IN_CONTAINER}; exit $code"
    wheels = host_wheelhouses() if recipe.pip else []
    if wheels:
        env["PIP_FIND_LINKS"] = " ".join(wheels)
    log(f"building env layer {tag}: {recipe.script()}")
    container = client().containers.create(
        base,
        ["/bin/sh", "-c", script],
        network_mode="host",
        environment=env,
        labels={BUILD_LABEL: OWNER},
        user="root",
        volumes={w: {"bind": w, "mode": "ro"} for w in wheels},
    )
    if ca:
        container.put_archive("/tmp", _single_file_tar(Path(_CA_IN_CONTAINER).name, ca))
    container.start()
    try:
        with heartbeat(log, f"building env layer {tag}"):
            code = container.wait(timeout=3600)["StatusCode"]
        if code:
            tail = container.logs(tail=5).decode(errors="replace").strip().splitlines()
            raise SandboxError(
                f"building env layer {tag} failed (exit {code}): {tail[-1] if tail else ''}",
                "check the recipe's package names and that the registries are reachable",
            )
        repo, version = tag.split(":")
        container.commit(repository=repo, tag=version, changes=["WORKDIR /work"])
    finally:
        container.remove(force=True)
    return tag


def image_for(
    recipe: EnvRecipe,
    backend: str,
    image: str | None = None,
    log=print,
    *,
    python: str | None = None,
) -> str | None:
    """The environment a run needs, as ``open_sandbox(..., image=...)`` takes it.

    For docker: a prebuilt ``image``, else the env layer for ``recipe`` on the base image
    whose ``python3`` is Python ``python``, else (an empty recipe) that base image; None
    where the default base will do. For the local backend (and ``auto`` with no engine): the
    path of a private virtualenv with ``recipe.pip`` on this interpreter (which must be
    Python ``python``, if given), or None where nothing is asked; apt packages and shell
    steps are docker-only.
    """
    if image:
        return image
    if python is None and not (recipe.pip or recipe.apt or recipe.run):
        return None
    from sandbox import engine

    if backend == "local" or (backend == "auto" and not engine.available()):
        from sandbox.local_sandbox import local_env

        if recipe.apt or recipe.run:
            _log.warning(
                "the local sandbox installs setup.pip only; setup.apt and run steps need "
                "--sandbox docker"
            )
        return local_env(recipe.pip, python, log=log)
    suite = suite_for(python)
    base = base_tag(suite)
    if suite != SUITE and not image_exists(base):
        raise SandboxError(
            f"the base image for Python {SUITES[suite]} ({suite}), {base}, is not built",
            build_fix(suite),
        )
    if not (recipe.pip or recipe.apt or recipe.run):
        return base
    return build_env(recipe, base=base, log=log)
