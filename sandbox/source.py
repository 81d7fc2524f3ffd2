"""Make a private copy of a source tree: a git revision, plus an optional patch.

The copy comes from ``git archive`` of a commit, so the user's working tree, index and
uncommitted changes are never read or touched.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

import git

from sandbox.errors import PatchError, SandboxError
from sandbox.models import Source


def resolve(source: Source) -> tuple[Path, str]:
    """Return the repository root and the full commit sha of ``source.rev``."""
    path = source.repo.expanduser().resolve()
    if not path.exists():
        raise SandboxError(f"no such directory: {path}", "pass the path of a git checkout")
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except git.InvalidGitRepositoryError:
        raise SandboxError(
            f"not a git repository: {path}",
            "pass a git checkout, or run `git init` and commit the code there first",
        ) from None
    try:
        sha = repo.commit(source.rev).hexsha
    except (git.BadName, ValueError, git.GitCommandError):
        raise SandboxError(
            f"unknown revision {source.rev!r} in {path}",
            f"name a commit, branch or tag that exists (`git -C {path} log --oneline` lists them)",
        ) from None
    return Path(repo.working_tree_dir or path), sha


def file_at(repo: Path, rev: str, path: str) -> bytes | None:
    """The bytes of ``path`` at ``rev`` in ``repo``, or None where that revision lacks it."""
    done = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:{path}"], capture_output=True)
    return done.stdout if done.returncode == 0 else None


def materialize(source: Source, dest: Path) -> str:
    """Write the tree of ``source`` into the empty directory ``dest``; return the commit sha."""
    root, sha = resolve(source)
    proc = subprocess.Popen(
        ["git", "-C", str(root), "archive", "--format=tar", sha],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        tar.extractall(dest, filter="data")
    _, stderr = proc.communicate()
    if proc.returncode:
        raise SandboxError(
            f"git archive failed for {sha[:12]} in {root}: {stderr.decode().strip()}",
            "check that the repository is readable (`git fsck`)",
        )
    if source.patch:
        apply_patch(dest, source.patch, f"{source.rev} ({sha[:12]})")
    return sha


def apply_patch(dest: Path, patch: str, where: str) -> None:
    """Apply a unified diff to the tree in ``dest``, or raise a one-line SandboxError."""
    with tempfile.NamedTemporaryFile("w", suffix=".patch", delete=False) as f:
        f.write(patch if patch.endswith("\n") else patch + "\n")
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(dest.parent)}
    try:
        done = subprocess.run(
            ["git", "apply", "--whitespace=nowarn", f.name],
            cwd=dest,
            env=env,
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(f.name)
    if done.returncode:
        first = next((ln for ln in done.stderr.splitlines() if ln.strip()), "git apply failed")
        raise PatchError(
            f"patch does not apply to {where}: {first.removeprefix('error: ')}",
            "regenerate the patch against that revision (`git diff REV`)",
        )
