"""`optimizer demo`: the whole loop with no key and no network, in a couple of minutes.

A bundled example library (``optimizer/demo/example``: word statistics written slowly) is
copied into a temporary git repository, and ``optimizer run`` optimizes it, replaying a
recorded model session (``optimizer/demo/session.jsonl``) instead of asking a model: the
hotspot profile, an idea stage, one candidate that breaks a test, one that is much faster
with a hunk that does not earn its keep, sandbox grading, confirmation, minimization and a
commit on a new branch of the temporary copy. With no Docker engine it runs in the local
sandbox, and says so.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from optimizer.optimize import Outcome, RunSpec, start
from optimizer.search import UI, SearchSettings
from sandbox import Backend

DEMO = Path(__file__).parent / "demo"
EXAMPLE = DEMO / "example"
SESSION = DEMO / "session.jsonl"


def make_repo(dest: Path) -> Path:
    """A fresh git repository holding the example, committed once."""
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = ["-c", "user.name=optimizer demo", "-c", "user.email=demo@localhost"]
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        [*env, "commit", "-q", "-m", "textstats: word statistics"],
    ):
        subprocess.run(["git", "-C", str(dest), *args], check=True, capture_output=True)
    return dest


def run_demo(
    ui: UI, *, where: Path | None = None, backend: Backend = "auto", runs_dir: Path | None = None
) -> Outcome:
    """Copy the example, optimize it from the recording, commit on a new branch."""
    parent = Path(tempfile.mkdtemp(prefix="optimizer-demo-", dir=where))
    repo = make_repo(parent / "textstats")
    ui.say(f"example repository: {repo}")
    settings = SearchSettings(
        candidates=2, rounds=0, metric="wall", backend=backend, repeats=8, budget_s=20
    )
    spec = RunSpec(
        repo=str(repo),
        workload="bench.py",
        tests="python3 -m pytest -q",
        model="demo (replay)",
        replay=str(SESSION),
        settings=settings,
    )
    return start(spec, None, runs_dir or parent / "runs", ["demo"], ui)
