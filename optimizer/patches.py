"""Pure functions over unified diffs as ``git diff`` writes them: split into hunks, join back.

A winning candidate often carries edits that do not matter for its speed (a reformatted line,
a leftover debug print). To find and drop them, the patch is cut into hunks that each stand
alone -- every hunk keeps its file's header, so any subset can be joined back into a diff that
``git apply`` accepts. A file whose change cannot be cut (a new, deleted, renamed, copied or
binary file, or a mode-only change) is one indivisible hunk: half a new file is no file.

Parsing is driven by the ``@@`` line counts rather than by what a line looks like, so a removed
line that reads ``-- x`` or ``+++ y`` is never mistaken for a file header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_HUNK_AT = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$", re.DOTALL)
_WHOLE_FILE_MARKERS = (
    "new file mode",
    "deleted file mode",
    "rename from",
    "rename to",
    "copy from",
    "copy to",
    "Binary files ",
    "GIT binary patch",
)


@dataclass(frozen=True)
class Hunk:
    """One piece of a patch that applies on its own: its file's ``header`` plus one ``body``.

    ``index`` is the hunk's position in the patch it came from, so :func:`join_hunks` can put
    any subset back in the original order. ``shift_before`` is the net line change (added minus
    removed) of the same file's earlier hunks in that patch: dropping some of them moves the
    ``+start`` of this one, and :func:`join_hunks` recomputes it from this number.
    """

    path: str
    header: str
    body: str
    added: int
    removed: int
    index: int = 0
    shift_before: int = 0
    whole_file: bool = False

    @property
    def text(self) -> str:
        """The hunk as a stand-alone diff (its file header, then the hunk)."""
        return self.header + self.body

    def describe(self) -> str:
        """A short human label, e.g. ``src/a.py @@ -10,3 +10,4 @@ (+1 -0)``."""
        if self.whole_file:
            return f"{self.path} (whole file, +{self.added} -{self.removed})"
        at = self.body.split("\n", 1)[0]
        match = _HUNK_AT.match(at)
        where = at[: at.index("@@", 2) + 2] if match else at
        return f"{self.path} {where} (+{self.added} -{self.removed})"


@dataclass(frozen=True)
class _Section:
    """One file's part of a patch: its header lines and its ``@@`` hunks (each a line list)."""

    header: list[str]
    hunks: list[list[str]]
    tail: list[str]  # binary patch data, or anything after the hunks that is not a hunk


def split_hunks(patch: str) -> list[Hunk]:
    """Cut ``patch`` into hunks that each carry their file header and apply on their own.

    Text before the first file header (a commit message from ``git format-patch``) is dropped:
    it is not part of the change. An empty patch gives an empty list.
    """
    hunks: list[Hunk] = []
    for section in _sections(patch.splitlines(keepends=True)):
        header = _ensure_newline("".join(section.header))
        path = _path_of(section.header)
        if _is_whole_file(section):
            lines = [line for hunk in section.hunks for line in hunk] + section.tail
            added, removed = _count(lines)
            body = _ensure_newline("".join(lines))
            hunks.append(Hunk(path, header, body, added, removed, len(hunks), whole_file=True))
            continue
        shift = 0
        for lines in section.hunks:
            added, removed = _count(lines)
            body = _ensure_newline("".join(lines))
            hunks.append(Hunk(path, header, body, added, removed, len(hunks), shift))
            shift += added - removed
    return hunks


def join_hunks(hunks: Iterable[Hunk]) -> str:
    """Join any subset of one patch's hunks back into a diff that ``git apply`` accepts.

    Hunks go back in their original order and hunks of one file share one header, as
    ``git diff`` writes them, so the result reads (and counts, in :func:`diff_stats`) as one
    ordinary diff. The ``+start`` of each ``@@`` line is recomputed for the hunks that are
    kept, so the diff is exact and not merely close enough for ``git apply``'s offset search.
    """
    out: list[str] = []
    header: str | None = None
    kept_shift = 0
    for hunk in sorted(hunks, key=lambda h: h.index):
        if hunk.header != header or hunk.whole_file:
            header = hunk.header
            out.append(header)
            kept_shift = 0
        if hunk.whole_file:
            out.append(hunk.body)
            header = None
            continue
        dropped_shift = hunk.shift_before - kept_shift  # net lines of dropped earlier hunks
        out.append(_moved(hunk.body, -dropped_shift))
        kept_shift += hunk.added - hunk.removed
    return "".join(out)


def diff_stats(patch: str) -> tuple[int, int, int]:
    """Return ``(files, added, removed)`` for ``patch``, counting lines as ``git diff --stat``."""
    files = 0
    added = removed = 0
    for section in _sections(patch.splitlines(keepends=True)):
        files += 1
        plus, minus = _count(line for hunk in section.hunks for line in hunk)
        added += plus
        removed += minus
    return files, added, removed


def _sections(lines: list[str]) -> Iterator[_Section]:
    """Yield each file's section of a patch, reading hunk bodies by their ``@@`` counts.

    A ``git diff`` patch starts each file at ``diff --git``; a plain ``diff -u`` one at a
    ``---`` line followed by ``+++``. Which of the two a patch is gets decided once, so the
    ``---``/``+++`` lines inside a git header never start a file of their own.
    """
    git_style = any(line.startswith("diff --git ") for line in lines)
    i = _next_start(lines, 0, git_style)
    while i < len(lines):
        header = [lines[i]]
        i += 1
        while (
            i < len(lines)
            and not lines[i].startswith(("@@", "GIT binary patch"))
            and not _starts_file(lines, i, git_style)
        ):
            header.append(lines[i])
            i += 1
        hunks: list[list[str]] = []
        while i < len(lines) and lines[i].startswith("@@"):
            end = _hunk_end(lines, i)
            hunks.append(lines[i:end])
            i = end
        end = _next_start(lines, i, git_style)
        tail = lines[i:end]
        i = end
        yield _Section(header, hunks, tail)


def _starts_file(lines: list[str], i: int, git_style: bool) -> bool:
    """Whether a file's section starts at line ``i`` (outside any hunk body)."""
    if git_style:
        return lines[i].startswith("diff --git ")
    return lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")


def _next_start(lines: list[str], i: int, git_style: bool) -> int:
    """The index of the next file section at or after ``i`` (``len(lines)`` if none)."""
    while i < len(lines) and not _starts_file(lines, i, git_style):
        i += 1
    return i


def _hunk_end(lines: list[str], i: int) -> int:
    """The index just past the hunk whose ``@@`` line is ``lines[i]``."""
    match = _HUNK_AT.match(lines[i].rstrip("\n"))
    if not match:  # a combined diff or garbage: keep the line and stop there
        return i + 1
    old = int(match.group(2)) if match.group(2) is not None else 1  # "-5" means "-5,1"
    new = int(match.group(4)) if match.group(4) is not None else 1
    j = i + 1
    while j < len(lines) and (old > 0 or new > 0):
        mark = lines[j][:1]
        if mark == "-":
            old -= 1
        elif mark == "+":
            new -= 1
        elif mark in (" ", "\n", "\r", ""):
            old -= 1
            new -= 1
        elif mark != "\\":
            break  # a truncated hunk: stop rather than swallow the next file
        j += 1
    while j < len(lines) and lines[j].startswith("\\"):
        j += 1  # "\ No newline at end of file" after the last line
    return j


def _count(lines: Iterable[str]) -> tuple[int, int]:
    """Count added and removed lines in hunk lines (``@@`` lines excluded)."""
    added = removed = 0
    for line in lines:
        if line.startswith("@@"):
            continue
        if line.startswith("+"):
            added += 1
        elif line.startswith("-"):
            removed += 1
    return added, removed


def _is_whole_file(section: _Section) -> bool:
    """Whether a file's change cannot be cut into hunks (new, deleted, renamed, binary...)."""
    if not section.hunks or section.tail:
        return True
    return any(line.startswith(_WHOLE_FILE_MARKERS) for line in section.header)


def _path_of(header: list[str]) -> str:
    """The file's path after the change (its old path when the file is deleted)."""
    plus = minus = rename = None
    for line in header:
        text = line.rstrip("\n")
        if text.startswith("+++ "):
            plus = text[4:]
        elif text.startswith("--- "):
            minus = text[4:]
        elif text.startswith(("rename to ", "copy to ")):
            rename = text.split(" ", 2)[2]
    for name, prefix in ((plus, "b/"), (rename, ""), (minus, "a/")):
        if name and name != "/dev/null":
            return _unquote(name.split("\t", 1)[0]).removeprefix(prefix)
    first = header[0].rstrip("\n").removeprefix("diff --git ")
    half = (len(first) - 1) // 2  # "a/P b/P": both halves are the same length
    if first.startswith("a/") and first[half:].startswith(" b/"):
        return first[half + 3 :]
    return _unquote(first.rsplit(" ", 1)[-1]).removeprefix("b/")


def _unquote(name: str) -> str:
    """Strip the C-style quotes git puts around unusual paths (escapes are left as written)."""
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return name[1:-1]
    return name


def _moved(body: str, delta: int) -> str:
    """Return ``body`` with its ``@@`` line's ``+start`` moved by ``delta`` lines."""
    if delta == 0:
        return body
    at, _, rest = body.partition("\n")
    match = _HUNK_AT.match(at)
    if not match:
        return body
    old_start, old_len, new_start, new_len, tail = match.groups()
    old = old_start + (f",{old_len}" if old_len is not None else "")
    start = max(int(new_start) + delta, 0)
    new = str(start) + (f",{new_len}" if new_len is not None else "")
    return f"@@ -{old} +{new} @@{tail}\n{rest}"


def _ensure_newline(text: str) -> str:
    """``git apply`` reads lines: the last one must end with a newline."""
    return text if not text or text.endswith("\n") else text + "\n"
