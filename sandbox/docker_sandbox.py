"""The ``docker`` backend: one container per command, from a project-built image.

The code is copied into an **instance image** of its own (never bind-mounted from the user's
tree), layered on the env image as SWE-bench layers base -> env -> instance. Every run is a
fresh container of it, with ``--network none``, a cpuset, memory and pids limits, a private
/tmp, no capabilities, and an unprivileged user. Before :meth:`seal`, a finished run is
committed as the next instance image, so installs and builds persist; after it, nothing is
committed: each run starts from the sealed image's pristine tree (a copy-on-write layer, so
starting afresh costs nothing extra). A run that passes its time limit is killed, and its
container is removed whatever happens, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import docker.errors
from docker.types import LogConfig, Ulimit

from sandbox.base import OutputCapture, Sandbox, classify
from sandbox.engine import BUILD_LABEL, LABEL, OWNER, client
from sandbox.errors import SandboxError
from sandbox.images import SANDBOX_UID, base_tag, image_exists
from sandbox.models import Limits, MiB, RunResult, Source, Status
from sandbox.source import materialize

WORKDIR = "/work"
_COLLECT_MAX = 64 * MiB
_STDIN = ".optimizer-stdin"


class DockerSandbox(Sandbox):
    """Runs each command in a fresh container over a private copy of the source."""

    backend = "docker"
    workdir = WORKDIR

    def __init__(
        self, source: Source, limits: Limits | None = None, *, image: str | None = None
    ) -> None:
        super().__init__(source, limits)
        self.client = client()
        sweep_stale()
        self.image = image or base_tag()
        if not image_exists(self.image):
            fix = "run `optimizer sandbox build`" if image is None else f"`docker pull {image}`"
            raise SandboxError(f"sandbox image {self.image} is not built", f"{fix}")
        self.id = uuid.uuid4().hex[:12]
        self._labels = {LABEL: self.id, f"{LABEL}.owner": OWNER}
        self._instance: str | None = None
        self._closed = False
        with tempfile.TemporaryDirectory(prefix="optimizer-src-") as tmp:
            self.sha = materialize(source, Path(tmp))
            archive = _tar_dir(Path(tmp))
        try:
            self._populate(archive)
        except BaseException:
            self.close()
            raise

    # -- the private copy ------------------------------------------------------------------
    def _populate(self, archive: bytes) -> None:
        """Put a tar archive into /work through a container that never starts, and commit."""
        holder = self._create(["true"], self.limits, {})
        try:
            holder.put_archive(WORKDIR, archive)
            self._commit(holder)
        finally:
            _remove(holder)

    def _commit(self, container) -> None:
        """Make ``container``'s filesystem the instance image later runs start from.

        Instance images are untagged: each one is the parent of the next, and removing the
        last one (``close``) prunes the chain."""
        self._instance = container.commit(conf={"Labels": self._labels}).id

    def _write(self, files: dict[str, bytes]) -> None:
        self._populate(_tar_files(files))

    def _seal(self) -> None:
        """Nothing to copy: from now on runs are not committed, so each starts from here."""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for c in _list(self.client.containers, {"label": f"{LABEL}={self.id}"}):
            _remove(c)
        if self._instance:
            _remove_image(self.client, self._instance)
            self._instance = None

    # -- running ---------------------------------------------------------------------------
    def _create(self, args: list[str], limits: Limits, env: Mapping[str, str]):
        ulimits = [Ulimit(name="core", soft=0, hard=0), Ulimit(name="nofile", soft=4096, hard=4096)]
        if limits.cpu_s is not None:
            cpu = int(limits.cpu_s + 0.999)
            ulimits.append(Ulimit(name="cpu", soft=cpu, hard=cpu + 1))
        return self.client.containers.create(
            self._instance or self.image,
            args,
            working_dir=WORKDIR,
            user=f"{SANDBOX_UID}:{SANDBOX_UID}",
            environment={"HOME": "/tmp", "TMPDIR": "/tmp", "OPTIMIZER_SANDBOX": "docker", **env},
            network_mode="none",
            mem_limit=f"{limits.memory_mb}m",
            memswap_limit=f"{limits.memory_mb}m",
            pids_limit=limits.pids,
            cpuset_cpus=limits.cpuset,
            tmpfs={"/tmp": f"rw,exec,nosuid,size={limits.tmp_mb}m,mode=1777"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            ulimits=ulimits,
            log_config=LogConfig(type="none"),
            labels=self._labels,
            detach=True,
        )

    def _execute(
        self,
        args: list[str],
        limits: Limits,
        env: dict[str, str],
        collect: list[str],
        stdin: bytes | None,
        files: dict[str, bytes],
    ) -> RunResult:
        started = time.perf_counter()
        files = dict(files)
        if stdin is not None:  # a file in the copy, not the attach socket: EOF is reliable
            files[_STDIN] = stdin
            args = ["/bin/sh", "-c", 'exec "$@" < "$0"', f"{WORKDIR}/{_STDIN}", *args]
        container = self._create(args, limits, env)
        try:
            if files:
                container.put_archive(WORKDIR, _tar_files(files))
            result = self._run(container, limits, collect, started)
            if not self.sealed:  # installs and builds persist until the tree is sealed
                self._commit(container)
            return result
        finally:
            _remove(container)

    def _run(self, container, limits: Limits, collect: list[str], started) -> RunResult:
        stop = threading.Event()
        capture = OutputCapture(limits.output_bytes, stop)
        stream = container.attach(stdout=True, stderr=True, stream=True, demux=True, logs=False)
        reader = threading.Thread(target=_pump, args=(stream, capture), daemon=True)
        reader.start()
        outcome: dict = {}

        def wait() -> None:
            try:
                outcome["code"] = container.wait(timeout=limits.wall_s + 60)["StatusCode"]
            except Exception as exc:  # the engine went away, or the run was killed
                outcome["error"] = exc
            outcome["ended"] = time.perf_counter()
            stop.set()

        try:
            container.start()
        except docker.errors.APIError as exc:  # e.g. the executable does not exist
            why = (exc.explanation or str(exc)).split("exec: ")[-1]
            return RunResult(
                status=Status.ERROR, exit_code=127, duration_s=0.0, reason=f"could not start: {why}"
            )
        t0 = time.perf_counter()
        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        stopped = ""
        finished = stop.wait(limits.wall_s)
        stopped_at = time.perf_counter()
        if not finished:
            stopped = "wall"
        elif capture.truncated and "code" not in outcome:
            stopped = "output"
        if stopped:
            with contextlib.suppress(docker.errors.APIError):
                container.kill()
        waiter.join(timeout=30)
        reader.join(timeout=5)
        container.reload()
        state = container.attrs["State"]
        if "error" in outcome and not stopped:
            raise SandboxError(
                f"the Docker engine failed during a run: {outcome['error']}",
                "check `docker info`, then run again",
            )
        code = None if stopped else outcome.get("code", state.get("ExitCode"))
        status, why = classify(
            code,
            stopped=stopped,
            oom_killed=bool(state.get("OOMKilled")),
            stderr=capture.text("stderr"),
            limits=limits,
        )
        duration = (stopped_at if stopped else outcome.get("ended", stopped_at)) - t0
        files = self._collect(container, collect)
        return RunResult(
            status=status,
            exit_code=code,
            duration_s=duration,
            overhead_s=max(0.0, time.perf_counter() - started - duration),
            stdout=capture.text("stdout"),
            stderr=capture.text("stderr"),
            output_truncated=capture.truncated,
            reason=why,
            files=files,
        )

    def _collect(self, container, paths: list[str]) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        for name in paths:
            try:
                chunks, stat = container.get_archive(f"{WORKDIR}/{name}")
            except docker.errors.NotFound:
                continue
            if stat.get("size", 0) > _COLLECT_MAX:
                continue
            with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
                member = tar.next()
                if member is not None and member.isfile():
                    files[name] = tar.extractfile(member).read()
        return files


def _pump(stream, capture: OutputCapture) -> None:
    try:
        for out, err in stream:
            if out:
                capture.feed("stdout", out)
            if err:
                capture.feed("stderr", err)
    except Exception:  # the connection closes when the container is killed
        pass


def _tar_dir(root: Path) -> bytes:
    """Tar a directory with every entry owned by the sandbox user."""

    def own(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = SANDBOX_UID
        info.uname = info.gname = "sandbox"
        return info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for entry in sorted(root.iterdir()):
            tar.add(entry, arcname=entry.name, filter=own)
    return buf.getvalue()


def _tar_files(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            _add_bytes(tar, name, data)
    return buf.getvalue()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add a file, and its parent directories, all owned by the sandbox user."""
    parents = list(reversed(Path(name).parents))[1:]
    for parent in parents:
        folder = tarfile.TarInfo(parent.as_posix())
        folder.type = tarfile.DIRTYPE
        folder.mode = 0o755
        folder.uid = folder.gid = SANDBOX_UID
        folder.mtime = int(time.time())
        tar.addfile(folder)
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.uid = info.gid = SANDBOX_UID
    info.mode = 0o644
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _list(collection, filters: dict) -> list:
    """List containers by label; one removed meanwhile by another process is skipped."""
    try:
        return collection.list(all=True, filters=filters, ignore_removed=True)
    except docker.errors.NotFound:
        return []


def _remove(item) -> None:
    """Remove a container; already gone, or going, is not an error."""
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        item.remove(force=True)


def _remove_image(c, image_id: str) -> None:
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        c.images.remove(image_id, force=True, noprune=False)


def _dead(owner: str, host: str) -> bool:
    """Whether ``owner`` (host:pid) is a process of this host that has ended."""
    name, _, pid = owner.rpartition(":")
    return name == host and pid.isdigit() and not _alive(int(pid))


def sweep_stale() -> int:
    """Remove containers, instance images, build containers and volumes left by processes of
    this host that have ended. Another live process's items are never touched, and an item
    that vanishes under the sweep (its owner removed it meanwhile) is skipped, not an error.

    Listing uses the engine's plain list calls (labels come with the list), never a
    per-item inspect that a concurrent removal could turn into NotFound.

    A container inherits its image's labels, and env images older than the fix below carry
    their builder's ``BUILD_LABEL``: a sandbox container (it has ``LABEL``) is judged by its
    own owner only, never by the process that once built its image.
    """
    host = socket.gethostname()
    api = client().api
    removed = 0
    owner_key = f"{LABEL}.owner"
    kinds = (
        (lambda: api.containers(all=True, filters={"label": owner_key}), owner_key, "c"),
        (lambda: api.containers(all=True, filters={"label": BUILD_LABEL}), BUILD_LABEL, "c"),
        (lambda: api.images(all=True, filters={"label": owner_key}), owner_key, "i"),
        (lambda: api.volumes(filters={"label": owner_key}).get("Volumes") or [], owner_key, "v"),
    )
    for listing, key, kind in kinds:
        try:
            items = listing()
        except docker.errors.APIError:
            continue
        for item in items:
            labels = item.get("Labels") or {}
            if key == BUILD_LABEL and LABEL in labels:
                continue  # a sandbox's container, made from an env image: not a build
            if not _dead(labels.get(key) or "", host):
                continue
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                if kind == "c":
                    api.remove_container(item["Id"], force=True)
                elif kind == "i":
                    api.remove_image(item["Id"], force=True)
                else:
                    api.remove_volume(item["Name"], force=True)
                removed += 1
    return removed


def _alive(pid: int) -> bool:
    """A process that exists and has not ended (a zombie waiting to be reaped has ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
