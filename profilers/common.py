"""Installing the harness in a sandbox copy, running it, and reading its result file."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from profilers.models import Workload
from sandbox import Limits, RunResult, Sandbox
from sandbox.errors import telling_line

HARNESS_DIR = ".optimizer"
HARNESS = f"{HARNESS_DIR}/harness.py"
#: Where a workload file from outside the repository is put, the same for every revision.
COPIED_WORKLOAD = f"{HARNESS_DIR}/workload.py"
#: Where the harness writes results. Not under HARNESS_DIR: in docker, directories that
#: ``write_file`` creates implicitly belong to root, so the harness makes this one itself.
OUT_DIR = ".optimizer-out"
_HARNESS_SOURCE = Path(__file__).with_name("harness.py")


class ProfileError(Exception):
    """A measurement failed: the workload crashed, timed out, or left no valid result.

    ``cause`` is one line: the run's status and the last line of its stderr.
    """

    def __init__(self, cause: str, result: RunResult | None = None) -> None:
        self.cause = cause
        self.result = result
        super().__init__(cause)


def install(sb: Sandbox, workload: Workload, file_bytes: bytes | None = None) -> Workload:
    """Write the harness into the copy (and the workload file, when it comes from outside).

    Returns the workload as the harness should see it.
    """
    sb.write_file(HARNESS, _HARNESS_SOURCE.read_bytes())
    if file_bytes is not None:
        sb.write_file(COPIED_WORKLOAD, file_bytes)
        return Workload(kind="file", target=COPIED_WORKLOAD)
    return workload


def last_line(text: str) -> str:
    """The line of a failed run's output that says what went wrong (``telling_line``)."""
    return telling_line(text)


def run_harness(
    sb: Sandbox,
    mode: str,
    workload: Workload,
    *,
    python: str = "python3",
    limits: Limits | None = None,
    env: dict[str, str] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run the harness once, in a fresh process, and return its parsed result.

    Raises ProfileError when the run fails or its result file is missing or malformed.
    """
    nonce = secrets.token_hex(8)
    out = f"{OUT_DIR}/result-{mode}.json"
    cfg = {"mode": mode, "kind": workload.kind, "target": workload.target, "out": out}
    cfg.update(nonce=nonce, cgdir=f"{OUT_DIR}/callgrind", **options)
    if workload.name is not None:
        cfg["name"] = workload.name
    r = sb.run([python, HARNESS, json.dumps(cfg)], limits=limits, env=env, collect=[out])
    raw = r.files.get(out)
    data: Any = None
    if raw is not None:
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
    error = data.get("error") if isinstance(data, dict) else None
    if not r.ok:
        why = r.reason or r.status.value
        detail = last_line(r.stderr) or error or ""
        raise ProfileError(f"{r.status.value}: {why}" + (f": {detail}" if detail else ""), r)
    if not isinstance(data, dict) or data.get("nonce") != nonce:
        what = "missing" if raw is None else "malformed"
        detail = last_line(r.stderr)
        raise ProfileError(
            f"garbage: the harness result file is {what}" + (f": {detail}" if detail else ""), r
        )
    if data.get("ok") is not True:
        raise ProfileError(f"error: {error or 'the harness reported a failure'}", r)
    data["process_s"] = r.duration_s  # the host's clock on the whole process, not the run's
    return data
