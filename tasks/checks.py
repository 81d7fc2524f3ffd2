"""Output equivalence: a check's output on the candidate must match the baseline's.

The baseline's outputs are taken once (``tasks.baseline``); each candidate run starts from
the candidate's pristine tree. A check compares stdout, or a file the command writes,
``exact``, by ``lines``, ``numeric`` (rtol/atol), or by the command's own ``exit`` status
(GSO's ``--reference`` run on the base, then ``--eqcheck`` on the candidate).
"""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath

from sandbox import Limits, Sandbox
from tasks.grade import CheckResult
from tasks.model import TASK_FILE, Check, Task, TaskError

INPUTS_DIR = ".optimizer/inputs"
#: Where a reference run's results (all of .optimizer/) travel to the candidate's run.
REFERENCE_TAR = ".optimizer-out/reference.tar"


def input_path(task: Task, rel: str) -> str:
    """Where a task-directory file goes in the work dir: ``.optimizer/inputs/`` + its path
    relative to the task directory, so ``hidden/a/x.txt`` and ``hidden/b/x.txt`` both keep
    theirs and a check script finds its data files beside it as it did in the task folder."""
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts:
        raise TaskError(
            f"{task.root / TASK_FILE}: input file {rel} is outside the task directory",
            "give a path relative to the task directory, without '..'",
        )
    return f"{INPUTS_DIR}/{path}"


def input_files(task: Task) -> dict[str, bytes]:
    """The task-directory files of every check and hidden workload, at their work-dir paths."""
    rels = [rel for check in task.checks for rel in check.files]
    rels += [rel for h in task.workload.hidden for rel in h.files]
    return {input_path(task, rel): task.file(rel).read_bytes() for rel in rels}


def check_env(sb: Sandbox, env: dict[str, str]) -> dict[str, str]:
    """A check's variables: the task's, with the work dir first on ``sys.path``, so a check
    script under ``.optimizer/inputs/`` imports the code under test without fixing its path."""
    path = f"{sb.workdir}:{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(sb.workdir)
    return {**env, "PYTHONPATH": path}


def run_check(
    task: Task, check: Check, sb: Sandbox, limits: Limits, env: dict[str, str],
    reference: bytes | None = None,
) -> tuple[str | None, str]:  # fmt: skip
    """Run a check's command once; (its output, or None when the run failed; why)."""
    stdin = task.file(check.stdin).read_bytes() if check.stdin else None
    command, files = check.command, {}
    if check.compare == "exit" and reference is not None:
        command = f"tar -xf {REFERENCE_TAR} && ({check.command})"
        files = {REFERENCE_TAR: reference}
    collect = [check.output] if check.output else []
    run = sb.run(
        command, limits=limits, env=check_env(sb, env), stdin=stdin, collect=collect, files=files
    )
    if not run.ok:
        return None, run.reason
    if check.output:
        return run.files.get(check.output, b"").decode(errors="replace"), ""
    return run.stdout, ""


def run_reference(
    check: Check, sb: Sandbox, limits: Limits, env: dict[str, str]
) -> tuple[bytes | None, str]:
    """Run a check's reference command on the base; the .optimizer/ it leaves, as a tar."""
    assert check.reference_command
    command = (
        f"({check.reference_command}) && mkdir -p .optimizer-out && tar -cf {REFERENCE_TAR} "
        ".optimizer"
    )
    run = sb.run(command, limits=limits, env=check_env(sb, env), collect=[REFERENCE_TAR])
    if not run.ok:
        return None, f"the reference run failed on the base: {run.reason}"
    return run.files.get(REFERENCE_TAR), ""


def judge_check(task: Task, check: Check, base_output: str, cand_output: str) -> CheckResult:
    same = outputs_match(base_output, cand_output, check)
    if same and check.expected:
        same = outputs_match(
            task.file(check.expected).read_text(),
            cand_output,
            check.model_copy(update={"compare": "lines"}),
        )
    return CheckResult(
        name=check.name, hidden=check.hidden, passed=same, detail="" if same else "outputs differ"
    )


_TOKEN_SPLIT = re.compile(r"[\s,()\[\]{}:;|=]+")


def outputs_match(expected: str, actual: str, check: Check) -> bool:
    """Compare two outputs by the check's rule.

    ``exact``: byte for byte. ``lines``: line by line, trailing space ignored. ``numeric``:
    token by token (split on spaces and punctuation), numbers within rtol/atol, NaN == NaN.
    ``exit``: the command's exit status already decided (both outputs are ignored).
    """
    if check.compare == "exit":
        return True
    if check.compare == "exact":
        return expected == actual
    if check.compare == "lines":
        return _lines(expected) == _lines(actual)
    a = [t for t in _TOKEN_SPLIT.split(expected) if t]
    b = [t for t in _TOKEN_SPLIT.split(actual) if t]
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        try:
            fx, fy = float(x.strip("'\"")), float(y.strip("'\""))
        except ValueError:
            return False
        if math.isnan(fx) and math.isnan(fy):
            continue
        if not math.isclose(fx, fy, rel_tol=check.rtol, abs_tol=check.atol):
            return False
    return True


def _lines(text: str) -> list[str]:
    return [ln.rstrip() for ln in text.strip().splitlines()]
