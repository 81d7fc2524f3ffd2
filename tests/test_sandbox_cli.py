"""`optimizer sandbox ...` as a user runs it: real subprocesses, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import Source, open_sandbox
from sandbox.images import EnvRecipe, build_env, env_tag


def optimizer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optimizer", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
        timeout=300,
    )


def assert_one_line_error(done: subprocess.CompletedProcess, *needles: str) -> None:
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "Fix: " in lines[0]
    for needle in needles:
        assert needle in lines[0]


def test_help_lists_commands():
    done = optimizer("--help")
    assert done.returncode == 0
    for command in ("sandbox", "score", "bench"):
        assert command in done.stdout


def test_not_a_git_repo(tmp_path):
    assert_one_line_error(
        optimizer("sandbox", "run", str(tmp_path), "--sandbox", "local", "--", "true"),
        "not a git repository",
    )


def test_unknown_revision(make_repo):
    repo = make_repo({"a.txt": "a\n"})
    assert_one_line_error(
        optimizer("sandbox", "run", str(repo), "--rev", "nope", "--sandbox", "local", "--", "true"),
        "unknown revision 'nope'",
    )


def test_patch_that_does_not_apply(make_repo, tmp_path):
    repo = make_repo({"a.txt": "a\n"})
    patch = tmp_path / "bad.patch"
    patch.write_text("--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-not there\n+b\n")
    done = optimizer(
        "sandbox", "run", str(repo), "--patch", str(patch), "--sandbox", "local", "--", "true"
    )
    assert_one_line_error(done, "patch does not apply", "a.txt")


def test_no_docker_engine_suggests_local(make_repo, tmp_path):
    repo = make_repo({"a.txt": "a\n"})
    done = optimizer(
        "sandbox", "run", str(repo), "--sandbox", "docker", "--", "true",
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"},
    )  # fmt: skip
    assert_one_line_error(done, "no Docker engine", "--sandbox local", "DOCKER_HOST=unix://")
    auto = optimizer(
        "sandbox", "run", str(repo), "--sandbox", "auto", "--", "true",
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"},
    )  # fmt: skip
    assert auto.returncode == 0, auto.stderr
    assert "--sandbox auto runs in the local sandbox" in auto.stderr  # said, not silent
    assert f"DOCKER_HOST=unix://{tmp_path}/no-engine.sock" in auto.stderr


def test_doctor_without_engine_names_the_fix(tmp_path):
    done = optimizer("sandbox", "doctor", env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert done.returncode == 1
    assert "apt-get install -y docker.io" in done.stdout
    assert "Traceback" not in done.stderr


def test_run_shows_status(make_repo):
    repo = make_repo({"a.py": "print('from the copy')\n"})
    done = optimizer("sandbox", "run", str(repo), "--sandbox", "local", "--", "python3", "a.py")
    assert done.returncode == 0, done.stderr
    assert "from the copy" in done.stdout
    assert "ok in local sandbox" in done.stdout
    failed = optimizer("sandbox", "run", str(repo), "--sandbox", "local", "--", "false")
    assert failed.returncode == 1
    assert "error in local sandbox" in failed.stdout


def test_python3_in_a_local_run_is_the_interpreter_optimizer_runs_on(make_repo, tmp_path):
    """A virtualenv under /tmp, not activated (its bin is not on PATH): `python3` in the run
    is still that virtualenv's interpreter, with bubblewrap (which hides /tmp) or without."""
    repo = make_repo({"a.py": "import sys, typer\nprint('prefix', sys.prefix)\n"})
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True)  # fmt: skip
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if str(venv) not in p)
    done = subprocess.run(
        [str(venv / "bin/python"), "-m", "optimizer", "sandbox", "run", str(repo), "--sandbox",
         "local", "--", "python3", "a.py"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1],
        env={**os.environ, "PATH": path, "VIRTUAL_ENV": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"prefix {venv}" in done.stdout, done.stdout


def test_build_then_doctor_is_all_ok(docker_image):
    built = optimizer("sandbox", "build")
    assert built.returncode == 0, built.stderr
    assert docker_image in built.stdout  # already built: reused by its content hash
    doctor = optimizer("sandbox", "doctor")
    assert doctor.returncode == 0, doctor.stdout
    for piece in ("docker engine", "base image", "mmdebstrap", "valgrind"):
        row = next(line for line in doctor.stdout.splitlines() if piece in line)
        assert "OK" in row, row


@pytest.mark.slow
def test_env_layer_is_built_with_pip_and_cached(docker_image, make_repo):
    recipe = EnvRecipe(pip=["six==1.16.0"])
    tag = build_env(recipe, log=lambda _msg: None)
    assert tag == env_tag(recipe) and tag.startswith("optimizer-env:")
    assert build_env(recipe, log=lambda _msg: None) == tag  # cached by content hash
    assert env_tag(EnvRecipe(pip=["six==1.15.0"])) != tag
    repo = make_repo({"a.py": "import six; print(six.__version__)\n"})
    with open_sandbox(Source(repo=Path(repo)), "docker", image=tag) as sb:
        result = sb.run(["python3", "a.py"])
    assert result.stdout.strip() == "1.16.0", result


def test_a_long_silent_build_step_says_it_is_still_going():
    """`sandbox build` ran mmdebstrap for ~100 s with no line in between (the issue's
    "three lines in 1.5 minutes"): a heartbeat now says it is still building."""
    import time

    from sandbox.images import heartbeat

    lines: list[str] = []
    with heartbeat(lines.append, "building the rootfs", every=0.05):
        time.sleep(0.4)
    count = len(lines)
    time.sleep(0.2)
    assert count >= 2 and all(ln.startswith("  still building the rootfs (") for ln in lines)
    assert len(lines) == count  # it stops with the step


def test_a_missing_module_hints_at_pip(make_repo):
    repo = make_repo({"a.py": "import no_such_module_here\n"})
    done = optimizer("sandbox", "run", str(repo), "--sandbox", "local", "--", "python3", "a.py")
    assert done.returncode == 1
    assert "hint: no_such_module_here is not installed" in done.stdout
    assert "--pip no_such_module_here" in done.stdout


def test_the_readme_pytest_example_runs_in_docker_with_pip(make_repo, docker_image):
    """The README's `sandbox run ... --sandbox docker --pip pytest -- python3 -m pytest -q`:
    the base image has no pytest, `--pip pytest` builds the env layer that has it."""
    repo = make_repo({"test_a.py": "def test_one():\n    assert 1 + 1 == 2\n"})
    done = optimizer("sandbox", "run", str(repo), "--sandbox", "docker", "--pip", "pytest",
                     "--", "python3", "-m", "pytest", "-q", "-p", "no:cacheprovider")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout and "ok in docker sandbox" in done.stdout
