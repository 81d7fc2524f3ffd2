"""Shared fixtures: real git repos in temp dirs, and the real Docker engine."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` and return its stdout."""
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """Make a git repo whose history is the given commits (each a {path: text} dict)."""

    def make(*commits: dict[str, str], name: str = "repo") -> Path:
        repo = tmp_path / name
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        for i, files in enumerate(commits):
            for rel, text in files.items():
                path = repo / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", f"commit {i}")
        return repo

    return make


def assert_wall_reads(m: object, expected: str) -> None:
    """A wall-clock reading of a real change in the ``expected`` direction ("slower" or
    "faster"), on a machine that may be busy: the verdict is ``expected`` with the whole CI
    on that side of 1, or ``inconclusive`` once the sampler spent its budget or its most
    pairs; never ``same`` nor the other way. Wall time is not deterministic, and under load
    the honest answer is "inconclusive", whatever its point ratio (a 20% slowdown read
    0.98x, inconclusive, in Docker at load 12 on 2 cores)."""
    get = m.get if isinstance(m, dict) else lambda key: getattr(m, key)
    verdict, ci, stopped = get("verdict"), get("ci"), get("stopped")
    assert verdict in (expected, "inconclusive"), m
    if verdict == expected:
        assert ci[0] > 1 if expected == "slower" else ci[1] < 1, m
    else:
        assert stopped in ("budget", "max_repeats"), m


def docker_required() -> bool:
    """In CI (CI set) Docker-backed tests must run: a missing engine is a failure."""
    return bool(os.environ.get("CI"))


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The sandbox base image, built on demand; skips (or fails in CI) with no engine."""
    from sandbox import engine
    from sandbox.images import build_base

    if not engine.available():
        message = "no Docker engine answers (start dockerd, or see `optimizer sandbox doctor`)"
        if docker_required():
            pytest.fail(message)
        pytest.skip(message)
    return build_base(log=lambda _msg: None)


@pytest.fixture(params=["local", "docker"])
def backend(request: pytest.FixtureRequest) -> str:
    """Both sandbox backends; the docker one needs the engine and the base image."""
    if request.param == "docker":
        request.getfixturevalue("docker_image")
    return request.param


def sigint_default() -> None:
    """``preexec_fn`` for a child a test sends SIGINT (Ctrl-C): a test run started as a
    background job inherits SIGINT ignored, and Python then keeps ignoring it in children."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def require_kernels() -> None:
    """Skip a module when torch and triton (the `kernels` extra) are missing; under CI, where
    `.ci/run` installs them, a missing one is a failure instead."""
    import importlib.util

    missing = [m for m in ("torch", "triton") if importlib.util.find_spec(m) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (pip install -e '.[kernels]')"
    if docker_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)
