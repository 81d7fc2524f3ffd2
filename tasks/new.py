"""`optimizer tasks new REPO --base REV --expert REV --workload FILE`: a task from a commit.

Any Python project at a performance commit becomes a task folder:

* ``task.toml``: the source is REPO (a path relative to the task folder, or ``git = URL``)
  at the base commit; the expert is the diff base..expert of the non-test files
  (``expert.patch``); the expert's test changes are the task's test patch (``test.patch``,
  SWE-bench's ``test_patch``), applied to the base and to every candidate;
* the tests: ``--tests CMD`` (pytest and ``python -m unittest`` are read natively, any
  other runner writes JUnit XML to ``{junit}``), or pytest when the base has pytest tests;
  protected are the test folders of what pytest collects at the base (see
  :func:`collect_test_files`);
* the workload: FILE (``setup()`` and ``workload()``) copied in as ``workload.script``, and a
  first equivalence check, ``workload-result``, comparing ``repr(workload())`` with the base's.

The folder is written atomically (a temp folder, then a rename). The logic is here; the
command line is in ``optimizer/tasks_cmd.py``.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from sandbox import Limits, Source, open_sandbox
from tasks.importers.common import dump_toml, ensure_newline
from tasks.model import TASK_FILE, Kind, Task, TaskError
from tasks.source import is_test_path, repo_root, resolve_commit, split_diff

#: The default test command where the base has pytest tests.
PYTEST_COMMAND = "python3 -m pytest -q -p no:cacheprovider"
#: Where the grader copies ``workload.script`` in the work dir (profilers.common.COPIED_WORKLOAD).
WORKLOAD_IN_WORKDIR = ".optimizer/workload.py"
#: The equivalence check made from the workload's return value.
RESULT_CHECK = (
    "PYTHONHASHSEED=0 python3 -c 'import runpy; "
    f'm = runpy.run_path("{WORKLOAD_IN_WORKDIR}"); '
    'm.get("setup", lambda: None)(); print(repr(m["workload"]()))\''
)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
COLLECT_TIMEOUT_S = 120


def new_task(
    repo: str | Path,
    *,
    base: str,
    expert: str,
    workload: str | Path,
    tests: str | None = None,
    out: str | Path | None = None,
    task_id: str | None = None,
    url: str | None = None,
    pip: list[str] | None = None,
    package: str = "none",
    python: str | None = None,
    env: dict[str, str] | None = None,
) -> Path:
    """Write the task folder for ``repo`` at ``base`` with the expert commit ``expert``;
    return its path. One-line TaskErrors for what the user must fix; nothing is written then."""
    root = repo_root(Path(repo))
    base_sha = _commit(root, base, "--base")
    expert_sha = _commit(root, expert, "--expert")
    if base_sha == expert_sha:
        raise TaskError(f"--base and --expert are the same commit {base_sha[:12]}",
                        "pass the commit before the speedup as --base")  # fmt: skip
    script = _workload_file(Path(workload))
    # The project's name: the URL's last part, else the clone's folder (often just "repo").
    name = url.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1] if url else root.name
    ident = task_id or f"{name}-{expert_sha[:8]}"
    if not _ID.match(ident):
        raise TaskError(f"--id {ident!r} is not a task id",
                        "use letters, digits, _ . - (starting with a letter or digit)")  # fmt: skip
    dest = Path(out).expanduser() if out is not None else Path.cwd() / ident
    dest = dest.resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise TaskError(f"--out {dest} exists and is not empty", "pass a new folder with --out")

    collected = collect_test_files(Source(repo=root, rev=base_sha), _tracked(root, base_sha))
    protected = sorted({_protect_entry(p) for p in collected})
    code, test_diff = split_diff(root, base_sha, expert_sha, protected)
    if not code:
        raise TaskError(
            f"--expert {expert}: commit {expert_sha[:12]} changes no file outside the tests",
            "pass the commit that makes the code faster",
        )
    added_tests = _changed_tests(root, base_sha, expert_sha, protected)
    protected = sorted({*protected, *(_protect_entry(p) for p in added_tests)})

    command, runner = _test_command(tests) if tests else (PYTEST_COMMAND, "pytest")
    has_tests = bool(tests or collected)
    if pip is None:
        pip = ["pytest"] if has_tests and runner == "pytest" else []
    files = {"expert.patch": ensure_newline(code), script.name: script.read_text()}
    data: dict[str, object] = {
        "id": ident,
        "kind": Kind.REPO.value,
        "title": f"{name}: the speedup of {expert_sha[:12]}",
        "prompt": _prompt(name, script.name, protected),
        "source": {"git": url} if url else {"path": os.path.relpath(root, dest)},
        "setup": {
            "pip": pip,
            "env": {"PYTHONPATH": ".", **(env or {})},
            **({"package": package} if package != "none" else {}),
            **({"python": python} if python else {}),
        },
        "workload": {"script": script.name},
    }
    data["source"]["commit"] = base_sha  # type: ignore[index]
    if has_tests:
        spec: dict[str, object] = {"command": command, "runner": runner, "protected": protected}
        if test_diff:
            files["test.patch"] = ensure_newline(test_diff)
            spec["patch"] = "test.patch"
        data["tests"] = spec
    data["checks"] = [{"name": "workload-result", "command": RESULT_CHECK, "compare": "exact"}]
    data["expert"] = {"patch": "expert.patch", "commit": expert_sha}
    _write_atomic(dest, data, files)
    return dest


def collect_test_files(source: Source, tracked: list[str]) -> list[str]:
    """The test files of ``source``: what ``pytest --collect-only`` collects there, or, where
    pytest cannot collect (not installed, an import error, no tests), the tracked files
    named like tests (``test_*.py``, ``*_test.py``, under ``tests/``). Collecting imports the
    project's test modules and conftest files, so it runs in a confined local sandbox (no
    network, the host's pytest), never on the host itself."""
    command = ["python3", "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    env = {"PYTHONPATH": "{workdir}", "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_ADDOPTS": ""}
    with open_sandbox(source, "local", limits=Limits(wall_s=COLLECT_TIMEOUT_S)) as sb:
        done = sb.run(command, env=env)
    files = set(tracked)
    found: dict[str, None] = {}
    if done.ok:
        for line in done.stdout.splitlines():
            path = line.strip().split("::", 1)[0]
            if "::" in line and (path in files or not files):
                found[path] = None
    if found:
        return list(found)
    return [p for p in tracked if p.endswith(".py") and _named_like_test(p)]


def _named_like_test(path: str) -> bool:
    *folders, name = path.split("/")
    return (
        name.startswith("test_") or name.endswith("_test.py") or any(_test_dir(d) for d in folders)
    ) and name != "conftest.py"


def _test_dir(name: str) -> bool:
    return name in ("test", "tests", "testing") or name.startswith("test_")


def _protect_entry(path: str) -> str:
    """The top test folder holding ``path`` (``tests/`` for ``tests/unit/test_a.py``,
    ``pkg/tests/`` for ``pkg/tests/test_a.py``), else the file itself (``pkg/test_core.py``
    protects that file, not the package)."""
    parts = path.split("/")
    for i, part in enumerate(parts[:-1]):
        if _test_dir(part):
            return "/".join(parts[: i + 1]) + "/"
    return path


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def _commit(root: Path, rev: str, option: str) -> str:
    sha = resolve_commit(root, rev)
    if sha is None:
        raise TaskError(
            f"{option} {rev}: no such commit in {root}",
            f"name a commit, branch or tag of that repository (`git -C {root} log --oneline`)",
        )
    return sha


def _tracked(root: Path, sha: str) -> list[str]:
    done = _git(root, "ls-tree", "-r", "-z", "--name-only", sha)
    return [p for p in done.stdout.split("\0") if p]


def _changed_tests(root: Path, base: str, head: str, protected: list[str]) -> list[str]:
    """The test files (as :func:`split_diff` sorts them) that base..head changes."""
    done = _git(root, "diff", "--no-renames", "--name-only", "-z", base, head)
    return [p for p in done.stdout.split("\0") if p and is_test_path(p, protected)]


def _workload_file(path: Path) -> Path:
    file = path.expanduser()
    if not file.is_file():
        raise TaskError(
            f"--workload {path}: no such file",
            "pass a Python file defining workload() (and optionally setup())",
        )
    text = file.read_text(errors="replace")
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise TaskError(f"--workload {path}: not valid Python (line {exc.lineno})",
                        "correct the syntax") from None  # fmt: skip
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    if "workload" not in names:
        raise TaskError(f"--workload {path} defines no workload() function",
                        "define workload() (and optionally setup()) at the top level")  # fmt: skip
    if file.name in (TASK_FILE, "expert.patch", "test.patch"):
        raise TaskError(f"--workload {path}: the name clashes with the task's files",
                        "rename it, e.g. workload.py")  # fmt: skip
    return file


def _test_command(command: str) -> tuple[str, str]:
    """``--tests CMD`` and its runner: pytest and ``python -m unittest`` are read natively,
    any other command must write JUnit XML to ``{junit}``."""
    words = shlex.split(command)
    module = words[2] if len(words) >= 3 and words[1] == "-m" else ""
    if module == "unittest":
        return command, "unittest"
    if module == "pytest" or (words and Path(words[0]).name in ("pytest", "py.test")):
        extra = "" if "cacheprovider" in command else " -p no:cacheprovider"
        return command + extra, "pytest"
    if "{junit}" in command:
        return command, "junit"
    raise TaskError(
        f"--tests {command!r} is neither pytest nor `python -m unittest`, and writes no JUnit "
        "XML the grader can read",
        "use one of those, or put {junit} where your runner writes JUnit XML",
    )


def _prompt(name: str, workload: str, protected: list[str]) -> str:
    where = ", ".join([*protected, "the workload"])
    return (
        f"Make the code of `{name}` faster on the workload in {workload} (setup(), then the "
        "timed workload()), keeping every public function's results identical for all valid "
        f"inputs, not only those the tests and the workload use. Protected: {where}."
    )


def _write_atomic(dest: Path, data: dict[str, object], files: dict[str, str]) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for rel, text in files.items():
            (tmp / rel).write_text(text, encoding="utf-8")
        (tmp / TASK_FILE).write_text(dump_toml(data), encoding="utf-8")
        _check_loads(tmp, dest)
        if dest.is_dir():
            dest.rmdir()  # empty (checked above): the rename replaces it
        os.rename(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _check_loads(tmp: Path, dest: Path) -> Task:
    """The written task.toml loads (a relative source path is judged from ``dest``)."""
    from tasks.model import load_task

    try:
        return load_task(tmp)
    except TaskError as exc:  # a bug here, not the user's: say so in one line anyway
        raise TaskError(f"the task written for {dest} does not load: {exc.problem}",
                        "report this as a bug") from None  # fmt: skip
