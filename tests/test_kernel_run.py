"""`optimizer run --kernel PROBLEM.py`: the agent loop writing a Triton kernel, with the real
CLI, the real `openai` client against a scripted chat server on 127.0.0.1, a real git repo
and the real kernel judge (local sandbox, Triton's CPU interpreter)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.chat_server import ScriptedServer, call, reply
from tests.conftest import require_kernels
from tests.test_run import branches, of, optimizer, run_dir

require_kernels()

BUILTIN = Path(__file__).parents[1] / "tasks/suites/builtin/softmax-rows"
#: A softmax without the max subtraction: right on small values, inf/NaN on large logits.
NAIVE = """import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _softmax(x_ptr, y_ptr, n_cols, stride, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    mask = offs < n_cols
    x = tl.load(x_ptr + row * stride + offs, mask=mask, other=-float("inf"))
    e = tl.exp(x)
    tl.store(y_ptr + row * stride + offs, e / tl.sum(e, axis=0), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        block = triton.next_power_of_2(x.shape[1])
        _softmax[(x.shape[0],)](x, y, x.shape[1], x.stride(0), BLOCK=block)
        return y
"""
FIX = {"search": "    e = tl.exp(x)\n", "replace": "    e = tl.exp(x - tl.max(x, axis=0))\n"}


@pytest.fixture
def kernel_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "proj"
    (repo / "problems").mkdir(parents=True)
    (repo / "problems/softmax.py").write_text((BUILTIN / "repo/reference.py").read_text())
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-qm", "problem"], check=True)  # fmt: skip
    (repo / "notes.txt").write_text("untracked\n")
    return repo


def test_the_agent_writes_a_kernel_and_the_judges_feedback_reaches_it(kernel_repo, tmp_path):
    path = "problems/model_new.py"
    script = [
        reply("reading", [call("read_file", path="problems/softmax.py")]),
        reply("writing", [call("create_file", path=path, content=NAIVE)]),
        reply("checking", [call("check_kernel")]),
        reply("fixing", [call("edit", path=path, **FIX)]),
        reply("checking", [call("check_kernel")]),
        reply("done", [call("submit", summary="row softmax in one program per row")]),
    ]
    before = snapshot_plain(kernel_repo)
    runs = tmp_path / "runs"
    with ScriptedServer(script) as srv:
        done = optimizer(
            "run", "--kernel", str(kernel_repo / "problems/softmax.py"), "--base-url",
            srv.base_url, "--model", "scripted-model", "--sandbox", "local", "--no-ideas",
            "--rounds", "0", "--candidates", "1", "--runs-dir", str(runs), "--retries", "0",
        )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 correct kernel" in done.stdout and "GPU" in done.stdout, done.stdout
    system = srv.requests[0]["messages"][0]["content"]
    assert "Triton" in system and "check_kernel" in system
    tools = {t["function"]["name"] for t in srv.requests[0]["tools"]}
    assert "check_kernel" in tools and "run_tests" not in tools and "time_workload" not in tools
    checks = [t for t in of(run_dir(runs), "tool_call") if t["name"] == "check_kernel"]
    first, second = (c["observation"] for c in checks)
    assert first.startswith("not correct") and "NaN/inf" in first, first
    assert second.startswith("correct:"), second
    (grade,) = of(run_dir(runs), "grade")
    assert grade["correct"] and grade["grade"]["kernel"]["interpreted"]
    assert branches(kernel_repo) == [] and snapshot_plain(kernel_repo) == before


def snapshot_plain(repo: Path) -> dict[str, str]:
    """The user's checkout (as test_run's snapshot, minus its example's files)."""
    git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], capture_output=True,  # noqa: E731
                                    text=True, check=True).stdout  # fmt: skip
    return {"head": git("rev-parse", "HEAD"), "status": git("status", "--porcelain"),
            "notes": (repo / "notes.txt").read_text()}  # fmt: skip


def test_a_problem_file_that_is_not_kernelbench_is_one_line(kernel_repo, tmp_path):
    bad = kernel_repo / "problems/bad.py"
    bad.write_text("import torch\n")
    done = optimizer("run", "--kernel", str(bad), "--model", "m", "--base-url",
                     "http://127.0.0.1:9/v1", "--runs-dir", str(tmp_path / "runs"))  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "class Model" in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_forbidden_ops_come_from_the_reference_forward():
    from tasks.importers.kernelbench import forbidden_ops

    text = (BUILTIN / "repo/reference.py").read_text()
    assert "softmax" in forbidden_ops(text)
    mm = "class Model:\n    def forward(self, a, b):\n        return (a @ b).view(-1)\n"
    assert {"matmul", "mm"} <= set(forbidden_ops(mm)) and "view" not in forbidden_ops(mm)
    conv = ("class Model:\n    def __init__(self):\n        self.conv = nn.Conv2d(3, 8, 3)\n"
            "    def forward(self, x):\n        return self.conv(x).relu()\n")  # fmt: skip
    assert {"conv2d", "convolution", "relu"} <= set(forbidden_ops(conv))
    assert "conv" not in forbidden_ops(conv)  # an attribute's name is not an operator
