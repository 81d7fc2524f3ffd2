"""The sandbox contains hostile code in both backends, and leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from sandbox import Limits, Source, Status, open_sandbox
from tests.conftest import git, sigint_default

HOSTILE = {"main.py": "print('hello')\n", "data.txt": "precious\n"}


def py(code: str) -> list[str]:
    return ["python3", "-c", code]


def _ours_or_leaked(items: list[dict], key: str = "optimizer.sandbox.owner") -> list[dict]:
    """Items this test process owns, or whose owner has ended (left behind): not those of a
    live other process, such as a second test run on the same engine."""
    import socket

    from sandbox.docker_sandbox import _dead
    from sandbox.engine import OWNER

    host = socket.gethostname()

    def owner(item: dict) -> str:
        return (item.get("Labels") or {}).get(key, "")

    return [i for i in items if owner(i) == OWNER or _dead(owner(i), host) or not owner(i)]


# The engine's plain list calls (labels come with the list): docker-py's high-level list
# inspects each item after listing it, and an item removed in between (another process's, or
# the images a Ctrl-C's detached reaper is removing) is a NotFound.
def _api():
    import docker

    return docker.from_env().api


def labels(item: dict) -> dict:
    return item.get("Labels") or {}


def containers_left() -> list[dict]:
    return _ours_or_leaked(_api().containers(all=True, filters={"label": "optimizer.sandbox"}))


def _running_sandboxes(pid: int) -> list[dict]:
    """Running sandbox containers of process ``pid`` (a CLI subprocess, alive): not another
    test process's on the same engine (taking one of those for its own, the Ctrl-C test
    signalled its CLI while Python was still starting)."""
    import socket

    owner = f"optimizer.sandbox.owner={socket.gethostname()}:{pid}"
    return [c for c in _api().containers(filters={"label": owner}) if c["State"] == "running"]


def volumes_left() -> list[dict]:
    found = _api().volumes(filters={"label": "optimizer.sandbox"}).get("Volumes") or []
    return _ours_or_leaked(found)


def images_left() -> list[dict]:
    return _ours_or_leaked(_api().images(all=True, filters={"label": "optimizer.sandbox.owner"}))


def assert_images_go_after_exit() -> None:
    """After a Ctrl-C the instance images go in a detached process once the CLI has exited
    (sandbox.reap), not by a later sweep: nothing here starts another sandbox."""
    deadline = time.monotonic() + 60
    while images_left():
        assert time.monotonic() < deadline, f"instance images left: {images_left()}"
        time.sleep(0.2)


def assert_cleaned(sb) -> None:
    """The sandbox copy, and for docker every container and instance image, is gone."""
    if sb.backend == "local":
        assert not sb._root.exists()
    else:
        assert not [c for c in containers_left() if labels(c).get("optimizer.sandbox") == sb.id]
        mine = [i for i in images_left() if labels(i).get("optimizer.sandbox") == sb.id]
        assert not mine


def host_can_fork() -> bool:
    return subprocess.run(["true"]).returncode == 0


def test_runs_and_collects(make_repo, backend):
    repo = make_repo(HOSTILE)
    with open_sandbox(Source(repo=repo), backend) as sb:
        result = sb.run(py("open('out.json','w').write('{}'); print('hi')"), collect=["out.json"])
        assert result.status is Status.OK and result.exit_code == 0
        assert result.stdout == "hi\n"
        assert result.files == {"out.json": b"{}"}
        failed = sb.run("echo oops >&2; exit 3")
        assert failed.status is Status.ERROR and failed.exit_code == 3
        assert "oops" in failed.stderr
        assert sb.run("cat", stdin=b"from stdin").stdout == "from stdin"
        missing = sb.run(["definitely-not-a-command"])
        assert missing.status is Status.ERROR
    assert_cleaned(sb)


def host_processes() -> int:
    return sum(1 for name in os.listdir("/proc") if name.isdigit())


def test_fork_bomb(make_repo, backend):
    from sandbox.cgroup import PidsCgroup

    repo = make_repo(HOSTILE)
    bomb = py("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass")
    baseline, peak, done = host_processes(), [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], host_processes())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    with open_sandbox(Source(repo=repo), backend) as sb:
        watcher.start()
        result = sb.run(bomb, limits=Limits(wall_s=5, pids=64))
        done.set()
        assert result.status in (Status.KILLED, Status.TIMEOUT), result
        assert result.reason
    assert host_can_fork()
    capped = backend == "docker" or os.geteuid() != 0 or PidsCgroup.available()
    if capped:  # the kernel caps the run (cgroup or RLIMIT_NPROC): the host never fills up
        assert peak[0] - baseline <= 64 + 32, (baseline, peak[0])
    assert_cleaned(sb)


def test_fork_bomb_in_shell(make_repo, backend):
    repo = make_repo(HOSTILE)
    limits = Limits(wall_s=5, pids=64)
    with open_sandbox(Source(repo=repo), backend) as sb:
        # The classic bomb returns at once; its children are killed with the run.
        sb.run(["bash", "-c", ":(){ :|:& };:"], limits=limits)
        result = sb.run(["bash", "-c", ":(){ :|:& };:; sleep 60"], limits=limits)
        assert result.status in (Status.KILLED, Status.TIMEOUT), result
    time.sleep(0.5)
    bombs = ["pgrep", "-c", "-f", r"bash -c :\(\)"]
    leftover = subprocess.run(bombs, capture_output=True, text=True)
    assert leftover.stdout.strip() in ("", "0")
    assert_cleaned(sb)


@pytest.mark.parametrize(
    "code",
    [
        "x = bytearray(50 * 2**30)",  # one 50 GB allocation
        "chunks = []\nfor _ in range(50 * 1024):\n    chunks.append(b'x' * 2**20)",  # touched
    ],
    ids=["one-50GB-block", "50GB-in-1MB-chunks"],
)
def test_huge_allocation_is_oom(make_repo, backend, code):
    repo = make_repo(HOSTILE)
    with open_sandbox(Source(repo=repo), backend) as sb:
        result = sb.run(py(code), limits=Limits(memory_mb=256, wall_s=60))
        assert result.status is Status.OOM, result
        assert "memory" in result.reason
    assert_cleaned(sb)


def test_infinite_loop_times_out(make_repo, backend):
    repo = make_repo(HOSTILE)
    with open_sandbox(Source(repo=repo), backend) as sb:
        started = time.monotonic()
        result = sb.run(py("while True: pass"), limits=Limits(wall_s=2))
        assert result.status is Status.TIMEOUT
        assert result.exit_code is None
        assert 1.9 < result.duration_s < 10
        assert time.monotonic() - started < 20
        # the CPU limit ends it after 1 s of CPU; the wall limit is only a backstop, wide
        # enough for a container that gets a thirtieth of a core on a busy machine (seen at
        # load 12: killed by a 30 s wall limit before its first CPU second)
        cpu = sb.run(py("while True: pass"), limits=Limits(wall_s=300, cpu_s=1))
        assert cpu.status is Status.TIMEOUT and "CPU" in cpu.reason
    assert_cleaned(sb)


def test_writing_outside_the_work_dir_fails(make_repo, backend, tmp_path):
    if backend == "local":
        from sandbox.local_sandbox import bwrap_path

        if bwrap_path() is None and not os.environ.get("CI"):
            pytest.skip("the local sandbox confines writes only with bubblewrap installed")
    repo = make_repo(HOSTILE)
    outside = tmp_path / "outside.txt"
    code = f"open({str(outside)!r}, 'w').write('escaped')"
    with open_sandbox(Source(repo=repo), backend) as sb:
        result = sb.run(py(code))
        assert result.status is Status.ERROR
        assert "Read-only file system" in result.stderr or "No such file" in result.stderr
        etc = sb.run(py("open('/etc/optimizer-escape', 'w').write('x')"))
        assert etc.status is Status.ERROR
    assert not outside.exists()
    assert not Path("/etc/optimizer-escape").exists()
    assert_cleaned(sb)


def test_deleting_the_work_tree_leaves_the_user_tree_alone(make_repo, backend):
    repo = make_repo(HOSTILE)
    (repo / "data.txt").write_text("uncommitted edit\n")
    (repo / "untracked.txt").write_text("mine\n")
    before = git(repo, "status", "--porcelain")
    with open_sandbox(Source(repo=repo), backend) as sb:
        result = sb.run(["sh", "-c", "rm -rf ./* ./.[!.]* ; ls -A | wc -l"])
        assert result.stdout.strip() == "0"
        assert sb.run("test -e main.py").status is Status.ERROR
    assert (repo / "data.txt").read_text() == "uncommitted edit\n"
    assert (repo / "untracked.txt").read_text() == "mine\n"
    assert (repo / "main.py").exists()
    assert git(repo, "status", "--porcelain") == before
    assert_cleaned(sb)


def test_printing_a_gigabyte_is_killed(make_repo, backend):
    repo = make_repo(HOSTILE)
    with open_sandbox(Source(repo=repo), backend) as sb:
        started = time.monotonic()
        result = sb.run(["sh", "-c", "head -c 1073741824 /dev/zero"], limits=Limits(wall_s=120))
        assert result.status is Status.KILLED
        assert result.output_truncated
        assert len(result.stdout.encode()) <= Limits().output_bytes
        assert time.monotonic() - started < 60
    assert_cleaned(sb)


def test_docker_has_no_network(make_repo, docker_image):
    repo = make_repo(HOSTILE)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted = []

    def accept() -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                accepted.append(listener.accept())
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)"
    with open_sandbox(Source(repo=repo), "docker") as sb:
        result = sb.run(py(code))
        assert result.status is Status.ERROR
        assert "Connection refused" in result.stderr or "unreachable" in result.stderr
        ifaces = sb.run(py("import socket; print(sorted(n for _, n in socket.if_nameindex()))"))
        assert ifaces.stdout.strip() == "['lo']"
    thread.join()
    listener.close()
    assert accepted == []


def test_patch_and_revision(make_repo, backend):
    repo = make_repo({"a.txt": "one\n"}, {"a.txt": "two\n"})
    patch = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+patched\n"
    with open_sandbox(Source(repo=repo, rev="HEAD~1", patch=patch), backend) as sb:
        assert sb.run("cat a.txt").stdout == "patched\n"
        assert sb.sha == git(repo, "rev-parse", "HEAD~1")
    assert (repo / "a.txt").read_text() == "two\n"


def test_ctrl_c_leaves_no_container(make_repo, docker_image):
    repo = make_repo(HOSTILE)
    cli = subprocess.Popen(
        [sys.executable, "-m", "optimizer", "sandbox", "run", str(repo), "--sandbox", "docker"]
        + ["--", "sleep", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=sigint_default,
    )
    deadline = time.monotonic() + 60
    while not _running_sandboxes(cli.pid):
        assert time.monotonic() < deadline, "the sandbox never started"
        time.sleep(0.2)
    cli.send_signal(2)  # SIGINT, as Ctrl-C sends
    cli.wait(timeout=60)
    assert "Traceback" not in cli.stderr.read().decode()
    assert containers_left() == []
    assert volumes_left() == []
    assert_images_go_after_exit()


def test_local_sandbox_hides_secrets(make_repo, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    repo = make_repo(HOSTILE)
    with open_sandbox(Source(repo=repo), "local") as sb:
        result = sb.run(py("import os; print(os.environ.get('OPENAI_API_KEY'))"))
    assert result.stdout.strip() == "None"


def test_written_files_and_their_folders_are_writable(make_repo, backend):
    repo = make_repo(HOSTILE)
    with open_sandbox(Source(repo=repo), backend) as sb:
        sb.write_file("deep/er/harness.py", b"print('ok')\n")
        result = sb.run("python3 deep/er/harness.py && touch deep/er/new && echo x > deep/x")
        assert result.status is Status.OK, result
        assert result.stdout == "ok\n"


# -- pristine runs: after seal(), nothing one run writes exists in the next ------------------
CHEATS = {
    "a cache file beside the code": "open('cache.txt', 'w').write('answer')",
    "a cache in /tmp": "open('/tmp/cache.txt', 'w').write('answer')",
    "a cache under HOME": (
        "import os; d = os.path.expanduser('~/.cache'); os.makedirs(d, exist_ok=True); "
        "open(os.path.join(d, 'cache.txt'), 'w').write('answer')"
    ),
    "a rewritten source file": "open('main.py', 'w').write('print(42)')",
    "a new sitecustomize": "open('sitecustomize.py', 'w').write('print(42)')",
    "a source file made a link": (
        "import os; os.remove('main.py'); os.symlink('data.txt', 'main.py')"
    ),
    "a source file made a folder": (
        "import os; os.remove('main.py'); os.makedirs('main.py/x'); open('main.py/x/y', 'w')"
    ),
    "a same-size rewrite, kept times": (
        "import os; st = os.stat('main.py'); open('main.py', 'w').write(\"print('HELLO')\\n\"); "
        "os.utime('main.py', ns=(st.st_atime_ns, st.st_mtime_ns))"
    ),
}
LOOK = (
    "import os; paths = ['cache.txt', '/tmp/cache.txt', os.path.expanduser('~/.cache/cache.txt'),"
    " 'sitecustomize.py']; print([p for p in paths if os.path.exists(p)], open('main.py').read())"
)


@pytest.mark.parametrize("cheat", sorted(CHEATS))
def test_a_sealed_sandbox_starts_every_run_pristine(make_repo, backend, cheat):
    repo = make_repo(HOSTILE)
    with open_sandbox(Source(repo=repo), backend) as sb:
        sb.seal()
        wrote = sb.run(py(CHEATS[cheat]))
        assert wrote.status is Status.OK, wrote
        seen = sb.run(py(LOOK))
        assert seen.status is Status.OK, seen
        assert seen.stdout.strip() == "[] print('hello')", f"{cheat} survived: {seen.stdout}"


def test_before_sealing_runs_persist_and_after_it_writes_are_refused(make_repo, backend):
    from sandbox.base import SealedError

    repo = make_repo(HOSTILE)
    with open_sandbox(Source(repo=repo), backend) as sb:
        assert sb.run("echo built > built.txt").ok  # an install step
        sb.write_file("harness/x.txt", b"harness")
        sb.seal()
        once = sb.run("cat built.txt harness/x.txt in.txt", files={"in.txt": b"per-run"})
        assert once.stdout == "built\nharnessper-run", once
        assert not sb.run("cat in.txt").ok  # per-run files are gone in the next run
        with pytest.raises(SealedError):
            sb.write_file("late.txt", b"x")
    assert_cleaned(sb)


def test_a_confined_local_run_cannot_remount_the_filesystem(make_repo):
    from sandbox.local_sandbox import LocalSandbox, bwrap_path

    if not bwrap_path():
        pytest.skip("needs bubblewrap")
    victim = Path(f"/var/tmp/optimizer-remount-{os.getpid()}")  # outside the private /tmp
    victim.unlink(missing_ok=True)
    repo = make_repo(HOSTILE)
    with LocalSandbox(Source(repo=repo), confine=True) as sb:
        result = sb.run(f"mount -o remount,rw / ; touch {victim}; grep CapEff /proc/self/status")
    made = victim.exists()
    victim.unlink(missing_ok=True)
    assert not made, "a confined run wrote to the host's filesystem"
    assert "CapEff:\t0000000000000000" in result.stdout


def test_restoring_a_tree_never_follows_a_link_the_run_made(make_repo):
    """A run replaces a folder of the tree with a link to a folder outside; putting the tree
    back must replace the link, not write through it."""
    outside = Path(f"/var/tmp/optimizer-link-target-{os.getpid()}")
    outside.mkdir(exist_ok=True)
    repo = make_repo({"pkg/mod.py": "X = 1\n", "main.py": "print('hello')\n"})
    try:
        for backend in ("local",):
            with open_sandbox(Source(repo=repo), backend) as sb:
                sb.seal()
                swap = f"rm -rf pkg && ln -s {outside} pkg && echo changed > main.py"
                assert sb.run(swap).ok
                after = sb.run("cat pkg/mod.py main.py; test -L pkg && echo LINK || echo DIR")
                assert after.stdout == "X = 1\nhello\nDIR\n" or "print('hello')" in after.stdout
                assert "LINK" not in after.stdout, after.stdout
        assert list(outside.iterdir()) == []
    finally:
        shutil.rmtree(outside, ignore_errors=True)


@pytest.mark.parametrize("sandbox", ["local", "docker"])
def test_ctrl_c_during_threaded_valgrind_runs_ends_at_once(make_repo, sandbox, request):
    """`bench --metric instructions` runs base and head under callgrind in worker threads.
    Ctrl-C used to wait for both runs to end (20 to 70 s); now the SIGINT handler cancels
    every run in flight (sandbox.base.CANCEL): the command ends within seconds, says so,
    and leaves no valgrind process, container or sandbox copy behind."""
    if sandbox == "docker":
        request.getfixturevalue("docker_image")
    loop = "def workload():\n    return sum(i for i in range(20_000_000))\n"
    name = f"bench_ctrl_c_{os.getpid()}_{sandbox}.py"  # names this test's runs, and only them
    repo = make_repo({name: loop})
    cli = subprocess.Popen(
        [sys.executable, "-m", "optimizer", "bench", str(repo), "-w", name, "--metric",
         "instructions", "--sandbox", sandbox],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not _procs("valgrind", name):
        assert time.monotonic() < deadline and cli.poll() is None, "valgrind never started"
        time.sleep(0.2)
    time.sleep(1)
    sent = time.monotonic()
    cli.send_signal(2)
    _, err = cli.communicate(timeout=60)
    took = time.monotonic() - sent
    assert cli.returncode == 130, err
    assert took < 10, f"Ctrl-C took {took:.1f} s"  # was 20-70 s: the worker threads waited
    assert "interrupted" in err and "Traceback" not in err, err
    assert _procs("valgrind", name) == []
    copies = Path(tempfile.gettempdir()).glob("optimizer-sandbox-*/work")
    assert [c for c in copies if (c / name).exists()] == []
    if sandbox == "docker":
        assert containers_left() == []
        assert_images_go_after_exit()  # base's and head's image chains


def _procs(*words: str) -> list[str]:
    """The command lines of the processes that hold every one of ``words``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if all(w in cmd for w in words):
                found.append(cmd)
    return found
