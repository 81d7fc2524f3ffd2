"""What the importers share: reading rows, the cache, atomic task directories, a TOML writer."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.errors import UserError
from sandbox.local_sandbox import cache_dir as tool_cache
from tasks.model import TASK_FILE, Task, TaskError, load_task


class RowError(UserError):
    """A problem with one field of one row; the caller adds the file and the line."""

    def __init__(self, field: str, problem: str, fix: str) -> None:
        super().__init__(f"field '{field}' {problem}", fix)


@dataclass
class Draft:
    """A task directory to write: task.toml content, its files, and a folder to make a git repo."""

    id: str
    data: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)
    git_dir: str | None = None


# --- rows -------------------------------------------------------------------------------------


def read_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The rows of a .jsonl (one object a line) or .json (a list of objects) file, each with a
    label for messages: ``name line N`` or ``name row N``."""
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"{path}: cannot read ({exc})", "pass a UTF-8 JSON/JSONL file") from None
    rows: list[tuple[str, dict[str, Any]]] = []
    if path.suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TaskError(
                    f"{name} line {n}: not valid JSON ({exc.msg}, column {exc.colno})",
                    "write one JSON object per line",
                ) from None
            rows.append((f"{name} line {n}", row))
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TaskError(
                f"{name} line {exc.lineno}: not valid JSON ({exc.msg})", "correct the syntax"
            ) from None
        if isinstance(data, dict):
            for key in ("rows", "data", "instances"):
                if isinstance(data.get(key), list):
                    data = data[key]
                    break
            else:
                data = [data]
        if not isinstance(data, list):
            raise TaskError(f"{name}: expected a list of objects", "write [{...}, ...]")
        rows = [(f"{name} row {n}", row) for n, row in enumerate(data, 1)]
    for label, row in rows:
        if not isinstance(row, dict):
            raise TaskError(
                f"{label}: expected a JSON object, got {type(row).__name__}",
                "each row is an object with the dataset's fields",
            )
    return rows


def require(row: dict[str, Any], key: str, fix: str) -> str:
    """A required non-empty string field."""
    value = row.get(key)
    if value is None or value == "":
        raise RowError(key, "is missing", f"add it ({fix})")
    if not isinstance(value, str):
        raise RowError(key, f"must be a string, not {type(value).__name__}", f"give {fix}")
    return value


def as_list(row: dict[str, Any], key: str, *, lines: bool = False) -> list[str]:
    """A list field that datasets store as a list, a JSON-encoded list, or a plain string
    (split on newlines when ``lines``, else on whitespace)."""
    value = row.get(key)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError:
                raise RowError(key, "is not a valid JSON list", "give a list of strings") from None
        else:
            parts = stripped.splitlines() if lines else stripped.split()
            return [p.strip() for p in parts if p.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise RowError(key, "must be a list of strings", "give a list of strings")
    return [str(v) for v in value]


def as_float(row: dict[str, Any], key: str) -> float | None:
    value = row.get(key)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RowError(key, f"must be a number, not {value!r}", "give a number") from None
    if not math.isfinite(number) or number <= 0:
        return None
    return number


_ID_BAD = re.compile(r"[^A-Za-z0-9_.\-]+")


def safe_id(raw: str) -> str:
    """A task id (letters, digits, ``_.-``; starting with a letter or digit)."""
    out = _ID_BAD.sub("-", raw).strip("-.")
    return out or "task"


def ensure_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def unified_diff(path: str, old: str, new: str) -> str:
    """A git-style diff of one file that ``git apply`` accepts (no-newline markers included)."""
    body = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        f"a/{path}",
        f"b/{path}",
        n=3,
    )
    out = [f"diff --git a/{path} b/{path}\n"]
    for line in body:
        if line.startswith(("---", "+++")):
            out.append(line.rstrip("\n").rstrip() + "\n")
        elif line.endswith("\n"):
            out.append(line)
        else:
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out) if len(out) > 1 else ""


# --- the cache --------------------------------------------------------------------------------


def cache_root(cache_dir: Path | None = None) -> Path:
    """``<cache>/imported``: ``cache_dir``, else the tool's cache (``sandbox`` knows where)."""
    return (Path(cache_dir).expanduser() if cache_dir is not None else tool_cache()) / "imported"


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def folder_digest(files: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


_GIT_ENV = {
    "GIT_AUTHOR_NAME": "optimizer",
    "GIT_AUTHOR_EMAIL": "optimizer@localhost",
    "GIT_COMMITTER_NAME": "optimizer",
    "GIT_COMMITTER_EMAIL": "optimizer@localhost",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00+00:00",
}


def git_init(repo: Path) -> None:
    """Make ``repo`` a git repository with one commit of everything in it (fixed author/date)."""
    env = {**os.environ, **_GIT_ENV}
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "commit.gpgsign=false", "commit", "-q", "--allow-empty", "-m", "base"],
    ):
        done = subprocess.run(
            ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            err = (done.stderr.strip().splitlines() or ["?"])[-1]
            raise TaskError(f"{repo}: git {args[0]} failed ({err})", "install git")


def materialize(draft: Draft, parent: Path, label: str) -> Task:
    """Write ``draft`` to ``parent/<id>`` atomically (temp dir + rename), reuse it when it is
    already there with the same task.toml, and load it. A task.toml that differs was written
    by another version of the importer: that import is stale and is replaced."""
    final = parent / draft.id
    toml = dump_toml(draft.data)
    done = final / TASK_FILE
    if done.is_file() and done.read_text(encoding="utf-8", errors="replace") != toml:
        stale = Path(tempfile.mkdtemp(prefix=f".{draft.id}.stale.", dir=parent))
        with contextlib.suppress(OSError):  # a concurrent import moved it first
            os.rename(final, stale / draft.id)
        shutil.rmtree(stale, ignore_errors=True)
    if not done.is_file():
        if final.exists():  # a leftover without task.toml is not a finished import
            shutil.rmtree(final, ignore_errors=True)
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{draft.id}.", dir=parent))
        try:
            for rel, text in draft.files.items():
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            (tmp / TASK_FILE).write_text(toml, encoding="utf-8")
            if draft.git_dir:
                (tmp / draft.git_dir).mkdir(parents=True, exist_ok=True)
                git_init(tmp / draft.git_dir)
            try:
                os.rename(tmp, final)
            except OSError:
                if not (final / TASK_FILE).is_file():  # not a concurrent import: a real error
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    try:
        return load_task(final)
    except TaskError as exc:
        raise TaskError(f"{label}: the imported task is invalid: {exc.problem}", exc.fix) from None


# --- a small TOML writer (task.toml only needs strings, numbers, bools, lists and tables) ----


def _toml_str(value: str) -> str:
    out = json.dumps(value, ensure_ascii=False)
    return out.replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"cannot write {value} to TOML")
        return repr(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_\-]+", key) else _toml_str(key)


def dump_toml(data: dict[str, Any], prefix: str = "") -> str:
    """TOML for a dict of scalars, lists of scalars, tables and arrays of tables."""
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict) or (
            isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        ):
            tables.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_toml_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables:
        name = f"{prefix}{_key(key)}"
        if isinstance(value, dict):
            out += f"\n[{name}]\n" + dump_toml(value, prefix=f"{name}.")
        else:
            for item in value:
                out += f"\n[[{name}]]\n" + dump_toml(item, prefix=f"{name}.")
    return out
