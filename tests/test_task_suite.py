"""Loading suites: task directories, suite directories, builtin, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks import suite as suite_mod
from tasks.model import Kind, TaskError
from tasks.suite import find_task, load_suite

GOOD = """\
id = "{id}"
kind = "program"
title = "Sum numbers"
prompt = "Make main.py faster."

[source]
path = "repo"

[workload]
command = "python3 main.py < input.txt"

[[checks]]
name = "small"
command = "python3 main.py"
stdin = "cases/small.txt"

[[checks]]
name = "big"
command = "python3 main.py"
stdin = "cases/big.txt"
hidden = true
compare = "lines"

[expert]
patch = "expert.patch"
speedup = 2.5
"""


def write_task(folder: Path, task_id: str = "sum-numbers", toml: str | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "repo").mkdir()
    (folder / "repo" / "main.py").write_text("print(sum(map(int, input().split())))\n")
    (folder / "cases").mkdir()
    (folder / "cases" / "small.txt").write_text("1 2 3\n")
    (folder / "cases" / "big.txt").write_text("4 5 6\n")
    (folder / "expert.patch").write_text("")
    (folder / "task.toml").write_text(toml if toml is not None else GOOD.format(id=task_id))
    return folder


def test_a_task_directory_and_its_task_toml(tmp_path: Path) -> None:
    folder = write_task(tmp_path / "t")
    for spec in (str(folder), str(folder / "task.toml"), folder):
        [task] = load_suite(spec)
        assert task.id == "sum-numbers"
        assert task.kind is Kind.PROGRAM
        assert task.root == folder.resolve()
        assert [c.name for c in task.visible_checks()] == ["small"]
        assert [c.name for c in task.hidden_checks()] == ["big"]
        assert task.expert.speedup == 2.5


def test_a_suite_directory_is_sorted_by_id_and_skips_other_folders(tmp_path: Path) -> None:
    write_task(tmp_path / "s" / "z-dir", task_id="a-task")
    write_task(tmp_path / "s" / "a-dir", task_id="b-task")
    (tmp_path / "s" / "notes").mkdir()
    (tmp_path / "s" / "README.md").write_text("hi")
    tasks = load_suite(str(tmp_path / "s"))
    assert [t.id for t in tasks] == ["a-task", "b-task"]
    assert find_task(tasks, "b-task").root.name == "a-dir"
    with pytest.raises(TaskError, match=r"no task 'nope' in the suite.*a-task, b-task"):
        find_task(tasks, "nope")


def test_duplicate_ids_in_a_suite_are_an_error(tmp_path: Path) -> None:
    write_task(tmp_path / "s" / "one", task_id="same")
    write_task(tmp_path / "s" / "two", task_id="same")
    with pytest.raises(TaskError, match=r"field 'id': 'same' is also the id of"):
        load_suite(str(tmp_path / "s"))


def test_builtin_loads_the_package_folder_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(suite_mod, "BUILTIN_DIR", tmp_path / "missing")
    assert load_suite("builtin") == []
    write_task(tmp_path / "b" / "x", task_id="x-task")
    monkeypatch.setattr(suite_mod, "BUILTIN_DIR", tmp_path / "b")
    assert [t.id for t in load_suite("builtin")] == ["x-task"]


def test_unknown_specs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(TaskError) as exc:
        load_suite(str(tmp_path / "nowhere"))
    assert "no such file or directory" in str(exc.value) and "\n" not in str(exc.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TaskError, match="holds no task.toml and no task directories. Fix:"):
        load_suite(str(tmp_path / "empty"))
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(TaskError, match="not a task file or a dataset file"):
        load_suite(str(tmp_path / "x.csv"))


BROKEN = {
    "bad TOML": (
        GOOD.replace('title = "Sum numbers"', "title = Sum numbers"),
        "not valid TOML",
    ),
    "unknown field": (
        GOOD.replace('title = "Sum numbers"', 'titel = "Sum numbers"'),
        "field 'titel'",
    ),
    "missing field": (
        GOOD.replace('[workload]\ncommand = "python3 main.py < input.txt"\n', ""),
        "field 'workload'",
    ),
    "wrong kind": (GOOD.replace('kind = "program"', 'kind = "library"'), "field 'kind'"),
    "two sources": (
        GOOD.replace('path = "repo"', 'path = "repo"\npypi = "foo==1.0"'),
        "field 'source'",
    ),
    "missing expert patch": (
        GOOD.replace('patch = "expert.patch"', 'patch = "nope.patch"'),
        "nope.patch does not exist",
    ),
    "two workloads": (
        GOOD.replace(
            'command = "python3 main.py < input.txt"',
            'command = "python3 main.py"\nscript = "w.py"',
        ),
        "field 'workload'",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_task_files_give_one_line_errors(tmp_path: Path, case: str) -> None:
    toml, needle = BROKEN[case]
    folder = write_task(tmp_path / "t", toml=toml.format(id="t1"))
    with pytest.raises(TaskError) as exc:
        load_suite(str(folder))
    message = str(exc.value)
    assert "\n" not in message
    assert str(folder / "task.toml") in message
    assert needle in message
    assert "Fix:" in message


def test_a_workload_script_must_exist_in_the_task_directory(tmp_path: Path) -> None:
    toml = GOOD.format(id="t1").replace(
        'command = "python3 main.py < input.txt"', 'script = "workload.py"'
    )
    folder = write_task(tmp_path / "t", toml=toml)
    with pytest.raises(TaskError, match="workload.py does not exist"):
        load_suite(str(folder))
    (folder / "workload.py").write_text("def setup(): pass\ndef workload(): pass\n")
    [task] = load_suite(str(folder))
    assert task.workload.script == "workload.py" and task.workload.command is None
    assert ".optimizer/" in task.protected_paths()


def test_suite_slash_id_names_one_task_of_any_suite(tmp_path: Path) -> None:
    (task,) = load_suite("builtin/spans")
    assert task.id == "spans"
    with pytest.raises(TaskError, match="no task 'nope'"):
        load_suite("builtin/nope")


def test_tasks_show_reflows_the_prompt_for_the_terminal_width() -> None:
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "optimizer", "tasks", "show", "builtin", "softmax-rows"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    prompt = done.stdout.split("\n\n", 1)[1].splitlines()
    assert all(len(line) <= 80 for line in prompt), prompt
    # no short orphan lines from re-wrapping ~92-column hard breaks at 80 columns
    assert all(len(line) > 40 for line in prompt[:-1]), prompt
