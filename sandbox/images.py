"""Images built offline: a Debian base from mmdebstrap, and environment layers on top.

Like SWE-bench's harness, images are layered base -> env -> (task), and each is tagged
by a content hash of its recipe, so a recipe is built once and reused until it changes.
Builds may use the host network (for apt and pip), with the host's CA bundle passed in;
candidate runs never get a network.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import docker.errors
from pydantic import BaseModel, Field

from sandbox.engine import BUILD_LABEL, OWNER, client
from sandbox.errors import SandboxError

SUITE = "bookworm"
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
#: The host CA bundle, as build containers see it.
_CA_IN_CONTAINER = "/tmp/optimizer-host-ca.crt"


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def base_tag() -> str:
    """The tag of the base image this version of the code wants."""
    recipe = {"suite": SUITE, "packages": BASE_PACKAGES, "hooks": _HOOKS, "changes": _CHANGES}
    return f"{BASE_REPO}:{_digest(recipe)}"


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


def build_base(*, force: bool = False, log=print) -> str:
    """Build the base image with mmdebstrap + ``docker import``; return its tag."""
    tag = base_tag()
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
            f"--include={','.join(BASE_PACKAGES)}",
            *[f"--customize-hook={hook}" for hook in _HOOKS],
            SUITE,
            str(rootfs),
            mirror(),
        ]
        log(f"building the base rootfs with mmdebstrap ({SUITE}, {len(BASE_PACKAGES)} packages)")
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SandboxError(
                f"mmdebstrap failed: {tail[0]}",
                f"check that the Debian mirror {mirror()} "
                "is reachable (set OPTIMIZER_DEBIAN_MIRROR to another one)",
            )
        log(f"importing the rootfs as {tag}")
        repo, version = tag.split(":")
        client().api.import_image_from_file(
            str(rootfs), repository=repo, tag=version, changes=list(_CHANGES)
        )
    client().images.get(tag).tag(BASE_REPO, "latest")
    return tag


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
    log(f"building env layer {tag}: {recipe.script()}")
    container = client().containers.create(
        base,
        ["/bin/sh", "-c", script],
        network_mode="host",
        environment=env,
        labels={BUILD_LABEL: OWNER},
        user="root",
    )
    if ca:
        container.put_archive("/tmp", _single_file_tar(Path(_CA_IN_CONTAINER).name, ca))
    container.start()
    try:
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


def image_for(recipe: EnvRecipe, backend: str, image: str | None = None, log=print) -> str | None:
    """The Docker image a run needs: a prebuilt ``image``, or the env layer for ``recipe``.

    None where the base image will do: the local backend, an ``auto`` backend with no
    engine, or an empty recipe.
    """
    if image:
        return image
    if backend == "local" or not (recipe.pip or recipe.apt or recipe.run):
        return None
    from sandbox import engine

    if backend == "auto" and not engine.available():
        return None
    return build_env(recipe, log=log)
