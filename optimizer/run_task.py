"""`optimizer run REPO --workload FILE --tests CMD` as a task the judge can grade.

The user's repository is the source (its HEAD, or ``--base``); nothing is read from its
working tree except a workload file that is not committed, which is copied in by the grader
(``workload.script``) and protected like a committed one. The test command must write JUnit
XML: a pytest command gets ``--junitxml`` added.
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
from pathlib import Path

from optimizer.errors import UserError
from tasks.model import Kind, Task
from tasks.source import repo_root, resolve_commit

#: Directories that hold tests by convention: protected unless the user names others.
TEST_DIRS = ("tests/", "test/", "testing/")


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def resolve_repo(repo: Path, rev: str) -> tuple[Path, str]:
    """The repository's top level and the full sha of ``rev``; one-line errors otherwise."""
    root = repo_root(repo)
    sha = resolve_commit(root, rev)
    if sha is None:
        raise UserError(
            f"{rev!r} is not a commit in {root}", "commit your code, or pass --base REV"
        )
    return root, sha


def _tracked(root: Path, sha: str, rel: str) -> bool:
    return _git(root, "cat-file", "-e", f"{sha}:{rel}").returncode == 0


def _defines_workload(text: str) -> bool:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    return any(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == "workload"
        for n in tree.body
    )


def tests_with_junit(command: str) -> str:
    """Add ``--junitxml={junit}`` to a pytest command; other runners must say ``{junit}``."""
    if "{junit}" in command:
        return command
    words = shlex.split(command)
    is_pytest = bool(words) and (
        Path(words[0]).name in ("pytest", "py.test")
        or (len(words) >= 3 and words[1] == "-m" and words[2] == "pytest")
    )
    if not is_pytest:
        raise UserError(
            f"the test command {command!r} writes no JUnit XML the judge can read",
            "use pytest, or put {junit} where your runner writes JUnit XML",
        )
    return f"{command} -p no:cacheprovider --junitxml={{junit}}"


def repo_task(
    repo: Path,
    *,
    workload: str,
    tests: str | None,
    base: str = "HEAD",
    metric: str = "wall",
    pip: list[str] | None = None,
    install: list[str] | None = None,
    protect: list[str] | None = None,
    hidden: list[str] | None = None,
    prompt: str = "",
) -> Task:
    """An in-memory repo task for ``repo`` at ``base``.

    ``workload`` is a Python file (in the repository) defining ``workload()`` and optionally
    ``setup()``, or else a shell command run in the repository's root.
    """
    root, sha = resolve_repo(repo, base)
    spec: dict[str, object] = {"metric": metric}
    path = root / workload
    if workload.endswith(".py") and path.is_file():
        rel = path.resolve().relative_to(root).as_posix()
        if not _defines_workload(path.read_text(errors="replace")):
            spec["command"] = f"python3 {shlex.quote(rel)}"
            if not _tracked(root, sha, rel):
                raise UserError(
                    f"{rel} has no workload() function and is not committed",
                    "define workload() (and optionally setup()) in it, or commit it",
                )
        elif _tracked(root, sha, rel):
            spec["file"] = rel
        else:
            spec["script"] = rel  # copied in by the grader, never from the candidate's tree
    elif workload.endswith(".py"):
        raise UserError(
            f"the workload file {workload} does not exist in {root}",
            "pass a path relative to the repository, or a shell command",
        )
    else:
        spec["command"] = workload
    spec["hidden"] = [_hidden(root, path) for path in hidden or []]
    protected = list(protect or [d for d in TEST_DIRS if _tracked(root, sha, d.rstrip("/"))])
    data: dict[str, object] = {
        "id": re.sub(r"[^A-Za-z0-9_.\-]+", "-", root.name).strip("-.") or "repo",
        "kind": Kind.REPO,
        "title": f"{root.name}: {workload}",
        "prompt": prompt or _default_prompt(root.name, workload, protected),
        "source": {"path": str(root), "commit": sha},
        "setup": {
            "pip": pip if pip is not None else (["pytest"] if tests else []),
            "install": install or [],
            "env": {"PYTHONPATH": "."},
        },
        "workload": spec,
    }
    if tests:
        data["tests"] = {"command": tests_with_junit(tests), "protected": protected}
    task = Task.model_validate(data)
    return task.model_copy(update={"root": root})


def _hidden(root: Path, path: str) -> dict[str, str]:
    """A hidden workload: a file OUTSIDE the repository (the agent never sees it), timed beside
    the visible one, so a candidate fast only on the visible input is not faster."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise UserError(f"--hidden-workload {path} does not exist", "pass a Python file path")
    if file.is_relative_to(root):
        raise UserError(
            f"--hidden-workload {path} is inside the repository, where the agent can read it",
            "keep hidden workloads outside the repository",
        )
    if not _defines_workload(file.read_text(errors="replace")):
        raise UserError(f"--hidden-workload {path} defines no workload() function",
                        "define workload() (and optionally setup()) in it")  # fmt: skip
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "-", file.stem).strip("-.") or "hidden"
    return {"name": name, "script": str(file)}


def _default_prompt(name: str, workload: str, protected: list[str]) -> str:
    where = f" {', '.join(protected)} and the workload are protected." if protected else ""
    return (
        f"Make the code of the repository `{name}` faster on the workload `{workload}`, "
        "keeping every public function's results identical for all valid inputs, not only "
        f"those the tests and the workload use.{where}"
    )
