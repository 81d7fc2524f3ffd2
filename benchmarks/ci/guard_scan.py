"""CI benchmark: the static guard scanning a 200-file candidate diff (tasks/guard.py)."""

from tasks.guard import guard_violations, protected_violations

PATCH = ""


def setup() -> None:
    global PATCH
    hunks = []
    for f in range(200):
        added = "".join(f"+    value_{i} = compute({i}) * {f}  # step {i}\n" for i in range(15))
        hunks.append(
            f"diff --git a/pkg/mod_{f}.py b/pkg/mod_{f}.py\n--- a/pkg/mod_{f}.py\n"
            f"+++ b/pkg/mod_{f}.py\n@@ -1,2 +1,17 @@\n def run():\n{added}     return 0\n"
        )
    PATCH = "".join(hunks)


def workload() -> None:
    assert not guard_violations(PATCH)
    assert not protected_violations(PATCH, ["tests/", "conftest.py"])
