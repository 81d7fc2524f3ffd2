"""Turn a task's ``[source]`` into a git repository the sandbox can copy from."""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

from sandbox import Source
from tasks.importers.common import cache_root, folder_digest, git_init
from tasks.model import TASK_FILE, Task, TaskError


def sources_dir() -> Path:
    return cache_root().parent / "sources"


def task_source(task: Task) -> Source:
    """The task's base as a ``Source``: a git repo (made or cached) and a revision."""
    spec = task.source
    if spec.path:
        path = (task.root / spec.path).resolve()
        if not path.is_dir():
            raise TaskError(
                f"{task.root / TASK_FILE}: field 'source.path': {path} is not a directory",
                "point it at the task's source tree",
            )
        if (path / ".git").exists():
            return Source(repo=path, rev=spec.commit or "HEAD")
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
            _run(["git", "clone", "--quiet", spec.git, str(repo)], task, "source.git",
                 "check the URL and your network, or clone it yourself and use `path`")  # fmt: skip
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
