"""A task names its Python: the docker base on the suite that carries it, the local backend
on this interpreter with the task's pip requirements in a private, cached virtualenv."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox import Source, open_sandbox
from sandbox.errors import SandboxError
from sandbox.images import (
    _CHANGES,
    _HOOKS,
    BASE_PACKAGES,
    SUITE,
    EnvRecipe,
    base_tag,
    build_base,
    env_tag,
    image_for,
    suite_for,
)
from sandbox.local_sandbox import LocalSandbox, bwrap_path, host_python, venv_key
from tasks.model import Setup
from tests.conftest import docker_required

ROOT = Path(__file__).resolve().parents[1]
VERSION = "import sys; print('%d.%d' % sys.version_info[:2])"
#: A tiny pure-Python package this host does not have (checked in the test).
PKG, PKG_VERSION = "tomli", "2.0.1"


def optimizer(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "optimizer", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def need_bwrap() -> None:
    if not bwrap_path():
        if os.environ.get("CI"):
            pytest.fail("bubblewrap is not installed (apt-get install -y bubblewrap)")
        pytest.skip("bubblewrap is not installed")


# -- which suite, and the one-line error -----------------------------------------------------


def test_the_default_base_tag_is_unchanged():
    recipe = {"suite": "bookworm", "packages": BASE_PACKAGES, "hooks": _HOOKS, "changes": _CHANGES}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    assert base_tag() == base_tag(SUITE) == f"optimizer-base:{digest}"
    assert base_tag("trixie") != base_tag()
    assert env_tag(EnvRecipe(pip=["six"]), base_tag("trixie")) != env_tag(EnvRecipe(pip=["six"]))


def test_a_version_maps_to_the_suite_that_carries_it():
    assert suite_for(None) == suite_for("3.11") == "bookworm"
    assert suite_for("3.13") == suite_for("python3.13") == suite_for("3.13.5") == "trixie"
    assert suite_for("3.9") == "bullseye"
    assert Setup(python="3.13").python == "3.13"
    with pytest.raises(ValueError):
        Setup(python="three")


@pytest.mark.parametrize("version", ["2.7", "3.99"])
def test_an_unavailable_version_is_one_line_naming_those_that_are(version):
    with pytest.raises(SandboxError) as caught:
        image_for(EnvRecipe(pip=["six"]), "docker", python=version)
    line = caught.value.line()
    assert "\n" not in line and f"Python {version}" in line and "Fix: " in line
    for offered in ("3.9", "3.11", "3.13"):
        assert offered in line


def test_sandbox_build_with_an_unavailable_python_is_one_line():
    done = optimizer("sandbox", "build", "--python", "3.99")
    assert done.returncode == 2, done
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "3.99" in lines[0] and "3.13" in lines[0] and "Fix: " in lines[0]
    assert "--python" in optimizer("sandbox", "build", "--help").stdout


# -- docker: the base on another suite --------------------------------------------------------


@pytest.fixture(scope="module")
def trixie_base() -> str:
    """The Python 3.13 (trixie) base image, built once and kept (about two minutes)."""
    from sandbox import engine

    if not engine.available():
        message = "no Docker engine answers (start dockerd, or see `optimizer sandbox doctor`)"
        if docker_required():
            pytest.fail(message)
        pytest.skip(message)
    try:
        return build_base(suite="trixie", log=lambda _msg: None)
    except SandboxError as e:
        if docker_required():
            pytest.fail(f"the trixie base cannot be built: {e}")
        pytest.skip(f"the trixie base cannot be built: {e}")


@pytest.mark.docker
def test_a_task_python_gets_that_interpreter_in_docker(trixie_base, make_repo):
    image = image_for(EnvRecipe(), "docker", python="3.13")
    assert image == trixie_base == base_tag("trixie")  # the pinned base, not None
    assert image_for(EnvRecipe(), "docker") is None  # no python: the default base, as before
    repo = make_repo({"a.py": "print(1)\n"})
    with open_sandbox(Source(repo=repo), "docker", image=image) as sb:
        result = sb.run(["python3", "-c", VERSION])
        assert result.ok and result.stdout.strip() == "3.13", result
        tools = sb.run("valgrind --version && python3 -m venv /tmp/v && python3 -m pip --version")
        assert tools.ok and tools.stdout.startswith("valgrind-"), tools


@pytest.mark.docker
@pytest.mark.slow
def test_the_env_layer_is_built_on_the_pinned_base(trixie_base, make_repo):
    image = image_for(EnvRecipe(pip=["six==1.16.0"]), "docker", python="3.13", log=print)
    assert image == env_tag(EnvRecipe(pip=["six==1.16.0"]), trixie_base)
    repo = make_repo({"a.py": "import six, sys; print(six.__version__, sys.version_info[:2])\n"})
    with open_sandbox(Source(repo=repo), "docker", image=image) as sb:
        result = sb.run(["python3", "a.py"])
    assert result.stdout.strip() == "1.16.0 (3, 13)", result


# -- local: a private virtualenv per recipe ---------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A private tool cache (under /tmp, so confined runs need the venv bound in)."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTIMIZER_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def pkg_env(cache) -> str:
    env = image_for(EnvRecipe(pip=[f"{PKG}=={PKG_VERSION}"]), "local", log=lambda _m: None)
    assert env is not None
    return env


@pytest.mark.parametrize("confine", [True, False])
def test_the_local_backend_installs_setup_pip(pkg_env, make_repo, confine):
    if confine:
        need_bwrap()
    assert importlib.util.find_spec(PKG) is None, f"pick a package this host lacks, not {PKG}"
    repo = make_repo({"a.py": f"import {PKG}, sys; print(sys.prefix)\n"})
    code = f"from importlib.metadata import version; print(version('{PKG}'))"
    with LocalSandbox(Source(repo=repo), confine=confine, venv=pkg_env) as sb:
        assert sb.confined is confine
        result = sb.run(["python3", "-c", code])
        assert result.ok and result.stdout.strip() == PKG_VERSION, result
        where = sb.run('python3 a.py && echo "$VIRTUAL_ENV"')
        assert where.ok and where.stdout.split() == [pkg_env, pkg_env], where
        pytest_runs = sb.run(["python3", "-c", "import pytest"])  # the host's, still seen
        assert pytest_runs.ok, pytest_runs
    with LocalSandbox(Source(repo=repo), confine=confine) as plain:  # no recipe: the host
        assert not plain.run(["python3", "a.py"]).ok


def test_the_recipe_venv_is_cached(pkg_env, cache):
    said: list[str] = []
    started = time.perf_counter()
    again = image_for(EnvRecipe(pip=[f"{PKG}=={PKG_VERSION}"]), "local", log=said.append)
    assert again == pkg_env and said == [] and time.perf_counter() - started < 1
    link = cache / "envs" / venv_key([f"{PKG}=={PKG_VERSION}"])
    assert link.is_symlink() and link.resolve() == Path(pkg_env)  # published, never moved
    assert image_for(EnvRecipe(), "local") is None  # nothing asked: the host as it is


def test_the_local_backend_checks_the_python_version(cache, make_repo):
    with pytest.raises(SandboxError) as caught:
        image_for(EnvRecipe(), "local", python="3.99")
    line = caught.value.line()
    assert "\n" not in line and "3.99" in line and f"Python {host_python()}" in line
    assert "--sandbox docker" in line and sys.executable in line
    pinned = image_for(EnvRecipe(), "local", python=host_python(), log=lambda _m: None)
    assert pinned is not None  # an empty venv: python3 is this interpreter, whatever PATH says
    repo = make_repo({"a.py": "print(1)\n"})
    with open_sandbox(Source(repo=repo), "local", image=pinned) as sb:
        result = sb.run(["python3", "-c", VERSION])
    assert result.stdout.strip() == host_python(), result


def test_a_local_image_that_is_no_venv_is_refused(tmp_path, make_repo):
    repo = make_repo({"a.py": "print(1)\n"})
    with pytest.raises(SandboxError, match="not a virtual environment"):
        LocalSandbox(Source(repo=repo), venv=str(tmp_path))
    with LocalSandbox(Source(repo=repo), venv="optimizer-env:abc") as sb:  # a docker tag
        assert sb.venv is None


def test_an_interpreter_under_tmp_is_visible_under_bubblewrap(tmp_path, make_repo):
    need_bwrap()
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
    )
    assert str(venv).startswith("/tmp/")
    repo = make_repo({"a.py": "print(1)\n"})
    script = (
        "import sys\n"
        "from sandbox import Source\n"
        "from sandbox.local_sandbox import LocalSandbox\n"
        f"with LocalSandbox(Source(repo={str(repo)!r}), confine=True) as sb:\n"
        "    r = sb.run([sys.executable, '-c', 'import sys; print(sys.prefix)'])\n"
        "print(r.status.value, r.stdout.strip(), r.stderr.strip())\n"
    )
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ["ok", str(venv)], done.stdout


def test_a_recipe_venv_made_from_a_tmp_venv_sees_the_harness_packages(tmp_path, make_repo):
    """The harness in its own virtualenv under /tmp: its packages stay visible to runs."""
    need_bwrap()
    venv = tmp_path / "harness"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
    )
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "only_in_harness.py").write_text("WHERE = 'harness'\n")
    repo = make_repo({"a.py": "import only_in_harness; print(only_in_harness.WHERE)\n"})
    script = (
        "from sandbox import Source, open_sandbox\n"
        "from sandbox.images import EnvRecipe, image_for\n"
        f"env = image_for(EnvRecipe(), 'local', python={host_python()!r}, log=lambda m: None)\n"
        f"with open_sandbox(Source(repo={str(repo)!r}), 'local', image=env) as sb:\n"
        "    r = sb.run(['python3', 'a.py'])\n"
        "print(r.status.value, r.stdout.strip(), r.stderr.strip()[-300:])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPTIMIZER_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ["ok", "harness"], done.stdout
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


# -- the grader passes the task's python -------------------------------------------------------


def pinned_task(python: str | None):
    from tasks.suite import find_task, load_suite

    task = find_task(load_suite("builtin"), "pair-sum-count")
    return task.model_copy(update={"setup": task.setup.model_copy(update={"python": python})})


def test_the_grader_refuses_another_python_on_the_local_backend():
    from tasks.grade import Candidate, GradeOptions, grade

    with pytest.raises(SandboxError, match="3.99"):
        grade(pinned_task("3.99"), Candidate(patch=""), GradeOptions(backend="local"))


@pytest.mark.docker
@pytest.mark.slow
def test_the_grader_runs_the_task_under_its_python(trixie_base):
    from tasks.grade import Candidate, GradeOptions, grade
    from tests.test_builtin_suite import make_patch

    opts = GradeOptions(backend="docker", measure=False)
    check = "def main():\n    assert sys.version_info[:2] == (3, 13), sys.version\n"
    pinned = pinned_task("3.13")
    patch = make_patch(pinned, {"main.py": ("def main():\n", check)})
    on_313 = grade(pinned, Candidate(patch=patch), opts)
    assert on_313.correct, (on_313.status, on_313.reason)
    on_default = grade(pinned_task(None), Candidate(patch=patch), opts)  # 3.11: it fails
    assert not on_default.correct and on_default.status == "failed_tests", on_default.reason
