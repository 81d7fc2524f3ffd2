"""The static guard and the protected-files check, on real unified diffs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tasks.guard import guard_violations, parse_patch, protected_violations, touched_paths
from tests.conftest import git


def patch_adding(lines: list[str], path: str = "pkg/core.py") -> str:
    """A one-hunk patch appending ``lines`` after two context lines of ``path``."""
    body = "".join(f"+{line}\n" for line in lines)
    return (
        f"diff --git a/{path} b/{path}\n"
        f"index 1111111..2222222 100644\n"
        f"--- a/{path}\n"
        f"+++ b/{path}\n"
        f"@@ -10,2 +10,{2 + len(lines)} @@ def f():\n"
        f"     x = 1\n"
        f"     y = 2\n"
        f"{body}"
    )


RULE_CASES = [
    ("stack-introspection", "    caller = inspect.stack()[1]"),
    ("stack-introspection", "    frame = inspect.currentframe()"),
    ("stack-introspection", "    f = sys._getframe(2)"),
    ("stack-introspection", "    up = frame.f_back"),
    ("stack-introspection", "    names = frame.f_back.f_locals"),
    ("stack-introspection", "    tb = traceback.extract_stack()"),
    ("stack-introspection", "from inspect import stack as _s"),
    ("tracing-hook", "    sys.settrace(hook)"),
    ("tracing-hook", "    sys.setprofile(hook)"),
    ("tracing-hook", "    threading.settrace(hook)"),
    ("heap-walk", "    refs = gc.get_referrers(obj)"),
    ("heap-walk", "    everything = gc.get_objects()"),
    ("time-patching", "time.time = lambda: 0.0"),
    ("time-patching", "time.perf_counter = fake"),
    ("time-patching", "time.monotonic=fake"),
    ("time-patching", "timeit.default_timer = lambda: 0"),
    ("time-patching", "setattr(time, 'perf_counter', fake)"),
    ("time-patching", "with mock.patch('time.perf_counter', return_value=0):"),
    ("harness-detection", "if os.environ.get('PYTEST_CURRENT_TEST'):"),
    ("harness-detection", "if 'OPTIMIZER_SANDBOX' in os.environ:"),
    ("harness-detection", 'if "pytest" in sys.modules:'),
    ("harness-files", "open('.optimizer/junit.xml', 'w').write(fake)"),
    ("harness-files", 'Path(".optimizer") / "result.json"'),
]


@pytest.mark.parametrize(("rule", "line"), RULE_CASES)
def test_each_rule_is_caught_on_added_lines(rule: str, line: str) -> None:
    found = guard_violations(patch_adding(["def g():", line]))
    assert [(v.rule, v.file, v.line, v.text) for v in found] == [(rule, "pkg/core.py", 13, line)]


@pytest.mark.parametrize(
    "comment", ["  # guard: allow", "  # stackguard: allow", "  # noqa", "  # type: ignore"]
)
def test_an_allow_comment_does_not_exempt_a_line(comment: str) -> None:
    found = guard_violations(patch_adding([f"f = sys._getframe(1){comment}"]))
    assert len(found) == 1 and found[0].rule == "stack-introspection"


def test_removed_and_context_lines_are_ignored() -> None:
    patch = (
        "--- a/pkg/core.py\n"
        "+++ b/pkg/core.py\n"
        "@@ -1,4 +1,3 @@\n"
        " import sys\n"
        "-frame = sys._getframe(1)\n"
        " sys.settrace(None)\n"
        "+x = 1\n"
        "-gc.get_objects()\n"
    )
    assert guard_violations(patch) == []


def test_a_removed_line_that_looks_like_a_header_is_not_a_file() -> None:
    # "--- x" inside a hunk is a removed line "-- x"; the hunk counts say so.
    patch = (
        "--- a/notes.py\n"
        "+++ b/notes.py\n"
        "@@ -1,2 +1,2 @@\n"
        "--- old\n"
        "+++ new = sys._getframe()\n"
        " tail\n"
    )
    assert touched_paths(patch) == ["notes.py"]
    found = guard_violations(patch)
    assert [(v.file, v.line, v.rule) for v in found] == [("notes.py", 1, "stack-introspection")]


def test_line_numbers_follow_the_new_file_across_hunks() -> None:
    patch = (
        "diff --git a/m.py b/m.py\n"
        "--- a/m.py\n"
        "+++ b/m.py\n"
        "@@ -1,3 +1,3 @@\n"
        " a\n"
        "-b\n"
        "+b2\n"
        " c\n"
        "@@ -20,2 +20,3 @@\n"
        " d\n"
        "+sys.setprofile(p)\n"
        " e\n"
    )
    found = guard_violations(patch)
    assert [(v.line, v.rule) for v in found] == [(21, "tracing-hook")]


CLEAN = '''\
diff --git a/src/lib/sorting.py b/src/lib/sorting.py
index 3b18e51..a9c4d2f 100644
--- a/src/lib/sorting.py
+++ b/src/lib/sorting.py
@@ -1,12 +1,24 @@
 """Sorting helpers."""
+import bisect
+import functools
+import time
+
+from .optimizer import tune  # a sibling module named optimizer
~
~
 def merge(xs, ys):
-    return sorted(xs + ys)
+    stack = []  # a variable named stack is fine
+    start_time = time.time()
+    t0 = time.perf_counter()
+    if time.monotonic() - t0 > 1:
+        stack.append(start_time)
+    out = list(xs)
+    for y in ys:
+        bisect.insort(out, y)
+    return out
~
~
+@functools.lru_cache(maxsize=None)
 def key(x):
-    return x
+    frame_count = len(stack_frames) if (stack_frames := []) else 0
+    return x + frame_count + self.optimizer.step
'''.replace("~", " ")  # ~ marks blank context lines


def test_no_false_positives_on_a_clean_patch() -> None:
    assert " \n \n def merge" in CLEAN
    [diff] = parse_patch(CLEAN)
    assert len(diff.added) == 17 and diff.added[-1] == (
        24,
        "    return x + frame_count + self.optimizer.step",
    )
    assert guard_violations(CLEAN) == []
    assert touched_paths(CLEAN) == ["src/lib/sorting.py"]


def test_rules_for_python_only_skip_other_files_but_env_sniffing_does_not() -> None:
    doc = patch_adding(["Never call sys._getframe here."], path="docs/notes.md")
    assert guard_violations(doc) == []
    c_src = patch_adding(['if (getenv("PYTEST_CURRENT_TEST")) return 0;'], path="ext/fast.c")
    assert [v.rule for v in guard_violations(c_src)] == ["harness-detection"]


RENAME = """\
diff --git a/tests/test_old.py b/pkg/test_moved.py
similarity index 100%
rename from tests/test_old.py
rename to pkg/test_moved.py
"""

NEW_AND_DELETED = """\
diff --git a/pkg/sub/conftest.py b/pkg/sub/conftest.py
new file mode 100644
index 0000000..e69de29
--- /dev/null
+++ b/pkg/sub/conftest.py
@@ -0,0 +1 @@
+import pytest
diff --git a/bench/workload.py b/bench/workload.py
deleted file mode 100644
index e69de29..0000000
--- a/bench/workload.py
+++ /dev/null
@@ -1 +0,0 @@
-print(1)
diff --git a/data/blob.bin b/data/blob.bin
index 1111111..2222222 100644
Binary files a/data/blob.bin and b/data/blob.bin differ
"""


def test_touched_paths_handles_renames_new_deleted_and_binary() -> None:
    assert touched_paths(RENAME) == ["tests/test_old.py", "pkg/test_moved.py"]
    assert touched_paths(NEW_AND_DELETED) == [
        "pkg/sub/conftest.py",
        "bench/workload.py",
        "data/blob.bin",
    ]
    files = parse_patch(NEW_AND_DELETED)
    assert [(f.old_path, f.new_path, f.binary) for f in files] == [
        (None, "pkg/sub/conftest.py", False),
        ("bench/workload.py", None, False),
        ("data/blob.bin", "data/blob.bin", True),
    ]


def test_protected_paths_match_directories_exact_paths_and_conftest_anywhere() -> None:
    # Renaming a protected test out of tests/ is caught through its old path.
    assert protected_violations(RENAME, ["tests/"]) == ["tests/test_old.py"]
    assert protected_violations(RENAME, ["test/"]) == []  # a prefix is a whole directory
    assert protected_violations(NEW_AND_DELETED, ["conftest.py"]) == ["pkg/sub/conftest.py"]
    assert protected_violations(NEW_AND_DELETED, ["bench/workload.py"]) == ["bench/workload.py"]
    assert protected_violations(NEW_AND_DELETED, ["workload.py"]) == []  # exact, not basename
    assert protected_violations(NEW_AND_DELETED, [".optimizer/", "src/"]) == []


def test_on_a_real_git_diff_with_a_rename_and_a_binary(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_a.py").write_text("def test_a():\n    assert True\n" * 5)
    (repo / "blob.bin").write_bytes(b"\x00\x01")
    (repo / "lib.py").write_text("def f():\n    return 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "mv", "tests/test_a.py", "tests/test_renamed.py")
    (repo / "blob.bin").write_bytes(b"\x00\x02\x03")
    (repo / "lib.py").write_text("import sys\n\ndef f():\n    return sys._getframe(1)\n")
    git(repo, "add", "-A")
    patch = subprocess.run(
        ["git", "-C", str(repo), "diff", "--cached", "-M"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert set(touched_paths(patch)) == {
        "blob.bin",
        "lib.py",
        "tests/test_a.py",
        "tests/test_renamed.py",
    }
    assert sorted(protected_violations(patch, ["tests/"])) == [
        "tests/test_a.py",
        "tests/test_renamed.py",
    ]
    found = guard_violations(patch)
    assert [(v.file, v.line, v.rule) for v in found] == [("lib.py", 4, "stack-introspection")]
    assert str(found[0]) == "lib.py:4: stack-introspection: return sys._getframe(1)"
