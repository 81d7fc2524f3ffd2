"""Sessions: many runs of a sealed sandbox in one container, each still from the pristine tree."""

from __future__ import annotations

import time

import pytest

from sandbox import Limits, SandboxError, Source, Status, open_sandbox

REPO = {"main.py": "print('hello')\n"}
OUT = ".optimizer-out"


def py(code: str) -> list[str]:
    return ["python3", "-c", code]


def session_containers(sb) -> list:
    import docker

    mine = {"label": f"optimizer.sandbox={sb.id}"}
    return docker.from_env().containers.list(all=True, filters=mine)


@pytest.fixture
def sealed(make_repo, docker_image):
    """A sealed docker sandbox of a one-file repo."""
    with open_sandbox(Source(repo=make_repo(REPO)), "docker", image=docker_image) as sb:
        sb.seal()
        yield sb


@pytest.fixture
def session(sealed):
    with sealed.session(writable=(OUT,)) as s:
        yield s


LEFTOVERS = {
    "a file in /tmp": "echo x > /tmp/cache",
    "a file under HOME": "mkdir -p ~/.cache && echo x > ~/.cache/answer",
    "a file in the out dir": f"mkdir -p {OUT}/deep && echo x > {OUT}/deep/answer",
    "a file in /dev/shm": "echo x > /dev/shm/answer",
    "a locked folder in /tmp": "mkdir -p /tmp/l/d && touch /tmp/l/d/f && chmod 000 /tmp/l/d /tmp/l",
}
LOOK = f"ls -A /tmp /dev/shm {OUT}"


@pytest.mark.parametrize("write", sorted(LEFTOVERS))
def test_nothing_a_run_writes_is_seen_by_the_next(session, write):
    wrote = session.run(f"{LEFTOVERS[write]} && {LOOK}")
    assert wrote.ok, wrote
    seen = session.run(LOOK)
    assert seen.ok, seen
    assert wrote.stdout != seen.stdout  # the write did land, in the first run only
    assert seen.stdout.split() == [f"{OUT}:", "/dev/shm:", "/tmp:"], seen.stdout


def test_a_background_process_does_not_survive_its_run(session):
    started = time.monotonic()
    forked = session.run("sleep 300 & setsid nohup sleep 301 >/dev/null 2>&1 & echo started")
    assert forked.ok and forked.stdout == "started\n", forked
    assert time.monotonic() - started < 10  # a child holding stdout does not hold the run
    procs = session.run(["ps", "-eo", "stat=,args="])
    assert procs.ok, procs
    assert "sleep 30" not in procs.stdout, procs.stdout
    every = session.run("cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert "sleep infinity" in every.stdout and "sleep 30" not in every.stdout, every.stdout


def test_the_tree_is_read_only(session):
    for write in ("echo 42 > main.py", "touch new.py", "rm main.py", "mkdir d"):
        result = session.run(write)
        assert result.status is Status.ERROR, (write, result)
        assert "Read-only file system" in result.stderr, result.stderr
    assert session.run("cat main.py; ls").stdout == "print('hello')\nmain.py\n"


def test_a_timeout_kills_the_run_in_about_the_limit(session):
    started = time.monotonic()
    result = session.run(py("while True: pass"), limits=Limits(wall_s=1))
    assert result.status is Status.TIMEOUT, result
    assert result.exit_code is None
    assert 0.5 < result.duration_s < 3  # timed from the command's start, not the exec's
    assert time.monotonic() - started < 10
    after = session.run(["ps", "-eo", "args="])
    assert after.ok and "while True" not in after.stdout, after.stdout
    cpu = session.run(py("while True: pass"), limits=Limits(wall_s=30, cpu_s=1))
    assert cpu.status is Status.TIMEOUT and "CPU" in cpu.reason, cpu


def test_printing_too_much_is_killed_and_the_session_goes_on(session):
    result = session.run(["sh", "-c", "head -c 1073741824 /dev/zero"])
    assert result.status is Status.KILLED and result.output_truncated, result
    assert session.run("echo ok").stdout == "ok\n"


def test_collect_returns_what_the_run_wrote_to_the_out_dir(session):
    code = f"mkdir -p {OUT} && printf '{{}}' > {OUT}/result.json && ln -s /etc/passwd {OUT}/link"
    result = session.run(code, collect=[f"{OUT}/result.json", f"{OUT}/link", f"{OUT}/missing"])
    assert result.ok, result
    assert result.files == {f"{OUT}/result.json": b"{}"}
    assert session.run("true", collect=[f"{OUT}/result.json"]).files == {}


def test_env_vars_reach_the_command(session):
    env = {"FOO": "bar", "WHERE": "{workdir}/x"}
    result = session.run('echo "$FOO $WHERE $HOME $OPTIMIZER_SANDBOX $(id -u)"', env=env)
    assert result.stdout == "bar /work/x /tmp docker 1000\n", result


def test_there_is_no_network(session):
    ifaces = session.run(py("import socket; print(sorted(n for _, n in socket.if_nameindex()))"))
    assert ifaces.stdout.strip() == "['lo']", ifaces
    dial = session.run(py("import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)"))
    assert dial.status is Status.ERROR and "unreachable" in dial.stderr, dial


def test_a_memory_oom_kill_is_reported(make_repo, docker_image):
    limits = Limits(memory_mb=256, wall_s=60)
    grow = "chunks = []\nfor _ in range(50 * 1024):\n    chunks.append(b'x' * 2**20)"
    with open_sandbox(Source(repo=make_repo(REPO)), "docker", limits=limits) as sb:
        sb.seal()
        with sb.session() as s:
            result = s.run(py(grow))
            assert result.status is Status.OOM, result
            assert s.run("true").ok  # the next run is not taken for another OOM


def test_a_fork_bomb_and_piled_up_orphans_leave_the_session_working(make_repo, docker_image):
    limits = Limits(wall_s=5, pids=64)
    with open_sandbox(Source(repo=make_repo(REPO)), "docker", limits=limits) as sb:
        sb.seal()
        with sb.session() as s:
            bomb = s.run(["bash", "-c", ":(){ :|:& };:; sleep 60"])
            assert bomb.status in (Status.KILLED, Status.TIMEOUT), bomb
            for _ in range(40):  # each leaves two zombies that `sleep infinity` never reaps
                assert s.run("sleep 100 & sleep 101 &").ok
            procs = s.run(["ps", "-e", "--no-headers"])
            assert procs.ok and len(procs.stdout.splitlines()) < 40, procs.stdout


def test_the_container_is_removed_when_the_session_ends(sealed):
    with sealed.session() as s:
        assert s.run("true").ok
        assert [c.status for c in session_containers(sealed)] == ["running"]
    assert session_containers(sealed) == []
    with pytest.raises(KeyboardInterrupt), sealed.session() as s:
        assert len(session_containers(sealed)) == 1
        raise KeyboardInterrupt
    assert session_containers(sealed) == []


def test_a_dead_container_is_a_one_line_error(session, sealed):
    for container in session_containers(sealed):
        container.kill()
    with pytest.raises(SandboxError) as caught:
        session.run("true")
    assert "docker info" in caught.value.fix and "\n" not in str(caught.value)


def test_what_a_session_refuses(make_repo, docker_image, session):
    with pytest.raises(ValueError, match="read-only"):
        session.run("cat in.txt", files={"in.txt": b"x"})
    with pytest.raises(ValueError, match="read-only"):
        session.run("cat", stdin=b"x")
    with pytest.raises(ValueError, match="memory_mb"):
        session.run("true", limits=Limits(memory_mb=64))
    unsealed = open_sandbox(Source(repo=make_repo(REPO, name="unsealed")), "docker")
    with unsealed, pytest.raises(RuntimeError, match="seal"), unsealed.session():
        pass


def test_a_local_session_is_the_sandbox_itself(make_repo):
    with open_sandbox(Source(repo=make_repo(REPO)), "local") as sb:
        sb.seal()
        with sb.session(writable=(OUT,)) as s:
            assert s is sb
            assert s.run("cat main.py").stdout == "print('hello')\n"


def test_a_writable_path_the_sealed_tree_already_has_is_writable(make_repo, docker_image):
    """A build (or pytest's collection) left the out dir in the image: the tmpfs over it
    takes its owner and mode (root, 755) unless the session opens it, and every harness
    run then failed with PermissionError."""
    with open_sandbox(Source(repo=make_repo(REPO)), "docker", image=docker_image) as sb:
        assert sb.run(f"mkdir -p {OUT} && echo old > {OUT}/stale").ok
        sb.seal()
        with sb.session(writable=(OUT,)) as s:
            for _ in range(2):
                r = s.run(f"ls -A {OUT}; echo new > {OUT}/result && cat {OUT}/result")
                assert (r.status, r.stdout) == (Status.OK, "new\n"), r.stderr
