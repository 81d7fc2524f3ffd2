"""Ctrl-C while the CLI is still importing (a second or more, several under load, before
any handler of ours is set) ends with one line and exit code 130, not a traceback."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import sigint_default


def _loaded(pid: int, library: str) -> bool:
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def test_ctrl_c_during_the_imports_is_one_line_and_exit_130(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "optimizer", "sandbox", "run", str(tmp_path), "--", "true"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    # pydantic's core loads early in the CLI's imports (the interpreter itself is up by
    # then: a signal during its own start-up is Python's business, not ours)
    while not _loaded(proc.pid, "pydantic_core"):
        assert proc.poll() is None and time.monotonic() < deadline, "the CLI never started"
        time.sleep(0.005)
    proc.send_signal(2)  # SIGINT, as Ctrl-C sends
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    assert proc.returncode == 130 and err.strip().splitlines()[-1].startswith("interrupted"), err
    assert "nothing ran" in err, err  # the signal came while importing, as meant
