"""Run main.py on every case in tests/cases/ and compare its output with the .out file."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES = sorted((ROOT / "tests" / "cases").glob("*.in"))


def test_there_are_cases():
    assert CASES


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_case(case):
    expected = case.with_suffix(".out").read_text()
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py")],
        input=case.read_bytes(),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split("\n") == expected.split("\n")
