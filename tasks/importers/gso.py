"""GSO instances (a JSONL file, or a JSON list) -> repo tasks with hidden equivalence checks.

Each GSO test script takes ``OUTPUT_FILE [--reference | --eqcheck] [--file_prefix P]``: with
``--reference`` it stores the experiment's result under the prefix, with ``--eqcheck`` it loads
it and asserts equivalence (a non-zero exit when the result differs). A check therefore runs
``reference_command`` on the baseline, then ``command`` on the candidate, and passes on exit 0
(``compare = "exit"``).
"""

from __future__ import annotations

import re
from typing import Any

from tasks.importers.common import (
    Draft,
    RowError,
    as_list,
    ensure_newline,
    require,
    safe_id,
)

FORMAT = "gso"
SIGNATURE = ("prob_script", "opt_commit")
HINTS = ("prob_script", "opt_commit", "gt_diff")

_WORKLOAD = '''\
"""GSO workload: the instance's prob_script, timed through its setup() and experiment()."""

import inspect

SOURCE = {source!r}

_ns = {{"__name__": "gso_prob", "__file__": "gso_prob.py"}}
exec(compile(SOURCE, "gso_prob.py", "exec"), _ns)
_data = None


def setup():
    global _data
    _data = _ns["setup"]()


def workload():
    experiment = _ns["experiment"]
    if inspect.signature(experiment).parameters:
        return experiment(_data)
    return experiment()
'''


def _check(name: str, rel: str, hidden: bool) -> dict[str, Any]:
    script = rel.rsplit("/", 1)[-1]
    stem = script.removesuffix(".py")
    run = f"python3 .optimizer/inputs/{rel} .optimizer/{stem}.times"
    prefix = f"--file_prefix .optimizer/{stem}_ref"
    return {
        "name": name,
        "command": f"{run} --eqcheck {prefix}",
        "reference_command": f"{run} --reference {prefix}",
        "files": [rel],
        "hidden": hidden,
        "compare": "exit",
    }


def convert(row: dict[str, Any]) -> Draft:
    iid = require(row, "instance_id", 'the instance id, e.g. "numpy__numpy-ab12cd3"')
    repo = require(row, "repo", 'the GitHub "owner/name"')
    if not re.fullmatch(r"[\w.\-]+/[\w.\-]+", repo):
        raise RowError("repo", f"must be 'owner/name', not {repo!r}", 'give "owner/name"')
    prob = require(row, "prob_script", "the perf test shown to the agent")
    opt = row.get("opt_commit") or None
    base = row.get("base_commit") or (f"{opt}^" if isinstance(opt, str) else None)
    if not base:
        raise RowError(
            "base_commit", "is missing", "add it, or give opt_commit (base = its parent)"
        )
    if not isinstance(base, str):
        raise RowError("base_commit", "must be a string", "give the commit sha")

    files = {"workload.py": _WORKLOAD.format(source=prob), "gso_prob.py": ensure_newline(prob)}
    checks = [_check("gso-prob", "gso_prob.py", hidden=False)]
    tests = row.get("tests") or []
    if isinstance(tests, str):
        tests = as_list(row, "tests") if tests.lstrip().startswith("[") else [tests]
    if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
        raise RowError("tests", "must be a list of test scripts", "give a list of strings")
    for i, script in enumerate(tests):
        rel = f"hidden/gso_test_{i}.py"
        files[rel] = ensure_newline(script)
        checks.append(_check(f"gso-test-{i}", rel, hidden=True))

    expert: dict[str, Any] = {}
    diff = row.get("gt_diff")
    if diff:
        if not isinstance(diff, str):
            raise RowError("gt_diff", "must be a string (a unified diff)", "give the expert diff")
        files["expert.patch"] = ensure_newline(diff)
        expert["patch"] = "expert.patch"
    if isinstance(opt, str):
        expert["commit"] = opt

    setup: dict[str, Any] = {}
    install = as_list(row, "setup_commands", lines=True) + as_list(
        row, "install_commands", lines=True
    )
    if install:
        setup["install"] = install

    api = row.get("api")
    target = f"`{api}` in {repo}" if isinstance(api, str) and api else repo
    prompt = (
        f"Make {target} faster on the performance test below without changing its results. "
        "The test runs from .optimizer/; do not edit it. Hidden tests of the same API check "
        "that the results stay equivalent.\n\n"
        f"```python\n{ensure_newline(prob)}```\n"
    )
    data: dict[str, Any] = {
        "id": safe_id(iid),
        "kind": "repo",
        "title": f"GSO {iid}",
        "prompt": prompt,
        "source": {"git": f"https://github.com/{repo}", "commit": base},
        "setup": setup,
        # GSO's protocol: the test script times experiment() calls in one process
        "workload": {"script": "workload.py", "protocol": "warm"},
        "checks": checks,
        "expert": expert,
    }
    return Draft(id=data["id"], data=data, files=files)
