"""PIE rows (slow/fast program pairs) -> program tasks with stdin/stdout checks.

The source tree is generated: ``src/main.py`` (or ``src/main.cpp`` for C++, built with
``g++ --std=c++17 -O3``) holding ``src_code``, made a git repo. The expert patch turns it into
``tgt_code``. Test cases come from ``cases_dir/<problem_id>/input.<i>.txt`` and
``output.<i>.txt`` (the row's ``tests`` pick the indices), else from the row's own
``input``/``output`` fields.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tasks.importers.common import (
    Draft,
    RowError,
    as_float,
    ensure_newline,
    require,
    safe_id,
    unified_diff,
)

FORMAT = "pie"
SIGNATURE = ("src_code", "tgt_code")
HINTS = ("src_code", "tgt_code")

_CPP = re.compile(r"^\s*#\s*include\b|\bint\s+main\s*\(|\bstd::", re.M)

_WORKLOAD = '''\
"""PIE workload: the program on the visible test input."""

import subprocess
import sys

COMMAND = {command!r}
INPUT = {input!r}


def setup():
    pass


def workload():
    cmd = [sys.executable if part == "python3" else part for part in COMMAND]
    subprocess.run(cmd, input=INPUT, text=True, stdout=subprocess.DEVNULL, check=True)
'''


def is_cpp(code: str) -> bool:
    return bool(_CPP.search(code))


def _indices(row: dict[str, Any]) -> list[int] | None:
    value = row.get("tests")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = [v for v in re.split(r"[\s,\[\]]+", value) if v]
    if not isinstance(value, list):
        raise RowError("tests", "must be a list of test-case indices", "give e.g. [0, 3, 7]")
    try:
        return list(dict.fromkeys(int(v) for v in value))
    except (TypeError, ValueError):
        raise RowError(
            "tests", "must hold integers", "give test-case indices, e.g. [0, 3]"
        ) from None


def _cases(row: dict[str, Any], pid: str, cases_dir: Path | None) -> list[tuple[str, str, str]]:
    """(index, input, expected output or "") for each test case."""
    indices = _indices(row)
    if cases_dir is not None and (cases_dir / pid).is_dir():
        folder = cases_dir / pid
        if indices is None:
            found = [p.name[len("input.") : -len(".txt")] for p in folder.glob("input.*.txt")]
            indices = sorted(int(i) for i in found if i.isdigit())
        out = []
        for i in indices:
            inp = folder / f"input.{i}.txt"
            if not inp.is_file():
                raise RowError(
                    "tests",
                    f"names case {i} but {inp} does not exist",
                    "pass the matching PIE test-case folder as cases_dir",
                )
            exp = folder / f"output.{i}.txt"
            out.append((str(i), inp.read_text(), exp.read_text() if exp.is_file() else ""))
        if out:
            return out
    inputs, outputs = row.get("input"), row.get("output")
    if isinstance(inputs, str):
        inputs, outputs = [inputs], [outputs] if isinstance(outputs, str) else None
    if isinstance(inputs, list) and inputs:
        if not isinstance(outputs, list) or len(outputs) != len(inputs):
            outputs = [""] * len(inputs)
        pairs = enumerate(zip(inputs, outputs, strict=True))
        return [(str(k), str(i), str(o or "")) for k, (i, o) in pairs]
    where = f"no folder {cases_dir / pid}" if cases_dir else "no cases_dir given"
    raise RowError(
        "tests",
        f"has no test cases for {pid} ({where}, and the row has no 'input')",
        "pass cases_dir=DIR (optimizer: --cases DIR) holding <problem_id>/input.<i>.txt and "
        "output.<i>.txt",
    )


def convert(
    row: dict[str, Any], *, cases_dir: Path | None = None, suffix: str | None = None
) -> Draft:
    pid = require(row, "problem_id", 'the CodeNet problem id, e.g. "p02552"')
    src = require(row, "src_code", "the slow program")
    tgt = row.get("tgt_code")
    if tgt is not None and not isinstance(tgt, str):
        raise RowError("tgt_code", "must be a string", "give the faster program's source")
    cpp = is_cpp(src)
    main = "main.cpp" if cpp else "main.py"
    run = ["./main"] if cpp else ["python3", "main.py"]
    cases = _cases(row, pid, cases_dir)

    files: dict[str, str] = {f"src/{main}": src}
    if cpp:
        files["src/.gitignore"] = "/main\n"
    expert: dict[str, Any] = {}
    if tgt:
        patch = unified_diff(main, src, tgt)
        if patch:
            files["expert.patch"] = patch
            expert["patch"] = "expert.patch"
    slow, fast = as_float(row, "src_agg_runtime"), as_float(row, "tgt_agg_runtime")
    if slow and fast:
        expert["speedup"] = round(slow / fast, 6)

    checks = []
    for n, (idx, inp, out) in enumerate(cases):
        files[f"cases/input.{idx}.txt"] = inp
        check: dict[str, Any] = {
            "name": f"case-{idx}",
            "command": " ".join(run),
            "stdin": f"cases/input.{idx}.txt",
            "hidden": n > 0,
            "compare": "lines",
        }
        if out:
            files[f"cases/output.{idx}.txt"] = out
            check["expected"] = f"cases/output.{idx}.txt"
        checks.append(check)
    files["workload.py"] = _WORKLOAD.format(command=run, input=cases[0][1])

    lang = "C++ (built with g++ --std=c++17 -O3)" if cpp else "Python"
    shown = cases[0][1] if len(cases[0][1]) <= 2000 else cases[0][1][:2000] + "...\n"
    prompt = (
        f"Make {main} faster. It is a {lang} program for competitive-programming problem "
        f"{pid}: it reads its input from stdin and writes the answer to stdout. The output must "
        "stay the same (compared line by line) on hidden inputs too. An example input:\n\n"
        f"```\n{ensure_newline(shown)}```\n"
    )
    tid = safe_id(f"pie-{pid}" + (f"-{suffix}" if suffix else ""))
    data: dict[str, Any] = {
        "id": tid,
        "kind": "program",
        "title": f"PIE {pid}",
        "prompt": prompt,
        "source": {"path": "src"},
        "setup": {"install": ["g++ --std=c++17 -O3 -o main main.cpp"]} if cpp else {},
        "workload": {"script": "workload.py", "protocol": "cold"},  # PIE: whole programs
        "checks": checks,
        "expert": expert,
    }
    return Draft(id=tid, data=data, files=files, git_dir="src")
