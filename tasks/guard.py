"""Checks on a candidate's unified diff, before anything of it runs.

* :func:`protected_violations`: the patch touches a file the judge relies on (tests, the
  workload, ``conftest.py``, ``.optimizer/``), so it is rejected.
* :func:`guard_violations`: the static guard. Added lines must not look at the caller's stack,
  install tracing hooks, walk the heap, patch the clock, sniff out the test harness or write
  to the harness's files. Comments do not exempt a line: there is no ``# guard: allow`` (the
  loophole SWE-fficiency's ``# stackguard: allow`` left open), and a rule matches inside a
  comment too, since telling a comment from a string needs the whole file.

Both are pure functions of the diff text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Files the Python rules apply to; the other rules apply to every text file.
_PY_SUFFIXES = (".py", ".pyi", ".pyx", ".pxd", ".pxi", ".pth")


@dataclass
class FileDiff:
    """One file of a patch: its old and new paths (None for /dev/null) and the added lines."""

    old_path: str | None = None
    new_path: str | None = None
    binary: bool = False
    added: list[tuple[int, str]] = field(default_factory=list)
    hunks: int = 0

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""

    def paths(self) -> list[str]:
        return [p for p in dict.fromkeys([self.old_path, self.new_path]) if p]


@dataclass(frozen=True)
class Violation:
    """A guard hit: the file, the line number in the new file, the rule and the line text."""

    file: str
    line: int
    rule: str
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.text.strip()}"


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_GIT_HEADER = re.compile(r'^diff --git ("(?:[^"\\]|\\.)*"|\S+) ("(?:[^"\\]|\\.)*"|\S+)\s*$')
_BINARY = re.compile(r"^Binary files (.+?) and (.+?) differ$")


def _unquote(raw: str) -> str:
    """A path as git prints it: maybe C-quoted, with an ``a/``/``b/`` prefix."""
    raw = raw.strip()
    if "\t" in raw and not raw.startswith('"'):
        raw = raw.split("\t", 1)[0]  # plain diff: "path<TAB>timestamp"
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        body = raw[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        try:
            raw = body.encode("latin-1").decode("utf-8")
        except UnicodeError:
            raw = body
    return raw


def _strip_prefix(path: str) -> str | None:
    path = _unquote(path)
    if path == "/dev/null":
        return None
    if path[:2] in ("a/", "b/"):
        path = path[2:]
    return path.removeprefix("./")


def parse_patch(patch: str) -> list[FileDiff]:
    """Split a unified (or git) diff into files, tracking new-file line numbers of additions."""
    files: list[FileDiff] = []
    cur: FileDiff | None = None
    old_left = new_left = 0
    new_line = 0
    lines = patch.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if cur is not None and (old_left > 0 or new_left > 0):
            # Inside a hunk: the counts say where it ends, so "--- x" here is a removed line.
            if line.startswith("\\"):
                continue  # "\ No newline at end of file"
            tag = line[:1]
            if tag == "+":
                cur.added.append((new_line, line[1:]))
                new_line += 1
                new_left -= 1
                continue
            if tag == "-":
                old_left -= 1
                continue
            if tag == " " or line == "":
                old_left -= 1
                new_left -= 1
                new_line += 1
                continue
            old_left = new_left = 0  # a malformed hunk: fall through to header parsing
        if m := _GIT_HEADER.match(line):
            cur = FileDiff(_strip_prefix(m.group(1)), _strip_prefix(m.group(2)))
            files.append(cur)
            continue
        if line.startswith("diff --git "):
            cur = FileDiff()
            files.append(cur)
            continue
        if line.startswith("--- ") and i < len(lines) and lines[i].startswith("+++ "):
            old = _strip_prefix(line[4:])
            new = _strip_prefix(lines[i][4:])
            i += 1
            if cur is None or cur.hunks:  # a plain diff (no "diff --git"): a new file
                cur = FileDiff()
                files.append(cur)
            cur.old_path, cur.new_path = old, new
            continue
        if cur is None:
            continue
        if m := _HUNK.match(line):
            old_left = int(m.group(2)) if m.group(2) is not None else 1
            new_left = int(m.group(4)) if m.group(4) is not None else 1
            new_line = int(m.group(3))
            cur.hunks += 1
            continue
        if line.startswith(("rename from ", "copy from ")):
            cur.old_path = _strip_prefix(line.split(" from ", 1)[1])
        elif line.startswith(("rename to ", "copy to ")):
            cur.new_path = _strip_prefix(line.split(" to ", 1)[1])
        elif line.startswith("new file mode"):
            cur.old_path = None
        elif line.startswith("deleted file mode"):
            cur.new_path = None
        elif line.startswith("GIT binary patch"):
            cur.binary = True
        elif m := _BINARY.match(line):
            cur.binary = True
            cur.old_path = _strip_prefix(m.group(1))
            cur.new_path = _strip_prefix(m.group(2))
    return files


def touched_paths(patch: str) -> list[str]:
    """Every path the patch reads or writes: both sides of a rename, new and deleted files."""
    seen: dict[str, None] = {}
    for f in parse_patch(patch):
        for p in f.paths():
            seen[p] = None
    return list(seen)


def _matches(path: str, entry: str) -> bool:
    entry = entry.strip().removeprefix("./")
    if not entry:
        return False
    if entry.endswith("/"):
        return path.startswith(entry) or path == entry.rstrip("/")
    if path == entry:
        return True
    return "/" not in entry and entry == "conftest.py" and path.rsplit("/", 1)[-1] == entry


def is_protected(path: str, protected: list[str]) -> bool:
    """A ``dir/`` entry is a prefix, other entries are exact paths, and ``conftest.py``
    matches a conftest.py in any directory."""
    return any(_matches(path, e) for e in protected)


def protected_violations(patch: str, protected: list[str]) -> list[str]:
    """The paths the patch touches that are protected (see :func:`is_protected`)."""
    return [p for p in touched_paths(patch) if is_protected(p, protected)]


# --- the static guard -------------------------------------------------------------------------

_NOT_ATTR = r"(?<![\w.])"  # the name is not itself an attribute or part of a longer name

_RULES: list[tuple[str, bool, re.Pattern[str]]] = [
    (
        "stack-introspection",
        True,
        re.compile(
            rf"{_NOT_ATTR}inspect\s*\.\s*(stack|currentframe|getouterframes|getinnerframes|"
            r"trace|getframeinfo)\b"
            rf"|{_NOT_ATTR}sys\s*\.\s*(_getframe|_current_frames)\b"
            r"|\.\s*f_(back|locals|globals)\b"
            rf"|{_NOT_ATTR}traceback\s*\.\s*(extract_stack|format_stack|print_stack|walk_stack)\b"
            r"|from\s+(inspect|sys|traceback)\s+import\s+[^#]*\b(stack|currentframe|"
            r"getouterframes|_getframe|_current_frames|extract_stack|walk_stack)\b"
        ),
    ),
    (
        "tracing-hook",
        True,
        re.compile(
            rf"{_NOT_ATTR}(sys|threading)\s*\.\s*(settrace|setprofile|settrace_all_threads|"
            r"setprofile_all_threads)\b"
            rf"|{_NOT_ATTR}sys\s*\.\s*monitoring\b"
            r"|from\s+(sys|threading)\s+import\s+[^#]*\b(settrace|setprofile|monitoring)\b"
        ),
    ),
    (
        "tracing-hook",
        False,
        re.compile(r"\bPyEval_Set(Trace|Profile)\w*\s*\(|\bPyEval_GetFrame\b"),
    ),
    (
        "heap-walk",
        True,
        re.compile(
            rf"{_NOT_ATTR}gc\s*\.\s*(get_referrers|get_referents|get_objects)\b"
            r"|from\s+gc\s+import\s+[^#]*\b(get_referrers|get_referents|get_objects)\b"
        ),
    ),
    (
        "time-patching",
        True,
        re.compile(
            rf"{_NOT_ATTR}(time|timeit)\s*\.\s*(time|time_ns|perf_counter|perf_counter_ns|"
            r"monotonic|monotonic_ns|process_time|process_time_ns|thread_time|default_timer)"
            r"\s*=(?!=)"
            r"|\bsetattr\s*\(\s*['\"]?(time|timeit)\b"
            r"|\bpatch\s*\(\s*['\"](time|timeit)\s*\."
            r"|\bpatch\s*\.\s*object\s*\(\s*(time|timeit)\s*,"
            r"|\bdelattr\s*\(\s*(time|timeit)\s*,"
        ),
    ),
    (
        "dynamic-lookup",
        True,
        re.compile(
            rf"{_NOT_ATTR}getattr\s*\(\s*(sys|inspect|gc|threading|traceback)\s*,"
            r"|__import__\s*\(\s*['\"](inspect|gc|traceback)['\"]"
            r"|import_module\s*\(\s*['\"](inspect|gc|traceback)['\"]"
        ),
    ),
    (
        "harness-detection",
        False,
        re.compile(
            r"PYTEST_CURRENT_TEST|PYTEST_VERSION|PYTEST_XDIST_WORKER|OPTIMIZER_SANDBOX"
            r"|['\"]_?pytest['\"]\s+(not\s+)?in\s+sys\s*\.\s*modules"
            r"|sys\s*\.\s*modules\s*(\.\s*get\s*\(|\[)\s*['\"]_?pytest['\"]"
        ),
    ),
    (
        "harness-files",
        False,
        re.compile(r"""['"]\.optimizer\b|(?<![\w)\].])\.optimizer[/\\]"""),
    ),
]


def guard_violations(patch: str) -> list[Violation]:
    """Added lines that break a guard rule, in patch order. Removed and context lines are
    ignored; no comment exempts a line."""
    out: list[Violation] = []
    for f in parse_patch(patch):
        if f.new_path is None:
            continue
        is_py = f.new_path.endswith(_PY_SUFFIXES)
        for lineno, text in f.added:
            for rule, py_only, pattern in _RULES:
                if py_only and not is_py:
                    continue
                if pattern.search(text):
                    out.append(Violation(f.new_path, lineno, rule, text))
                    break
    return out
