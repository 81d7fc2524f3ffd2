"""`optimizer tasks new`, expert commits, test patches, relative sources and `--repo`:
any Python project at a performance commit becomes a task (real git repos, the real CLI)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sandbox import Source
from tasks.model import load_task
from tasks.new import _protect_entry, collect_test_files
from tasks.source import expert_patch, split_diff, task_test_patch, with_repo
from tests.conftest import git

SLOW = '''def total(n):
    """The sum of i*i % 7 for i below n."""
    out = 0
    for i in range(n):
        out += i * i % 7
    return out
'''
FAST = '''_CYCLE = [i * i % 7 for i in range(7)]


def total(n):
    """The sum of i*i % 7 for i below n."""
    q, r = divmod(n, 7)
    return q * sum(_CYCLE) + sum(_CYCLE[:r])
'''
TEST_BASE = """from cyclic import total


def test_small():
    assert total(10) == sum(i * i % 7 for i in range(10))
"""
TEST_NEW = """from cyclic import total


def test_many_sizes():
    for n in range(50):
        assert total(n) == sum(i * i % 7 for i in range(n))
"""
WORKLOAD = """import cyclic


def setup():
    pass


def workload():
    return cyclic.total(1_000_000)
"""


def optimizer(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optimizer", *args],
        capture_output=True, text=True, timeout=600, cwd=cwd,
        env=None,
    )  # fmt: skip


@pytest.fixture
def project(make_repo, tmp_path: Path) -> tuple[Path, str, str, Path]:
    """A repo whose second commit makes ``total`` fast and adds a test; and a workload file."""
    repo = make_repo(
        {"cyclic/__init__.py": SLOW, "tests/test_total.py": TEST_BASE, "README": "cyclic\n"},
        {"cyclic/__init__.py": FAST, "tests/test_sizes.py": TEST_NEW},
    )
    workload = tmp_path / "bench.py"
    workload.write_text(WORKLOAD)
    return repo, git(repo, "rev-parse", "main~1"), git(repo, "rev-parse", "main"), workload


def write_task(folder: Path, toml: str, workload: str = WORKLOAD) -> Path:
    folder.mkdir()
    (folder / "task.toml").write_text(toml)
    (folder / "bench.py").write_text(workload)
    return folder


def commit_task(source: str, expert: str) -> str:
    return f'''id = "cyclic"
kind = "repo"

[source]
{source}

[setup]
env = {{ PYTHONPATH = "." }}

[workload]
script = "bench.py"

[tests]
command = "python3 -m pytest -q -p no:cacheprovider --junitxml={{junit}}"
protected = ["tests/"]

[expert]
commit = "{expert}"
'''


def test_tasks_new_writes_a_task_that_validates_with_the_expert_faster(project, tmp_path):
    repo, base, expert, workload = project
    out = tmp_path / "tasks" / "cyclic"
    done = optimizer("tasks", "new", str(repo), "--base", "main~1", "--expert", "main",
                     "--workload", str(workload), "--out", str(out), "--sandbox", "local",
                     "--repeats", "3")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validate: ok" in done.stdout and "faster" in done.stdout
    assert "2/2 · 2/2" in done.stdout  # the expert's new test ran on the base and the expert
    data = tomllib.loads((out / "task.toml").read_text())
    assert data["source"] == {"path": "../../repo", "commit": base}
    assert data["expert"] == {"patch": "expert.patch", "commit": expert}
    assert data["tests"]["protected"] == ["tests/"] and data["tests"]["patch"] == "test.patch"
    assert data["tests"]["runner"] == "pytest" and "pytest" in data["tests"]["command"]
    assert data["workload"] == {"script": "bench.py"}
    assert [c["name"] for c in data["checks"]] == ["workload-result"]
    code, tests = (out / "expert.patch").read_text(), (out / "test.patch").read_text()
    assert "cyclic/__init__.py" in code and "tests/" not in code
    assert "tests/test_sizes.py" in tests and "cyclic/" not in tests
    assert (out / "bench.py").read_text() == WORKLOAD
    assert [p.name for p in out.parent.iterdir()] == ["cyclic"]  # no temp folder left


def test_the_written_task_reads_the_same_through_the_library(project, tmp_path):
    repo, base, expert, workload = project
    out = tmp_path / "t"
    done = optimizer("tasks", "new", str(repo), "--base", base, "--expert", expert,
                     "--workload", str(workload), "--out", str(out), "--no-validate")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not validated" in done.stdout
    task = load_task(out)
    assert expert_patch(task) == (out / "expert.patch").read_text()
    assert "test_many_sizes" in task_test_patch(task)
    check = task.checks[0]
    run = subprocess.run(
        check.command.replace(".optimizer/workload.py", str(workload)), shell=True,
        cwd=repo, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": "."},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == repr(sum(i * i % 7 for i in range(1_000_000)))


def test_an_expert_commit_alone_with_a_relative_path_and_commit_validates(project, tmp_path):
    repo, base, expert, _ = project
    folder = write_task(tmp_path / "task", commit_task(f'path = "../repo"\ncommit = "{base}"',
                                                        expert))  # fmt: skip
    task = load_task(folder)
    patch = expert_patch(task)
    assert "cyclic/__init__.py" in patch and "tests/" not in patch  # test files left out
    done = optimizer("tasks", "validate", str(folder), "--sandbox", "local", "--repeats", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok" in done.stdout and "faster" in done.stdout
    # piped (a CI log): one plain line per task as it starts and as it ends, never silence
    assert f"[1/1] validating {task.id}" in done.stderr and f"  {task.id}: ok (" in done.stderr


def test_repo_overrides_a_git_url_source_for_validate_and_grade(project, tmp_path):
    repo, base, expert, _ = project
    source = f'git = "https://example.invalid/cyclic.git"\ncommit = "{base}"'
    folder = write_task(tmp_path / "task", commit_task(source, expert))
    task = with_repo(load_task(folder), repo)
    assert task.source.path == str(repo) and task.source.commit == base and not task.source.git
    done = optimizer("grade", str(folder), "--repo", str(repo), "--expert", "--sandbox", "local",
                     "--no-measure")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "grading the expert" in done.stdout and "ok" in done.stdout
    done = optimizer("tasks", "validate", str(folder), "--repo", str(repo), "--sandbox", "local",
                     "--repeats", "3")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "faster" in done.stdout


def test_a_commit_missing_from_the_repo_is_one_line_naming_it(project, make_repo, tmp_path):
    repo, base, expert, _ = project
    other = make_repo({"x.py": "x = 1\n"}, name="other")
    folder = write_task(tmp_path / "task", commit_task(f'path = "../other"\ncommit = "{base}"',
                                                        expert))  # fmt: skip
    for args in (["tasks", "validate", str(folder)],
                 ["grade", str(folder), "--repo", str(other), "--no-measure"]):  # fmt: skip
        done = optimizer(*args, "--sandbox", "local")
        assert done.returncode == 2, done.stdout + done.stderr
        lines = done.stderr.strip().splitlines()
        # piped, validate says which task it is on first; the error is one line, the last
        errors = [ln for ln in lines if ln.startswith("error:")]
        assert errors == lines[-1:] and base in lines[-1] and str(other) in lines[-1], lines


def test_user_errors_are_one_line_exit_2_and_write_nothing(project, tmp_path):
    repo, _, _, workload = project
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    cases = [
        (["--base", "nope", "--expert", "main"], "--base nope: no such commit"),
        (["--base", "main~1", "--expert", "v9"], "--expert v9: no such commit"),
        (["--base", "main", "--expert", "main"], "the same commit"),
        (["--workload", str(tmp_path / "missing.py")], "no such file"),
        (["--out", str(full)], "is not empty"),
    ]
    for extra, message in cases:
        out = tmp_path / "new-task"
        args = ["--base", "main~1", "--expert", "main", "--workload", str(workload),
                "--out", str(out), *extra]  # fmt: skip
        done = optimizer("tasks", "new", str(repo), *args)
        assert done.returncode == 2, (extra, done.stdout + done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (extra, lines)
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.py", "full", "repo"]


def test_a_test_patch_that_does_not_apply_is_a_task_error(project, tmp_path):
    repo, base, expert, _ = project
    folder = write_task(tmp_path / "task", commit_task(f'path = "../repo"\ncommit = "{base}"',
                                                        expert))  # fmt: skip
    toml = (
        (folder / "task.toml")
        .read_text()
        .replace('protected = ["tests/"]', 'protected = ["tests/"]\npatch = "test.patch"')
    )
    (folder / "task.toml").write_text(toml)
    _, bad = split_diff(repo, expert, base, ["tests/"])  # deletes a file the base lacks
    (folder / "test.patch").write_text(bad)
    done = optimizer("grade", str(folder), "--sandbox", "local", "--no-measure")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "field 'tests.patch'" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_split_diff_and_the_protected_folders(project, make_repo):
    repo, base, expert, _ = project
    code, tests = split_diff(repo, base, expert, [])
    assert code.startswith("diff --git a/cyclic/__init__.py") and "tests/test_sizes.py" in tests
    assert _protect_entry("tests/unit/test_a.py") == "tests/"
    assert _protect_entry("pkg/tests/test_a.py") == "pkg/tests/"
    assert _protect_entry("pkg/test_core.py") == "pkg/test_core.py"  # not the whole package
    at_expert = Source(repo=repo, rev=expert)
    assert collect_test_files(at_expert, []) == ["tests/test_sizes.py", "tests/test_total.py"]
    plain = make_repo({"lib.py": "x = 1\n", "lib_test.py": "import nothing_at_all\n"}, name="p")
    # pytest cannot import it: the files named like tests are taken instead
    tracked = ["lib.py", "lib_test.py"]
    assert collect_test_files(Source(repo=plain, rev="HEAD"), tracked) == ["lib_test.py"]


@pytest.mark.docker
def test_tasks_new_validates_in_docker(project, tmp_path, docker_image):
    repo, _, _, workload = project
    out = tmp_path / "cyclic"
    done = optimizer("tasks", "new", str(repo), "--base", "main~1", "--expert", "main",
                     "--workload", str(workload), "--out", str(out), "--sandbox", "docker",
                     "--repeats", "3", "--pip", "pytest==8.3.3")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validate: ok" in done.stdout and "2/2 · 2/2" in done.stdout


def test_tasks_new_reads_the_runner_off_the_command_and_takes_setup_flags(project, tmp_path):
    """`--tests` in unittest, pytest or JUnit form sets `runner`; `--package`, `--python` and
    `--env` reach [setup]; `--pip ""` means no requirements; a bad `--env` is one line."""
    repo, base, expert, workload = project
    cases = {
        "python3 -m unittest discover -s tests": ("unittest", []),
        "python3 -m pytest -q tests": ("pytest", ["pytest"]),
        "./run-tests --xml {junit}": ("junit", []),
    }
    for i, (command, (runner, pip)) in enumerate(cases.items()):
        out = tmp_path / f"t{i}"
        args = ["tasks", "new", str(repo), "--base", base, "--expert", expert, "--workload",
                str(workload), "--tests", command, "--out", str(out), "--no-validate"]  # fmt: skip
        if runner == "junit":
            args += ["--pip", ""]
        else:
            args += ["--package", "editable", "--python", "3.11", "--env", "VERSION=1.0"]
        done = optimizer(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        data = tomllib.loads((out / "task.toml").read_text())
        assert data["tests"]["runner"] == runner and data["setup"]["pip"] == pip, data
        if runner != "junit":
            assert data["setup"]["package"] == "editable" and data["setup"]["python"] == "3.11"
            assert data["setup"]["env"] == {"PYTHONPATH": ".", "VERSION": "1.0"}
    done = optimizer("tasks", "new", str(repo), "--base", base, "--expert", expert,
                     "--workload", str(workload), "--env", "NOEQUALS", "--out",
                     str(tmp_path / "bad"))  # fmt: skip
    assert done.returncode == 2 and "--env 'NOEQUALS' is not KEY=VALUE" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
