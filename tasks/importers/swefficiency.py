"""SWE-fficiency rows (a JSONL file, or a JSON list of rows) -> repo tasks."""

from __future__ import annotations

import ast
import re
from typing import Any

from tasks.importers.common import (
    Draft,
    RowError,
    as_float,
    as_list,
    ensure_newline,
    require,
    safe_id,
)

FORMAT = "swefficiency"
#: Keys that identify a row of this format (all present).
SIGNATURE = ("workload", "base_commit")
#: Keys any one of which suggests this format when the signature does not match fully.
HINTS = ("workload", "covering_tests", "rebuild_cmd")


#: The most timed calls per process an imported script's ``repeat=`` sets.
MOST_CALLS = 200


def split_timing(script: str) -> tuple[str, dict[str, int]]:
    """The workload script without its own timing loop, and that loop's ``repeat``/``number``.

    SWE-fficiency's scripts end with ``runtimes = timeit.repeat(workload, number=1,
    repeat=N, setup=setup)`` and prints of their mean: module-level code, which would run at
    every import of the file (the judge imports it in each process), calling ``workload()``
    before the judge's first call and filling any cache a candidate keeps. Those statements,
    and the ones that read what they assigned, become comments; the rest is kept as written.
    A script that does not parse is kept whole.
    """
    try:
        tree = ast.parse(script)
    except SyntaxError:
        return script, {}
    found: dict[str, int] = {}
    dropped, names = [], set()
    for node in tree.body:
        calls = [n for n in ast.walk(node) if isinstance(n, ast.Call) and _timing_call(n)]
        reads = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & names
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if calls or reads:
            dropped.append(node)
            for t in getattr(node, "targets", []) + [getattr(node, "target", None)]:
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)} if t else set()
            for call in calls:
                for kw in call.keywords:
                    value = kw.value.value if isinstance(kw.value, ast.Constant) else None
                    if kw.arg in ("repeat", "number") and isinstance(value, int) and value > 0:
                        found.setdefault(kw.arg, value)
    if not dropped:
        return script, {}
    lines = script.splitlines(keepends=True)
    for node in dropped:
        for i in range(node.lineno - 1, node.end_lineno or node.lineno):
            lines[i] = "# (the script's own timing, kept out of the judge's runs) " + lines[i]
    return "".join(lines), found


def _timing_call(call: ast.Call) -> bool:
    f = call.func
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
        return f.value.id == "timeit" and f.attr in ("repeat", "timeit", "Timer")
    return isinstance(f, ast.Name) and f.id in ("repeat", "timeit", "Timer")


def convert(row: dict[str, Any]) -> Draft:
    iid = require(row, "instance_id", 'the instance id, e.g. "sympy__sympy-12345"')
    repo = require(row, "repo", 'the GitHub "owner/name"')
    if not re.fullmatch(r"[\w.\-]+/[\w.\-]+", repo):
        raise RowError("repo", f"must be 'owner/name', not {repo!r}", 'give "owner/name"')
    base = require(row, "base_commit", "the commit the instance starts from")
    workload = require(row, "workload", "the workload script with setup() and workload()")

    script, timing = split_timing(ensure_newline(workload))
    files = {"workload.py": script}
    expert: dict[str, Any] = {}
    patch = row.get("patch")
    if patch:
        if not isinstance(patch, str):
            raise RowError("patch", "must be a string (a unified diff)", "give the expert diff")
        files["expert.patch"] = ensure_newline(patch)
        expert["patch"] = "expert.patch"
    speedup = as_float(row, "speedup")
    if speedup is not None:
        expert["speedup"] = speedup

    covering = as_list(row, "covering_tests")
    serial = as_list(row, "single_thread_tests")
    tests: dict[str, Any] | None = None
    test_cmd = row.get("test_cmd")
    if isinstance(test_cmd, list):
        test_cmd = " ".join(str(part) for part in test_cmd)
    if test_cmd is not None and not isinstance(test_cmd, str):
        raise RowError("test_cmd", "must be a string", "give the shell command that runs tests")
    if test_cmd or covering:
        if test_cmd:
            command = test_cmd.strip()
            missing = [t for t in covering if t not in command]
            if missing:  # SWE-bench style: the test files are appended to test_cmd
                command += " " + " ".join(missing)
        else:
            command = "python -m pytest -q " + " ".join(covering)
        if "{junit}" not in command and (not test_cmd or "pytest" in test_cmd):
            command += " --junitxml={junit}"
        tests = {
            "command": command,
            "protected": covering,
            "must_pass": as_list(row, "PASS_TO_PASS"),
            "serial": serial,
        }

    setup: dict[str, Any] = {}
    image = row.get("image_name")
    if image:
        setup["image"] = str(image)
    rebuild = as_list(row, "rebuild_cmd", lines=True)
    if rebuild:
        setup["install"] = rebuild
    if serial:
        setup["env"] = {"PYTHONHASHSEED": "0"}

    prompt = (
        f"Make the workload below, which exercises {repo}, run faster, without changing the "
        "library's behaviour: its tests must still pass. The workload runs from "
        ".optimizer/workload.py in the repository; do not edit it or the tests.\n\n"
        f"```python\n{ensure_newline(workload)}```\n"
    )
    data: dict[str, Any] = {
        "id": safe_id(iid),
        "kind": "repo",
        "title": f"SWE-fficiency {iid}",
        "prompt": prompt,
        "source": {"git": f"https://github.com/{repo}", "commit": base},
        "setup": setup,
        # SWE-fficiency's protocol: timeit.repeat(workload, setup=setup) in one process
        "workload": {
            "script": "workload.py",
            "protocol": "warm",
            "calls": min(MOST_CALLS, timing.get("repeat", 10)),
            "warmup": 1,
        },
        "tests": tests,
        "expert": expert,
    }
    return Draft(id=data["id"], data=data, files=files)
