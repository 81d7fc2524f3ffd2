"""Commit a winning patch onto a new branch without touching the user's checkout.

The user may be mid-edit while the optimizer runs: a dirty working tree, a staged change, a
stash, untracked files. The commit is therefore made in a throw-away ``git worktree`` that is
detached at the base commit, and the only trace left in the repository is the new commit and
the new branch pointing at it. Hooks never run (``core.hooksPath=/dev/null``, ``--no-verify``):
they could write files, reject the commit, or run arbitrary code on the optimizer's behalf.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import git

from sandbox.errors import PatchError, UserError

FALLBACK_NAME = "optimizer"
FALLBACK_EMAIL = "optimizer@localhost"

# Per-command settings: no hooks, no signing prompt, no background gc/maintenance in the repo.
_SAFE_CONFIG = (
    "core.hooksPath=/dev/null",
    "commit.gpgSign=false",
    "gc.auto=0",
    "maintenance.auto=false",
)
_TRAILER_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


def is_git_repo(path: Path) -> bool:
    """Whether ``path`` is inside a git work tree (a sub-folder of a checkout counts)."""
    try:
        git.Repo(Path(path).expanduser(), search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return False
    return True


def head_sha(repo: Path, rev: str = "HEAD") -> str:
    """The full sha of the commit ``rev`` names in ``repo`` (tags are peeled to commits)."""
    repository = _open(repo)
    try:
        return repository.git.rev_parse(
            "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"
        )
    except git.GitCommandError:
        raise UserError(
            f"{rev} is not a commit in {repo}",
            f"name a commit, branch or tag that exists (`git -C {repo} log --oneline` lists them)",
        ) from None


def dirty_paths(repo: Path) -> list[str]:
    """Paths with uncommitted changes: staged, modified, deleted and untracked (not ignored).

    Used to warn that these changes are not part of the base the optimizer works from. Runs
    with ``GIT_OPTIONAL_LOCKS=0`` so even this read does not refresh the user's index file.
    """
    repository = _open(repo)
    out = repository.git.status(
        "--porcelain=v1", "-z", "--untracked-files=all", env={"GIT_OPTIONAL_LOCKS": "0"}
    )
    paths: set[str] = set()
    entries = iter(out.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        paths.add(entry[3:])
        if entry[0] in "RC":
            paths.add(next(entries, ""))  # -z puts a rename's old path in the next field
    paths.discard("")
    return sorted(paths)


def commit_message(title: str, fields: Mapping[str, str], body: str = "") -> str:
    """A commit message: subject, blank line, body, blank line, then ``Key: value`` trailers.

    The trailers follow git's trailer format (``git interpret-trailers --parse`` reads them),
    so tools can pull e.g. ``Optimizer-Speedup: 3.41x [3.30, 3.52] (instructions)`` back out.
    """
    subject = " ".join(title.split())
    if not subject:
        raise ValueError("a commit message needs a non-empty title")
    parts = [subject]
    if body.strip():
        parts.append(body.strip("\n").rstrip())
    trailers = []
    for key, value in fields.items():
        if not _TRAILER_KEY.match(key):
            raise ValueError(f"trailer key {key!r} must be letters, digits and dashes")
        trailers.append(f"{key}: {' '.join(str(value).split())}")
    if trailers:
        parts.append("\n".join(trailers))
    return "\n\n".join(parts) + "\n"


def commit_patch(repo: Path, base_rev: str, patch: str, *, branch: str, message: str) -> str:
    """Commit ``patch`` on top of ``base_rev`` as the new ``branch``; return the commit's sha.

    Nothing the user has is touched: HEAD, the checked-out branch, the index, the working
    tree, untracked files and the stash stay as they were. The worktree used for the commit
    is removed again whether or not the commit succeeds.
    """
    repository = _open(repo)
    root = Path(repository.working_tree_dir or repo)
    base = head_sha(root, base_rev)
    _check_branch(repository, branch)
    if not patch.strip():
        raise UserError("the patch to commit is empty", "commit a candidate that changes code")
    scratch = Path(tempfile.mkdtemp(prefix="optimizer-commit-"))
    tree = scratch / "tree"
    try:
        _add_worktree(repository, tree, base)
        _apply(tree, scratch, patch, f"{base_rev} ({base[:12]})")
        sha = _commit(tree, scratch, message, _identity(repository))
        _create_branch(repository, branch, sha)
    finally:
        _remove_worktree(repository, tree)
        shutil.rmtree(scratch, ignore_errors=True)
    return sha


def _open(repo: Path) -> git.Repo:
    """Open the repository at (or above) ``repo``, or raise a one-line UserError."""
    path = Path(repo).expanduser()
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise UserError(
            f"not a git repository: {path}",
            "pass a git checkout, or run `git init` and commit the code there first",
        ) from None


def _git(repository: git.Repo | Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run git with hooks, signing and auto-gc off, in a repository or a worktree folder."""
    if isinstance(repository, Path):
        cwd = str(repository)
    else:
        cwd = repository.working_tree_dir or repository.git_dir
    command = ["git"]
    for setting in _SAFE_CONFIG:
        command += ["-c", setting]
    return git.Git(cwd).execute([*command, *args], env=dict(env or {}))


def _check_branch(repository: git.Repo, branch: str) -> None:
    """Refuse a branch name git would reject, or one that already exists."""
    try:
        _git(repository, "check-ref-format", "--branch", branch)
    except git.GitCommandError:
        raise UserError(f"{branch!r} is not a valid branch name", "pass another --branch") from None
    if f"refs/heads/{branch}" in {ref.path for ref in repository.branches}:
        raise UserError(f"branch {branch} already exists", "pass another --branch or delete it")


def _add_worktree(repository: git.Repo, tree: Path, base: str) -> None:
    """Check ``base`` out, detached, in a new worktree at ``tree``."""
    try:
        _git(repository, "worktree", "add", "--detach", "--quiet", str(tree), base)
    except git.GitCommandError as error:
        raise UserError(
            f"could not make a temporary worktree: {_first_line(error)}",
            "check that the repository and the temp folder are writable",
        ) from None


def _apply(tree: Path, scratch: Path, patch: str, where: str) -> None:
    """Apply ``patch`` to the worktree and its index, or raise a one-line PatchError."""
    patch_file = scratch / "winner.patch"
    patch_file.write_text(patch if patch.endswith("\n") else patch + "\n")
    try:
        _git(tree, "apply", "--index", "--whitespace=nowarn", str(patch_file))
    except git.GitCommandError as error:
        raise PatchError(
            f"patch does not apply to {where}: {_first_line(error)}",
            "regenerate the patch against that revision (`git diff REV`)",
        ) from None


def _identity(repository: git.Repo) -> tuple[str, str]:
    """The repository's configured user (name, email), or the optimizer's own identity."""
    name = _config(repository, "user.name") or FALLBACK_NAME
    email = _config(repository, "user.email") or FALLBACK_EMAIL
    return name, email


def _config(repository: git.Repo, key: str) -> str:
    """A setting as git itself resolves it (repo, global, system, ``GIT_CONFIG_*``), or ""."""
    try:
        return _git(repository, "config", "--get", key).strip()
    except git.GitCommandError:
        return ""


def _commit(tree: Path, scratch: Path, message: str, identity: tuple[str, str]) -> str:
    """Commit the worktree's index with ``message`` as ``identity``; return the new sha."""
    name, email = identity
    env = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
    message_file = scratch / "message.txt"
    message_file.write_text(message if message.endswith("\n") else message + "\n")
    try:
        _git(
            tree,
            "commit",
            "--quiet",
            "--no-verify",
            "--cleanup=whitespace",
            "-F",
            str(message_file),
            env=env,
        )
    except git.GitCommandError as error:
        raise UserError(
            f"git commit failed: {_first_line(error)}",
            "check that the patch changes something and the repository is writable",
        ) from None
    return _git(tree, "rev-parse", "HEAD")


def _create_branch(repository: git.Repo, branch: str, sha: str) -> None:
    """Point the new ``branch`` at ``sha``, refusing to move a branch that exists.

    ``update-ref`` with an expected old value of "" is atomic, so a branch made by someone else
    between the check and now is refused rather than overwritten.
    """
    ref = f"refs/heads/{branch}"
    try:
        _git(repository, "update-ref", "-m", "optimizer: commit winner", ref, sha, "")
    except git.GitCommandError as error:
        if any(head.path == ref for head in repository.branches):
            raise UserError(
                f"branch {branch} already exists", "pass another --branch or delete it"
            ) from None
        raise UserError(
            f"could not create branch {branch}: {_first_line(error)}",
            "pass another --branch (a branch cannot sit inside or above another's name)",
        ) from None


def _remove_worktree(repository: git.Repo, tree: Path) -> None:
    """Remove the temporary worktree and prune its bookkeeping, ignoring what is already gone."""
    if tree.exists():
        try:
            _git(repository, "worktree", "remove", "--force", "--force", str(tree))
        except git.GitCommandError:
            shutil.rmtree(tree, ignore_errors=True)
    with contextlib.suppress(git.GitCommandError):
        _git(repository, "worktree", "prune")


def _first_line(error: git.GitCommandError) -> str:
    """The first non-empty line of a failed git command's stderr."""
    stderr = str(error.stderr or "").strip()
    for line in stderr.splitlines():
        line = line.strip().removeprefix("stderr: ").strip("'").strip()
        line = line.removeprefix("error: ").removeprefix("fatal: ").strip()
        if line:
            return line
    return f"exit status {error.status}"
