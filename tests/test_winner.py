"""The winner's way into git: split a patch into hunks, minimize it, commit it on a new branch.

Everything runs against real git repositories in ``tmp_path`` and real ``git apply``, because
the point of these modules is what git accepts and what git leaves behind.
"""

from __future__ import annotations

import itertools
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from optimizer.minimize import minimize
from optimizer.patches import Hunk, diff_stats, join_hunks, split_hunks
from optimizer.vcs import (
    commit_message,
    commit_patch,
    dirty_paths,
    head_sha,
    is_git_repo,
)
from sandbox.errors import PatchError, UserError
from tests.conftest import git

MakeRepo = Callable[..., Path]


@pytest.fixture(autouse=True)
def no_user_git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the machine's global and system git config, so identities come from the test."""
    empty = tmp_path / "empty.gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def lines(n: int, prefix: str = "line") -> str:
    """``n`` numbered lines of text."""
    return "".join(f"{prefix} {i}\n" for i in range(1, n + 1))


def diff_of(
    repo: Path, edits: dict[str, str | bytes | None], *, rename: tuple[str, str] | None = None
) -> str:
    """The ``git diff`` (binary, renames found) that turns ``repo``'s HEAD into HEAD+edits.

    The edits are made in a clone, so the repository under test is never touched.
    """
    clone = repo.parent / f"clone-{len(list(repo.parent.iterdir()))}"
    git(repo.parent, "clone", "-q", str(repo), str(clone))
    if rename:
        git(clone, "mv", *rename)
    for rel, text in edits.items():
        path = clone / rel
        if text is None:
            path.unlink()
        elif isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    git(clone, "add", "-A")
    return git_raw(clone, "diff", "--cached", "--binary", "-M", "HEAD")


def git_raw(repo: Path, *args: str, input: str | None = None) -> str:
    """Run git and return stdout unstripped (diffs end in a newline that matters)."""
    done = subprocess.run(
        ["git", "-C", str(repo), *args], input=input, capture_output=True, text=True, check=True
    )
    return done.stdout


def apply_check(repo: Path, patch: str) -> subprocess.CompletedProcess[str]:
    """``git apply --check -v`` of ``patch`` in ``repo`` (exit status and messages)."""
    return subprocess.run(
        ["git", "-C", str(repo), "apply", "--check", "-v", "-"],
        input=patch,
        capture_output=True,
        text=True,
    )


# --- patches ------------------------------------------------------------------------------

A_PY = lines(60, "a")
B_PY = lines(30, "b")


@pytest.fixture
def rich_repo(make_repo: MakeRepo) -> Path:
    """A repo with files to edit in several places, one to delete and one to rename."""
    return make_repo(
        {
            "src/a.py": A_PY,
            "src/b.py": B_PY,
            "gone.txt": "bye\n",
            "old_name.txt": lines(20, "keep"),
        }
    )


def rich_patch(repo: Path) -> str:
    """A multi-file multi-hunk diff with a new, a deleted, a renamed and a binary file.

    The edits to ``a.py`` include lines that look like file headers (``-- x`` removed,
    ``++ y`` added), which a line-pattern parser would mistake for a new file.
    """
    a = A_PY.splitlines(keepends=True)
    a[1:2] = ["-- sql comment\n", "added at top\n", "and another\n"]
    a[29] = "++ looks like a header\n"
    a[55:57] = []
    b = B_PY.replace("b 15\n", "b 15 changed\n")
    return diff_of(
        repo,
        {
            "src/a.py": "".join(a),
            "src/b.py": b,
            "src/new.py": "print('new')\n",
            "gone.txt": None,
            "new_name.txt": lines(20, "keep") + "one more\n",
            "data.bin": bytes(range(256)) * 4,
        },
        rename=("old_name.txt", "new_name.txt"),
    )


def test_split_keeps_each_hunk_standalone(rich_repo: Path) -> None:
    patch = rich_patch(rich_repo)
    hunks = split_hunks(patch)

    paths = [h.path for h in hunks]
    assert paths.count("src/a.py") == 3
    assert {"src/b.py", "src/new.py", "gone.txt", "new_name.txt", "data.bin"} <= set(paths)
    assert len(hunks) == 8
    for hunk in hunks:
        assert hunk.text.startswith("diff --git ")
        assert apply_check(rich_repo, hunk.text).returncode == 0, hunk.text
    assert split_hunks("") == []


def test_join_of_all_hunks_is_the_patch(rich_repo: Path) -> None:
    patch = rich_patch(rich_repo)
    assert join_hunks(split_hunks(patch)) == patch
    assert apply_check(rich_repo, join_hunks(split_hunks(patch))).returncode == 0


def test_every_subset_of_hunks_applies_exactly(rich_repo: Path) -> None:
    """Any subset applies, with no offset: the ``+start`` lines are recomputed, not guessed."""
    hunks = split_hunks(rich_patch(rich_repo))
    for size in range(1, len(hunks) + 1):
        for subset in itertools.combinations(hunks, size):
            joined = join_hunks(reversed(subset))  # any order in, original order out
            done = apply_check(rich_repo, joined)
            assert done.returncode == 0, (joined, done.stderr)
            assert "offset" not in done.stderr, (joined, done.stderr)
            assert joined.count("diff --git a/src/a.py") <= 1  # one header per file


def test_dropping_a_hunk_shifts_later_starts(rich_repo: Path) -> None:
    a_hunks = [h for h in split_hunks(rich_patch(rich_repo)) if h.path == "src/a.py"]
    first, second, third = a_hunks
    assert (first.added, first.removed) == (3, 1)
    assert second.body.startswith("@@ -25,7 +27,7 @@")
    assert third.body.startswith("@@ -51,8 +53,6 @@")
    joined = join_hunks([second, third])
    at = [line for line in joined.splitlines() if line.startswith("@@")]
    assert at == ["@@ -25,7 +25,7 @@ a 24", "@@ -51,8 +51,6 @@ a 50"]
    at = [line for line in join_hunks([first, third]).splitlines() if line.startswith("@@")]
    assert at[1].startswith("@@ -51,8 +53,6 @@")


def test_diff_stats_match_git_numstat(rich_repo: Path) -> None:
    patch = rich_patch(rich_repo)
    numstat = git_raw(rich_repo, "apply", "--numstat", "-", input=patch).splitlines()
    added = sum(int(row.split("\t")[0]) for row in numstat if not row.startswith("-"))
    removed = sum(int(row.split("\t")[1]) for row in numstat if not row.startswith("-"))
    assert diff_stats(patch) == (len(numstat), added, removed)
    assert diff_stats("") == (0, 0, 0)
    hunks = split_hunks(patch)
    assert sum(h.added for h in hunks) == added
    assert sum(h.removed for h in hunks) == removed


def test_plain_unified_diff_splits_too() -> None:
    patch = (
        "--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n-old\n+new\n same\n"
        "@@ -10 +10 @@\n-ten\n+TEN\n--- a/y.py\n+++ b/y.py\n@@ -1 +1 @@\n-y\n+Y\n"
    )
    hunks = split_hunks(patch)
    assert [(h.path, h.added, h.removed) for h in hunks] == [
        ("x.py", 1, 1),
        ("x.py", 1, 1),
        ("y.py", 1, 1),
    ]
    assert join_hunks(hunks) == patch
    assert diff_stats(patch) == (2, 3, 3)


# --- minimize -----------------------------------------------------------------------------


def three_hunk_patch(make_repo: MakeRepo) -> tuple[Path, str]:
    """A repo and a patch of 3 hunks in 2 files; the ``USEFUL`` one is in the middle."""
    repo = make_repo({"a.py": lines(40, "a"), "b.py": lines(10, "b")})
    a = lines(40, "a").replace("a 2\n", "a 2 cosmetic\n").replace("a 35\n", "USEFUL = 1\n")
    b = lines(10, "b").replace("b 5\n", "b 5 # noise\nb 5b\n")
    return repo, diff_of(repo, {"a.py": a, "b.py": b})


def judge(needed: str, calls: list[str]) -> Callable[[str], bool]:
    """A judge that accepts a patch iff it still contains ``needed``; it records its calls."""

    def keeps(patch: str) -> bool:
        assert patch.strip(), "minimize called the judge with an empty patch"
        calls.append(patch)
        return needed in patch

    return keeps


def test_minimize_keeps_exactly_the_useful_hunk(make_repo: MakeRepo) -> None:
    repo, patch = three_hunk_patch(make_repo)
    hunks = split_hunks(patch)
    useful = next(h for h in hunks if "USEFUL" in h.body)
    calls: list[str] = []
    messages: list[str] = []

    result = minimize(patch, judge("+USEFUL", calls), log=messages.append)

    assert result.patch == join_hunks([useful])
    assert (result.hunks_before, result.hunks_after) == (3, 1)
    assert result.tried == len(calls) == len(messages) == 3
    assert len(result.dropped) == 2
    assert all("USEFUL" not in d for d in result.dropped)
    assert apply_check(repo, result.patch).returncode == 0
    first_try = split_hunks(calls[0])
    assert len(first_try) == 2  # smallest hunk (a.py's one-line edit) went first
    assert "cosmetic" not in calls[0]


def test_minimize_with_a_judge_that_always_refuses_returns_the_patch(
    make_repo: MakeRepo,
) -> None:
    _, patch = three_hunk_patch(make_repo)
    calls: list[str] = []
    result = minimize(patch, judge("never there", calls))
    assert result.patch is patch
    assert (result.hunks_before, result.hunks_after, result.tried) == (3, 3, 3)
    assert result.dropped == []
    assert len(set(calls)) == len(calls)  # no candidate judged twice


def test_minimize_respects_max_tries(make_repo: MakeRepo) -> None:
    _, patch = three_hunk_patch(make_repo)
    calls: list[str] = []
    result = minimize(patch, judge("never there", calls), max_tries=1)
    assert result.tried == len(calls) == 1
    calls.clear()
    result = minimize(patch, judge("+USEFUL", calls), max_tries=2)
    assert result.tried == len(calls) == 2  # dropped the cosmetic hunk, USEFUL was needed
    assert result.hunks_after == 2
    assert minimize(patch, judge("+USEFUL", []), max_tries=3).hunks_after == 1
    assert minimize(patch, judge("+USEFUL", []), max_tries=0).tried == 0


def test_minimize_never_empties_the_patch(make_repo: MakeRepo) -> None:
    _, patch = three_hunk_patch(make_repo)
    calls: list[str] = []

    def always(reduced: str) -> bool:
        assert split_hunks(reduced), "empty patch judged"
        calls.append(reduced)
        return True

    result = minimize(patch, always)
    assert result.hunks_after == 1
    assert len(split_hunks(result.patch)) == 1
    assert result.tried == len(calls) == 2


def test_minimize_of_one_hunk_tries_nothing(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": lines(5, "a")})
    patch = diff_of(repo, {"a.py": lines(5, "a").replace("a 3", "A 3")})
    calls: list[str] = []
    result = minimize(patch, judge("A 3", calls))
    assert (result.patch, result.tried, result.hunks_before, result.hunks_after) == (
        patch,
        0,
        1,
        1,
    )
    assert calls == []


def test_hunk_describe_names_file_and_lines(make_repo: MakeRepo) -> None:
    _, patch = three_hunk_patch(make_repo)
    described = [h.describe() for h in split_hunks(patch)]
    assert described[0].startswith("a.py @@ -1,5 +1,5 @@")
    assert described[-1].startswith("b.py @@") and described[-1].endswith("(+2 -1)")
    assert isinstance(split_hunks(patch)[0], Hunk)


# --- vcs ------------------------------------------------------------------------------------


@pytest.fixture
def busy_repo(make_repo: MakeRepo) -> Path:
    """A repo in the middle of work: a stash, a staged file, a dirty file, an untracked one."""
    repo = make_repo(
        {"app.py": lines(20, "app"), "notes.txt": "notes\n"},
        {"app.py": lines(20, "app") + "tail\n", "lib.py": lines(10, "lib")},
    )
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "lib.py").write_text(lines(10, "lib") + "stashed\n")
    git(repo, "stash", "push", "-q", "-m", "work in progress")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    (repo / "notes.txt").write_bytes(b"notes\nuncommitted edit\n")
    (repo / "scratch.txt").write_text("untracked\n")
    return repo


def snapshot(repo: Path) -> dict[str, object]:
    """Everything of the user's that committing the winner must leave alone."""
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "symbolic-ref", "--short", "HEAD"),
        "status": git_raw(repo, "status", "--porcelain"),
        "index": git_raw(repo, "diff", "--cached"),
        "worktree_diff": git_raw(repo, "diff"),
        "dirty": (repo / "notes.txt").read_bytes(),
        "untracked": (repo / "scratch.txt").read_bytes(),
        "stash": git_raw(repo, "stash", "list"),
        "stash_ref": git(repo, "rev-parse", "refs/stash"),
        "worktrees": git_raw(repo, "worktree", "list", "--porcelain"),
        "files": sorted(p.name for p in repo.iterdir()),
    }


def winner_patch(repo: Path) -> str:
    """A two-file patch against ``repo``'s HEAD, including a new file."""
    return diff_of(
        repo,
        {
            "app.py": lines(20, "app").replace("app 3", "fast 3") + "tail\n",
            "fast.py": "FAST = True\n",
        },
    )


@pytest.fixture
def scratch_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Route ``tempfile`` into a folder the test can check is left empty."""
    folder = tmp_path / "scratch-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_commit_patch_makes_one_commit_and_touches_nothing(
    busy_repo: Path, scratch_tmp: Path
) -> None:
    patch = winner_patch(busy_repo)
    base = head_sha(busy_repo)
    before = snapshot(busy_repo)
    message = commit_message("Speed up app", {"Optimizer-Speedup": "3.41x [3.30, 3.52]"})

    sha = commit_patch(busy_repo, "HEAD", patch, branch="optimizer/win", message=message)

    assert snapshot(busy_repo) == before
    assert git(busy_repo, "rev-parse", "optimizer/win") == sha
    assert git(busy_repo, "rev-list", "--count", f"{base}..{sha}") == "1"
    assert git(busy_repo, "rev-parse", f"{sha}^") == base
    assert git_raw(busy_repo, "diff", "--binary", "-M", base, sha) == patch
    assert git_raw(busy_repo, "log", "-1", "--format=%B", sha) == message + "\n"
    author = git(busy_repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", sha)
    assert author == "optimizer <optimizer@localhost>|optimizer <optimizer@localhost>"
    assert list(scratch_tmp.iterdir()) == []


def test_commit_patch_uses_the_configured_user_and_any_base(busy_repo: Path) -> None:
    git(busy_repo, "config", "user.name", "Ada")
    git(busy_repo, "config", "user.email", "ada@example.com")
    first = git(busy_repo, "rev-list", "--max-parents=0", "HEAD")
    patch = diff_of(busy_repo, {"notes.txt": "notes\nfrom the optimizer\n"})
    sha = commit_patch(busy_repo, first, patch, branch="older", message="Tweak\n")
    assert git(busy_repo, "rev-parse", f"{sha}^") == first
    assert git(busy_repo, "log", "-1", "--format=%an <%ae>", sha) == "Ada <ada@example.com>"


def test_commit_patch_refuses_an_existing_branch(busy_repo: Path) -> None:
    git(busy_repo, "branch", "taken")
    refs = git(busy_repo, "for-each-ref")
    before = snapshot(busy_repo)
    with pytest.raises(UserError) as caught:
        commit_patch(busy_repo, "HEAD", winner_patch(busy_repo), branch="taken", message="m")
    assert caught.value.problem == "branch taken already exists"
    assert caught.value.fix == "pass another --branch or delete it"
    assert git(busy_repo, "for-each-ref") == refs
    assert snapshot(busy_repo) == before
    with pytest.raises(UserError, match="already exists"):
        commit_patch(busy_repo, "HEAD", winner_patch(busy_repo), branch="feature", message="m")


def test_commit_patch_that_does_not_apply_leaves_no_trace(
    busy_repo: Path, scratch_tmp: Path
) -> None:
    patch = winner_patch(busy_repo).replace("-app 3", "-not there")
    refs = git(busy_repo, "for-each-ref")
    before = snapshot(busy_repo)
    with pytest.raises(PatchError) as caught:
        commit_patch(busy_repo, "HEAD", patch, branch="broken", message="m")
    assert "does not apply" in caught.value.problem
    assert "\n" not in caught.value.line()
    assert caught.value.fix
    assert git(busy_repo, "for-each-ref") == refs
    assert git_raw(busy_repo, "branch", "--list", "broken") == ""
    assert snapshot(busy_repo) == before
    assert list(scratch_tmp.iterdir()) == []
    assert not (busy_repo / ".git" / "worktrees").exists() or not list(
        (busy_repo / ".git" / "worktrees").iterdir()
    )


def test_commit_patch_rejects_bad_input(busy_repo: Path) -> None:
    with pytest.raises(UserError, match="nope is not a commit in"):
        commit_patch(busy_repo, "nope", winner_patch(busy_repo), branch="x", message="m")
    with pytest.raises(UserError, match="empty"):
        commit_patch(busy_repo, "HEAD", "", branch="x", message="m")
    with pytest.raises(UserError, match="not a valid branch name"):
        commit_patch(busy_repo, "HEAD", winner_patch(busy_repo), branch="a..b", message="m")
    with pytest.raises(UserError, match="could not create branch feature/sub"):
        commit_patch(busy_repo, "HEAD", winner_patch(busy_repo), branch="feature/sub", message="m")
    assert git_raw(busy_repo, "worktree", "list", "--porcelain").count("worktree ") == 1


HOOK = """#!/bin/sh
echo ran >> "{marker}"
exit 1
"""


def test_commit_patch_runs_no_hooks(busy_repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "hook-ran"
    hooks = [busy_repo / ".git" / "hooks", tmp_path / "custom-hooks"]
    for folder in hooks:
        folder.mkdir(exist_ok=True)
        for name in (
            "pre-commit",
            "commit-msg",
            "prepare-commit-msg",
            "post-commit",
            "post-checkout",
            "reference-transaction",
        ):
            hook = folder / name
            hook.write_text(HOOK.format(marker=marker))
            hook.chmod(0o755)
    git(busy_repo, "config", "core.hooksPath", str(hooks[1]))
    before = snapshot(busy_repo)

    sha = commit_patch(busy_repo, "HEAD", winner_patch(busy_repo), branch="hookless", message="m")

    assert not marker.exists()
    assert git(busy_repo, "rev-parse", "hookless") == sha
    assert snapshot(busy_repo) == before


def test_repo_queries(busy_repo: Path, tmp_path: Path) -> None:
    assert is_git_repo(busy_repo)
    (busy_repo / "pkg").mkdir()
    assert is_git_repo(busy_repo / "pkg")  # a folder inside a checkout counts
    outside = tmp_path / "plain"
    outside.mkdir()
    assert not is_git_repo(outside)
    assert not is_git_repo(tmp_path / "missing")
    assert head_sha(busy_repo) == git(busy_repo, "rev-parse", "HEAD")
    assert head_sha(busy_repo, "main") == git(busy_repo, "rev-parse", "main")
    git(busy_repo, "tag", "-a", "v1", "-m", "tag")
    assert head_sha(busy_repo, "v1") == git(busy_repo, "rev-parse", "HEAD")
    with pytest.raises(UserError) as caught:
        head_sha(busy_repo, "nope")
    assert caught.value.problem == f"nope is not a commit in {busy_repo}"
    with pytest.raises(UserError, match="not a git repository"):
        head_sha(outside)
    assert dirty_paths(busy_repo) == ["notes.txt", "scratch.txt", "staged.txt"]
    git(busy_repo, "mv", "notes.txt", "renamed.txt")
    assert dirty_paths(busy_repo) == ["notes.txt", "renamed.txt", "scratch.txt", "staged.txt"]


def test_commit_message_has_subject_body_and_trailers(tmp_path: Path) -> None:
    fields = {
        "Optimizer-Speedup": "3.41x [3.30, 3.52] (instructions)",
        "Optimizer-Task": "sort\nmulti line",
    }
    message = commit_message("Make sort faster\n", fields, body="Uses a radix sort.\n")
    assert message == (
        "Make sort faster\n\nUses a radix sort.\n\n"
        "Optimizer-Speedup: 3.41x [3.30, 3.52] (instructions)\n"
        "Optimizer-Task: sort multi line\n"
    )
    parsed = git_raw(tmp_path, "interpret-trailers", "--parse", input=message)
    assert parsed.splitlines() == [
        "Optimizer-Speedup: 3.41x [3.30, 3.52] (instructions)",
        "Optimizer-Task: sort multi line",
    ]
    assert commit_message("Title", {}) == "Title\n"
    with pytest.raises(ValueError):
        commit_message("Title", {"bad key": "x"})
