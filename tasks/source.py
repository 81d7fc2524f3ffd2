"""Turn a task's ``[source]`` into a git repository the sandbox can copy from, and read the
patches a task names: the expert's (a file, or a commit of the source repo) and the tests'.

* :func:`task_source`: the base as a ``Source`` (a repo and a revision checked to exist);
* :func:`with_repo`: the task with its source replaced by a local clone (``--repo PATH``);
* :func:`expert_patch` / :func:`task_test_patch`: the diffs, whatever form the task gives them in;
* :func:`split_diff`: a commit's diff from the base, as (non-test files, test files).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

from sandbox import Source
from tasks.guard import is_protected, is_test_file
from tasks.importers.common import cache_root, folder_digest, git_init
from tasks.model import TASK_FILE, SourceSpec, Task, TaskError


def sources_dir() -> Path:
    return cache_root().parent / "sources"


def task_source(task: Task) -> Source:
    """The task's base as a ``Source``: a git repo (made or cached) and a revision."""
    spec = task.source
    if spec.path:
        path = (task.root / Path(spec.path).expanduser()).resolve()
        if not path.is_dir():
            raise TaskError(
                f"{task.root / TASK_FILE}: field 'source.path': {path} is not a directory",
                "point it at the task's source tree",
            )
        if (path / ".git").exists():
            if spec.commit:
                require_commit(path, spec.commit, f"{task.root / TASK_FILE}: field 'source.commit'")
            return Source(repo=path, rev=spec.commit or "HEAD")
        if spec.commit:
            raise TaskError(
                f"{task.root / TASK_FILE}: field 'source.commit': {path} is not the top of a "
                "git repository, so it has no commits",
                "point source.path at a git clone, or drop commit",
            )
        files = [f for f in path.rglob("*") if f.is_file() and "__pycache__" not in f.parts]
        repo = sources_dir() / f"{task.id}-{folder_digest(files, path)}"
        if not (repo / ".git").exists():
            _atomic_repo(
                repo,
                lambda tmp: shutil.copytree(
                    path, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
                ),
            )
        return Source(repo=repo, rev="HEAD")
    if spec.git:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.git.removesuffix(".git"))[-60:]
        repo = sources_dir() / safe
        if not (repo / ".git").exists():
            fix = "check the URL and your network, or clone it yourself and pass --repo PATH"
            _run(["git", "clone", "--quiet", spec.git, str(repo)], task, "source.git", fix)
        if spec.commit and resolve_commit(repo, spec.commit) is None:
            _git(repo, "fetch", "--quiet", "origin")  # the cached clone may predate the commit
        if spec.commit:
            require_commit(repo, spec.commit, f"{task.root / TASK_FILE}: field 'source.commit'")
        return Source(repo=repo, rev=spec.commit or "HEAD")
    assert spec.pypi is not None
    repo = sources_dir() / re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.pypi)
    if not (repo / ".git").exists():
        _atomic_repo(repo, lambda tmp: _unpack_sdist(spec.pypi, tmp, task))
    return Source(repo=repo, rev="HEAD")


def _atomic_repo(repo: Path, fill) -> None:
    repo.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{repo.name}.", dir=repo.parent))
    try:
        fill(tmp)
        git_init(tmp)
        try:
            tmp.rename(repo)
        except OSError:
            if not (repo / ".git").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _unpack_sdist(requirement: str, dest: Path, task: Task) -> None:
    with tempfile.TemporaryDirectory() as dl:
        _run(
            ["python3", "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "-d", dl, requirement],
            task, "source.pypi", "check the name and version exist on PyPI",
        )  # fmt: skip
        archive = next(Path(dl).iterdir())
        if archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as z:
                z.extractall(dest)
        else:
            with tarfile.open(archive) as t:
                t.extractall(dest, filter="data")
    inner = [p for p in dest.iterdir()]
    if len(inner) == 1 and inner[0].is_dir():  # name-version/ at the top: flatten it
        for child in inner[0].iterdir():
            child.rename(dest / child.name)
        inner[0].rmdir()


def _run(cmd: list[str], task: Task, field: str, fix: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        err = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise TaskError(f"{task.root / TASK_FILE}: field '{field}': {err}", f"{fix}")


# --- commits, the run-time repository, and the patches a task names ---------------------------


def _git(repo: Path, *args: str, text: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=text, env=env)


def repo_root(repo: Path) -> Path:
    """The top level of the git repository at ``repo``; a one-line TaskError otherwise."""
    path = repo.expanduser().resolve()
    if not path.is_dir():
        raise TaskError(f"{repo} is not a directory", "pass the path of a git repository")
    top = _git(path, "rev-parse", "--show-toplevel")
    if top.returncode:
        raise TaskError(
            f"{path} is not a git repository", "pass a git clone (or `git init` and commit)"
        )
    return Path(top.stdout.strip())


def resolve_commit(repo: Path, rev: str) -> str | None:
    """The full sha of ``rev`` in ``repo``, or None when it names no commit there."""
    done = _git(repo, "rev-parse", "--verify", "-q", "--end-of-options", f"{rev}^{{commit}}")
    return done.stdout.strip() if done.returncode == 0 else None


def require_commit(repo: Path, rev: str, where: str) -> str:
    """The full sha of ``rev``; a one-line TaskError naming the commit and the repo if absent."""
    sha = resolve_commit(repo, rev)
    if sha is None:
        raise TaskError(
            f"{where}: commit {rev} is not in the repository {repo}",
            f"fetch it there (`git -C {repo} fetch`), correct the sha, or pass --repo PATH "
            "with a clone that has it",
        )
    return sha


def with_repo(task: Task, repo: str | Path) -> Task:
    """``task`` with its source replaced by the git repository ``repo`` at the task's commit
    (HEAD when the task names none): ``--repo PATH`` of ``tasks validate`` and ``grade``,
    for a task whose source is a git URL or a path on another machine."""
    path = Path(repo).expanduser().resolve()
    if not path.is_dir():
        raise TaskError(f"--repo {repo}: {path} is not a directory", "pass a git clone")
    if not (path / ".git").exists():
        raise TaskError(
            f"--repo {repo}: {path} is not the top of a git repository",
            "pass the top folder of a git clone of the task's source",
        )
    commit = task.source.commit
    if commit:
        require_commit(path, commit, f"--repo {repo} (task {task.id})")
    if task.expert.commit and not task.expert.patch:
        require_commit(path, task.expert.commit, f"--repo {repo} (task {task.id}, expert)")
    spec = SourceSpec(path=str(path), commit=commit)
    return task.model_copy(update={"source": spec})


def is_test_path(path: str, protected: list[str]) -> bool:
    """A test file: under the task's protected paths, or named like one (``test_*.py``,
    ``*_test.py``, ``conftest.py``, anything under a ``tests/`` or ``test/`` folder)."""
    return is_protected(path, protected) or is_test_file(path)


def split_diff(repo: Path, base: str, head: str, protected: list[str]) -> tuple[str, str]:
    """The diff base..head as (the non-test files' diff, the test files' diff), each a patch
    ``git apply`` takes (renames split into a delete and an add, binary files included)."""
    listed = _git(repo, "diff", "--no-renames", "--name-only", "-z", base, head)
    if listed.returncode:
        raise TaskError(f"git diff {base}..{head} failed in {repo}: {listed.stderr.strip()}")
    paths = [p for p in listed.stdout.split("\0") if p]
    tests = [p for p in paths if is_test_path(p, protected)]
    code = [p for p in paths if p not in set(tests)]
    return _diff(repo, base, head, code), _diff(repo, base, head, tests)


def _diff(repo: Path, base: str, head: str, paths: list[str]) -> str:
    if not paths:
        return ""
    done = _git(
        repo, "-c", "core.quotepath=off", "diff", "--no-renames", "--no-color", "--no-ext-diff",
        "--binary", "--full-index", "--src-prefix=a/", "--dst-prefix=b/", base, head, "--",
        *(f":(literal){p}" for p in paths),
    )  # fmt: skip
    if done.returncode:
        raise TaskError(f"git diff {base}..{head} failed in {repo}: {done.stderr.strip()}")
    return done.stdout


def expert_patch(task: Task) -> str:
    """The expert's diff: ``[expert] patch`` (a file), else the diff from the base to
    ``[expert] commit`` of the non-test files; empty when the task has no expert. Every
    reader of the expert goes through here (validate, grade --expert, run's SR)."""
    if task.expert.patch:
        return task.file(task.expert.patch).read_text()
    if not task.expert.commit:
        return ""
    src = task_source(task)
    where = f"{task.root / TASK_FILE}: field 'expert.commit'"
    base = require_commit(src.repo, src.rev, f"{task.root / TASK_FILE}: field 'source'")
    head = require_commit(src.repo, task.expert.commit, where)
    code, _tests = split_diff(src.repo, base, head, task.protected_paths())
    if not code:
        raise TaskError(
            f"{where}: commit {task.expert.commit} changes no file outside the tests",
            "name the commit that changes the code (its test changes go in [tests] patch)",
        )
    return code


def task_test_patch(task: Task) -> str:
    """The task's ``[tests] patch`` (applied to the base and every candidate), or empty."""
    if task.tests and task.tests.patch:
        return task.file(task.tests.patch).read_text()
    return ""
