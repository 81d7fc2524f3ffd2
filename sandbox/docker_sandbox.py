"""The ``docker`` backend: one container per command, from a project-built image.

The code is copied into an **instance image** of its own (never bind-mounted from the user's
tree), layered on the env image as SWE-bench layers base -> env -> instance. Every run is a
fresh container of it, with ``--network none``, a cpuset, memory and pids limits, a private
/tmp, no capabilities, and an unprivileged user. Before :meth:`seal`, a finished run is
committed as the next instance image, so installs and builds persist; after it, nothing is
committed: each run starts from the sealed image's pristine tree (a copy-on-write layer, so
starting afresh costs nothing extra). A run that passes its time limit is killed, and its
container is removed whatever happens, Ctrl-C included.

Starting a container costs a few hundred ms, so for many short runs a sealed sandbox offers
:meth:`DockerSandbox.session`: one long-lived container with a read-only tree, and a
``docker exec`` per run (see :class:`DockerSession`).
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import socket
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import docker.errors
import requests
from docker.types import DeviceRequest, LogConfig, Ulimit

from sandbox import reap
from sandbox.base import (
    CANCEL,
    OutputCapture,
    Sandbox,
    SealedError,
    classify,
    relative,
    wait_run,
)
from sandbox.engine import BUILD_LABEL, LABEL, OWNER, client
from sandbox.errors import SandboxError
from sandbox.images import SANDBOX_UID, base_tag, image_exists
from sandbox.models import Limits, MiB, RunResult, Source, Status
from sandbox.source import materialize

WORKDIR = "/work"
_COLLECT_MAX = 64 * MiB
_STDIN = ".optimizer-stdin"
_USER = f"{SANDBOX_UID}:{SANDBOX_UID}"


def _env(env: Mapping[str, str]) -> dict[str, str]:
    return {"HOME": "/tmp", "TMPDIR": "/tmp", "OPTIMIZER_SANDBOX": "docker", **env}


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
        self._instances: list[str] = []  # this sandbox's images, each the parent of the next
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

        Instance images are untagged, each the parent of the next; ``close`` removes exactly
        these, newest first, and prunes nothing: pruning would also take an untagged parent
        that is not this sandbox's (an env image whose tag a concurrent build moved, that
        another process's sandbox is starting from). The low-level commit returns the id
        without the inspect the high-level one makes after it."""
        made = self.client.api.commit(container.id, conf={"Labels": self._labels})
        self._instances.append(made["Id"])

    @property
    def _instance(self) -> str | None:
        return self._instances[-1] if self._instances else None

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
        if CANCEL.is_set():  # Ctrl-C: the images go once the CLI has exited (sandbox.reap)
            reap.defer(self._instances[::-1])
            self._instances.clear()
        while self._instances:
            _remove_image(self.client, self._instances.pop())

    @contextlib.contextmanager
    def session(self, writable: Iterable[str] = ()) -> Iterator[Sandbox]:
        """One long-lived container for many short runs of the sealed tree (a
        :class:`DockerSession`), removed when the block ends, Ctrl-C included.

        ``writable`` names work-dir paths that runs may write (each a private tmpfs, emptied
        after every run, that hides what the sealed tree has there); the rest is read-only.
        """
        if not self.sealed:
            raise RuntimeError("a session runs the sealed tree: call seal() first")
        with DockerSession(self, [relative(p) for p in writable]) as session:
            yield session

    # -- running ---------------------------------------------------------------------------
    def _create(
        self,
        args: list[str],
        limits: Limits,
        env: Mapping[str, str],
        writable: Sequence[str] = (),
        **options,
    ):
        """A container of the instance image with every limit; ``writable`` (absolute
        paths) get a tmpfs like /tmp's, ``options`` go to the engine as they are."""
        ulimits = [Ulimit(name="core", soft=0, hard=0), Ulimit(name="nofile", soft=4096, hard=4096)]
        if limits.cpu_s is not None:
            cpu = int(limits.cpu_s + 0.999)
            ulimits.append(Ulimit(name="cpu", soft=cpu, hard=cpu + 1))
        tmpfs = f"rw,exec,nosuid,size={limits.tmp_mb}m,mode=1777"
        return self.client.containers.create(
            self._instance or self.image,
            args,
            working_dir=WORKDIR,
            user=_USER,
            environment=_env(env),
            network_mode="none",
            mem_limit=f"{limits.memory_mb}m",
            memswap_limit=f"{limits.memory_mb}m",
            pids_limit=limits.pids,
            cpuset_cpus=limits.cpuset,
            tmpfs={p: tmpfs for p in ["/tmp", *writable]},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            ulimits=ulimits,
            log_config=LogConfig(type="none"),
            labels=self._labels,
            detach=True,
            device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])]
            if limits.gpus
            else None,
            **options,
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
            if limits.gpus and ("device driver" in why or "nvidia" in why.lower()):
                raise SandboxError(
                    f"the Docker engine cannot pass the GPUs through ({why.strip()[:200]})",
                    "install the NVIDIA Container Toolkit and restart dockerd, "
                    "or grade with --sandbox local",
                ) from None
            return RunResult(
                status=Status.ERROR, exit_code=127, duration_s=0.0, reason=f"could not start: {why}"
            )
        t0 = time.perf_counter()
        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        stopped = ""
        try:
            finished = wait_run(stop, limits.wall_s)
        except KeyboardInterrupt:
            with contextlib.suppress(docker.errors.APIError):
                container.kill()
            raise
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


#: PID 1 of a session. The kernel shields a namespace's init from the namespace's own
#: processes, so no run can kill it; it reaps nothing, so each process a run orphans stays a
#: zombie, and after _ORPHANS_MAX of them the container is replaced. (A shell loop that reaps
#: would die of the first fork a fork bomb leaves it no room for, and the container with it.)
_INIT = ["sleep", "infinity"]
_ORPHANS_MAX = 16
#: The limits a session's container fixes when it starts; the others apply per run.
_FIXED = ("memory_mb", "pids", "cpuset", "tmp_mb", "gpus")


class DockerSession(Sandbox):
    """Runs of a sealed :class:`DockerSandbox` as ``docker exec`` into one container.

    The container has a run's limits and settings, a read-only root filesystem (the sealed
    tree), and a private tmpfs at /tmp and at each ``writable`` path (/dev/shm and
    /dev/mqueue are writable too). After every run, before it returns, every sandbox-user
    process is killed, the files to collect are read, and those places are emptied: each run
    starts from the pristine sealed tree, as a fresh container would, for the cost of two
    ``docker exec`` instead of a container. When that clean-up cannot run or does not finish
    the job (a fork bomb left no room for a process, orphans pile up), the container is
    replaced by a fresh one.

    Per-run ``files=`` and ``stdin=`` are refused (the tree is read-only), and so are per-run
    memory, pids, cpuset and /tmp limits other than the sandbox's (the container fixes them);
    the wall, CPU and output limits apply per run. An OOM kill is reported as ``Status.OOM``:
    the container's memory cgroup counts them, read after each run. ``duration_s`` is the
    host's clock from the command's start (a byte its wrapper sends just before, see
    :func:`_wrap`) to the end of the exec's output, as a fresh container's is timed from its
    start: the few tens of ms ``docker exec`` takes to start a process are overhead.
    """

    backend = "docker"
    workdir = WORKDIR
    sealed = True

    def __init__(self, parent: DockerSandbox, writable: Sequence[str]) -> None:
        super().__init__(parent.source, parent.limits)
        self.sha, self.id, self._parent = parent.sha, parent.id, parent
        self._api = parent.client.api
        self._writable = [f"{WORKDIR}/{p}" for p in writable]
        self._reset_script = _reset_script(["/tmp", "/dev/shm", "/dev/mqueue", *self._writable])
        self._container = None
        self._start()

    def _start(self) -> None:
        limits = self.limits.model_copy(update={"cpu_s": None})  # each run sets its own
        self._oom_kills = 0
        with self._engine():
            self._container = self._parent._create(
                _INIT, limits, {}, self._writable, read_only=True
            )
            try:
                self._container.start()
                if self._writable:  # a tmpfs over a directory the image has takes its
                    # owner and mode (root, 755): open it to the sandbox user, as /tmp is
                    self._exec('chmod 1777 "$@"', *self._writable, user="0")
            except BaseException:
                self.close()
                raise

    def _seal(self) -> None:
        """Sealed from the start."""

    def _write(self, files: dict[str, bytes]) -> None:
        raise SealedError("a session's tree is read-only")

    def close(self) -> None:
        if self._container is not None:
            _remove(self._container)
            self._container = None

    def _execute(
        self,
        args: list[str],
        limits: Limits,
        env: dict[str, str],
        collect: list[str],
        stdin: bytes | None,
        files: dict[str, bytes],
    ) -> RunResult:
        if self._container is None:
            raise RuntimeError("the session has ended")
        if stdin is not None or files:
            raise ValueError(
                "a session's tree is read-only: run with stdin= or files= outside the session"
            )
        if fixed := [k for k in _FIXED if getattr(limits, k) != getattr(self.limits, k)]:
            raise ValueError(f"a session fixes {', '.join(fixed)}: set them on the sandbox")
        started = time.perf_counter()
        stop = threading.Event()
        capture = OutputCapture(limits.output_bytes, stop)
        began: list[float] = []
        ended: list[float] = []
        with self._engine():
            exec_id = self._api.exec_create(
                self._container.id, _wrap(args, limits), user=_USER, workdir=WORKDIR,
                environment=_env(env),
            )["Id"]  # fmt: skip
            t0 = time.perf_counter()
            stream = self._api.exec_start(exec_id, stream=True, demux=True)

        def pump() -> None:
            _pump(_started(stream, began), capture)
            ended.append(time.perf_counter())
            stop.set()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            stopped = "" if wait_run(stop, limits.wall_s) else "wall"
        except KeyboardInterrupt:
            with contextlib.suppress(docker.errors.APIError):
                self._container.kill()
            raise
        stopped_at = time.perf_counter()
        if capture.truncated and not ended:
            stopped = stopped or "output"
        if stopped and self._exec("kill -9 -1; exit 0")[0] != 0:
            with contextlib.suppress(docker.errors.APIError):  # no room for a process
                self._container.kill()
        reader.join(timeout=30)
        with self._engine():
            code = None if stopped else self._api.exec_inspect(exec_id)["ExitCode"]
        got, oom = self._reset(collect)
        stderr = capture.text("stderr")
        status, why = classify(code, stopped=stopped, oom_killed=oom, stderr=stderr, limits=limits)
        duration = (stopped_at if stopped else ended[0]) - (began[0] if began else t0)
        return RunResult(
            status=status,
            exit_code=code,
            duration_s=duration,
            overhead_s=max(0.0, time.perf_counter() - started - duration),
            stdout=capture.text("stdout"),
            stderr=stderr,
            output_truncated=capture.truncated,
            reason=why,
            files=got,
        )

    def _reset(self, collect: list[str]) -> tuple[dict[str, bytes], bool]:
        """Kill what a run left, read its files, empty the writable places (or replace the
        container); the files, and whether the OOM killer struck during the run."""
        code, out, err = self._exec(self._reset_script, *(f"./{p}" for p in collect))
        counts = dict(ln.split() for ln in err.decode().splitlines() if ln.count(" ") == 1)
        kills = int(counts.get("oom_kill", self._oom_kills))
        oom, self._oom_kills = kills > self._oom_kills, kills
        if code != 0 or int(counts.get("procs", 0)) > 2 + _ORPHANS_MAX:  # init and this shell
            self.close()
            self._start()
        return (_untar(out, collect) if collect else {}), oom

    def _exec(self, script: str, *args: str, user: str = _USER) -> tuple[int | None, bytes, bytes]:
        """Run a shell script as the sandbox user, to its end: its exit code (None when it
        could not run: no room for a process, or no container), stdout and stderr."""
        try:
            exec_id = self._api.exec_create(
                self._container.id, ["/bin/sh", "-c", script, "sh", *args], user=user
            )["Id"]
            out, err = self._api.exec_start(exec_id, demux=True)
            return self._api.exec_inspect(exec_id)["ExitCode"], out or b"", err or b""
        except (docker.errors.APIError, requests.exceptions.ConnectionError):
            return None, b"", b""

    @contextlib.contextmanager
    def _engine(self) -> Iterator[None]:
        """An engine error as one line: most likely the engine restarted, which stops the
        session's container."""
        try:
            yield
        except (docker.errors.APIError, requests.exceptions.ConnectionError) as exc:
            why = getattr(exc, "explanation", None) or str(exc)
            raise SandboxError(
                f"the session's container is gone ({why})",
                "check `docker info` (an engine restart stops every container), then run again",
            ) from None


def _wrap(args: list[str], limits: Limits) -> list[str]:
    """A session run's command under a shell that writes one byte to stderr as it starts it
    (the host's mark for when it began: nothing the command does can come before it), sets
    its CPU limit, and once it ends kills what it started (a child holding stdout would keep
    the exec open)."""
    cpu = ""
    if limits.cpu_s is not None:  # as in _create: SIGXCPU, then a second later SIGKILL
        n = int(limits.cpu_s + 0.999)
        cpu = f"ulimit -S -t {n} && ulimit -H -t {n + 1} && "
    script = "printf . >&2; " + cpu + '"$@"; code=$?; kill -9 -1 2>/dev/null; exit $code'
    return ["/bin/sh", "-c", script, "sh", *args]


def _reset_script(places: list[str]) -> str:
    """After a session run, as the sandbox user: kill every process, write the files named
    in "$@" (regular, at most _COLLECT_MAX bytes) to stdout as a tar, empty ``places``, and
    print the memory cgroup's OOM-kill count and the processes left to stderr; fail if a
    place is still not empty. (The engine's archive API cannot read a tmpfs, hence tar.)"""
    where = shlex.join(places)
    count = "/sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control"
    return f"""kill -9 -1 2>/dev/null; ipcrm -a 2>/dev/null
[ $# = 0 ] || find "$@" -maxdepth 0 -type f -size -{_COLLECT_MAX + 1}c -print0 2>/dev/null \
    | tar -cf - --null -T - 2>/dev/null
for d in {where}; do chmod -R u+rwX "$d"; find "$d" -mindepth 1 -delete; done 2>/dev/null
sed -n '/^oom_kill /p' {count} >&2 2>/dev/null
set -- /proc/[0-9]*; echo "procs $#" >&2
[ -z "$(find {where} -mindepth 1 -print -quit 2>/dev/null)" ]"""


def _untar(archive: bytes, names: list[str]) -> dict[str, bytes]:
    """The regular files among ``names`` in a tar archive (none if it is not one: the
    engine's message when the exec could not start)."""
    files: dict[str, bytes] = {}
    with contextlib.suppress(tarfile.TarError), tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if member.isfile() and name in names:
                files[name] = tar.extractfile(member).read()
    return files


def _started(stream, began: list[float]) -> Iterator[tuple[bytes | None, bytes | None]]:
    """A session run's frames less its wrapper's start byte; notes when the first came."""
    marked = False
    for out, err in stream:
        if not began:
            began.append(time.perf_counter())
        if err and not marked:
            err, marked = err[1:], True
        yield out, err


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
        c.images.remove(image_id, force=True, noprune=True)


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
        (lambda: _newest_first(api.images(all=True, filters={"label": owner_key})), owner_key, "i"),
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
                    api.remove_image(item["Id"], force=True, noprune=True)
                else:
                    api.remove_volume(item["Name"], force=True)
                removed += 1
    return removed


def _newest_first(images: list[dict]) -> list[dict]:
    """Instance images children before parents, so each is removed without pruning: a prune
    would also take an untagged parent that is not the dead owner's (see ``_commit``)."""
    return sorted(images, key=lambda i: i.get("Created", 0), reverse=True)


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
