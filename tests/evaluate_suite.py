"""A small suite for `optimizer evaluate` tests: small program tasks with an expert each.

Both count instructions (deterministic), so an expert measured twice gives the same speedup
to the instruction and SR comes out at exactly 1 however loaded the machine is. Each task has
a hidden check on another input, which a candidate that hard-codes the workload's answer fails.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

SQUARES_SLOW = """import sys
n = int(sys.stdin.read())
total = 0
for i in range(n):
    total += i * i
print(total)
"""
SQUARES_FAST = """import sys
n = int(sys.stdin.read())
print((n - 1) * n * (2 * n - 1) // 6)
"""
EVENS_SLOW = """import sys
n = int(sys.stdin.read())
count = 0
for i in range(n):
    if i % 2 == 0:
        count += 1
print(count)
"""
EVENS_FAST = """import sys
n = int(sys.stdin.read())
print((n + 1) // 2)
"""

TRIANGLE_SLOW = """import sys
n = int(sys.stdin.read())
total = 0
for i in range(n):
    total += i
print(total)
"""
TRIANGLE_FAST = """import sys
n = int(sys.stdin.read())
print(n * (n - 1) // 2)
"""

TOML = """id = "{id}"
kind = "program"
title = "{id}"
prompt = "Make main.py faster; keep its output identical for every n >= 0."

[source]
path = "repo"

[workload]
command = "python3 main.py < input.txt"
metric = "instructions"

[[checks]]
name = "workload-output"
command = "python3 main.py"
stdin = "repo/input.txt"
compare = "exact"

[[checks]]
name = "hidden-other-n"
command = "python3 main.py"
stdin = "hidden/other.in"
hidden = true
compare = "exact"

[expert]
patch = "expert.patch"
"""


def unified(path: str, old: str, new: str) -> str:
    """A minimal git-style patch replacing the whole of ``path``."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    body = [f"-{line}" for line in old_lines] + [f"+{line}" for line in new_lines]
    return (
        f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
        f"@@ -1,{len(old_lines)} +1,{len(new_lines)} @@\n" + "\n".join(body) + "\n"
    )


TASKS = {
    "squares": (SQUARES_SLOW, SQUARES_FAST, "200000\n", "777\n"),
    "evens": (EVENS_SLOW, EVENS_FAST, "300000\n", "12345\n"),
    "triangles": (TRIANGLE_SLOW, TRIANGLE_FAST, "300000\n", "4321\n"),
}


def make_suite(root: Path, ids: tuple[str, ...] = ("evens", "squares")) -> Path:
    """Write the tasks ``ids`` under ``root`` and return the folder."""
    for task_id in ids:
        slow, fast, workload, other = TASKS[task_id]
        folder = root / task_id
        (folder / "repo").mkdir(parents=True)
        (folder / "hidden").mkdir()
        (folder / "repo" / "main.py").write_text(slow)
        (folder / "repo" / "input.txt").write_text(workload)
        (folder / "hidden" / "other.in").write_text(other)
        (folder / "expert.patch").write_text(unified("main.py", slow, fast))
        (folder / "task.toml").write_text(TOML.format(id=task_id))
    return root


def hardcoded(task_id: str) -> str:
    """A cheat: print the workload's answer without computing anything."""
    slow, _fast, workload, _other = TASKS[task_id]
    done = subprocess.run(["python3", "-c", slow], input=workload, capture_output=True, text=True)
    return unified("main.py", slow, f"print({done.stdout.strip()})\n")
