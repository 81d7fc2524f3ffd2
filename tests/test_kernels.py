"""The kernel judge (kernels/grader.py) on the built-in kernel tasks, for real: Triton's CPU
interpreter, the local sandbox (one test in Docker), three processes per grade.

Each defense is shown by a cheat that fails: the null kernels (zeros, a constant, a copy of
the input), a kernel off by one row, one that caches its output across calls, one that
mutates its input, the torch fallbacks in ten disguises, a tensor subclass, a patch that
touches the reference, and a harness function replaced at import.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.grade import Candidate, GradeOptions, GradeStatus, grade
from tasks.model import load_task
from tasks.source import expert_patch
from tests.conftest import require_kernels
from tests.kernel_cheats import CHEATS, FALLBACKS, TASK_IDS, cheat_source

require_kernels()

ROOT = Path(__file__).resolve().parents[1]
BUILTIN = ROOT / "tasks/suites/builtin"
LOCAL = GradeOptions(backend="local")
GLUE_OPS = {"empty", "empty_like", "copy_", "set_", "new_empty", "view", "contiguous",
            "clone", "_to_copy", "zeros", "empty_strided", "as_strided", "t"}  # fmt: skip


def new_file_patch(text: str, path: str = "model_new.py") -> str:
    """A git diff adding ``path`` with ``text``."""
    lines = text.splitlines()
    body = "".join(f"+{line}\n" for line in lines)
    return (f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n"
            f"+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n{body}")  # fmt: skip


def task(tid: str):
    return load_task(BUILTIN / tid)


@pytest.mark.parametrize("tid", TASK_IDS)
def test_every_expert_kernel_is_correct_and_no_null_kernel_would_pass(tid):
    t = task(tid)
    g = grade(t, Candidate(patch=expert_patch(t), agent="expert"), LOCAL)
    assert g.status is GradeStatus.OK and g.correct, g.reason + g.artifacts.get("error", "")
    k = g.kernel
    assert k is not None and k.interpreted and k.device == "cpu"
    spec = t.kernel
    assert k.cases >= spec.trials * len(spec.shapes_for(gpu=False)) * len(spec.distributions) >= 45
    assert k.launches >= 1 and set(k.torch_ops) <= GLUE_OPS, k.torch_ops
    assert k.nulls_passing == []  # zeros, the best constant, a copy of the input all fail
    assert g.measurement is None and "TRITON_INTERPRET=1" in k.timing_note


EXPECT = {  # cheat -> words the reason must hold
    "zeros": "wrong on", "constant": "wrong on", "copy": "wrong on",
    "off-by-one-row": "wrong on",
    "cache": "launched no Triton kernel",  # the second call returned the first's output
    "mutate-input": "input 0 was modified",
}  # fmt: skip


@pytest.mark.parametrize("cheat", CHEATS)
@pytest.mark.parametrize("tid", TASK_IDS)
def test_cheating_kernels_fail(tid, cheat):
    g = grade(task(tid), Candidate(patch=new_file_patch(cheat_source(tid, cheat))), LOCAL)
    assert not g.correct, f"{tid}/{cheat} passed"
    assert g.status is GradeStatus.FAILED_EQUIVALENCE, (g.status, g.reason)
    assert EXPECT[cheat] in g.reason, g.reason
    assert g.kernel is not None and g.kernel.torch_ops  # it ran, and was judged on its runs


def test_a_cache_that_still_launches_a_kernel_is_caught_by_its_values():
    text = cheat_source("softmax-rows", "cache")
    assert "            return hit\n" in text
    text = text.replace(
        "            return hit\n", "            _launch_dummy(x)\n            return hit\n"
    )
    text += DUMMY
    g = grade(task("softmax-rows"), Candidate(patch=new_file_patch(text)), LOCAL)
    assert not g.correct and "wrong on" in g.reason, g.reason


DUMMY = """


@triton.jit
def _touch(x_ptr, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    tl.load(x_ptr + offs, mask=offs < 1)


def _launch_dummy(x):
    _touch[(1,)](x, BLOCK=16)
"""


@pytest.mark.parametrize("name", sorted(FALLBACKS))
def test_torch_fallbacks_are_refused_before_they_run(name):
    g = grade(task("softmax-rows"), Candidate(patch=new_file_patch(FALLBACKS[name])), LOCAL)
    assert g.status is GradeStatus.REJECTED_GUARD, (name, g.status, g.reason)
    assert g.reason.startswith("static checks refused the kernel: model_new.py:"), g.reason
    assert g.kernel is None  # refused statically: nothing ran


def _unguarded(tmp_path: Path) -> Path:
    """softmax-rows with no forbid list: only the run-time trace stands in the way."""
    dest = tmp_path / "softmax"
    shutil.copytree(BUILTIN / "softmax-rows", dest)
    toml = dest / "task.toml"
    text = toml.read_text()
    start = text.index("forbid = ")
    toml.write_text(text[:start] + "forbid = []\n" + text[text.index("\n", start) + 1 :])
    return dest


PLAIN = """import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return {body}
"""


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("torch.softmax(x, dim=-1)", "aten._softmax"),  # the op itself, by another name
        (
            "(x - x.amax(-1, keepdim=True)).exp() / (x - x.amax(-1, keepdim=True)).exp()"
            ".sum(-1, keepdim=True)",
            "only allocation, views and copies",
        ),  # fmt: skip
        ("x.clone()", "launched no Triton kernel"),
    ],
)
def test_the_run_time_trace_refuses_what_the_static_checks_let_through(tmp_path, body, words):
    t = load_task(_unguarded(tmp_path))
    g = grade(t, Candidate(patch=new_file_patch(PLAIN.format(body=body))), LOCAL)
    assert not g.correct and words in g.reason, g.reason


def test_a_tensor_subclass_output_is_refused(tmp_path):
    text = PLAIN.format(body="torch.empty_like(x).as_subclass(Lazy)") + (
        "\n\nclass Lazy(torch.Tensor):\n    pass\n"
    )
    g = grade(load_task(_unguarded(tmp_path)), Candidate(patch=new_file_patch(text)), LOCAL)
    assert not g.correct and "not a plain torch.Tensor" in g.reason, g.reason


def test_a_patch_may_change_only_the_candidate_file():
    t = task("softmax-rows")
    patch = expert_patch(t) + new_file_patch("x = 1\n", "reference_helper.py")
    g = grade(t, Candidate(patch=patch), LOCAL)
    assert g.status is GradeStatus.REJECTED_PROTECTED and "reference_helper.py" in g.reason
    edit = ("diff --git a/reference.py b/reference.py\n--- a/reference.py\n+++ b/reference.py\n"
            "@@ -1 +1 @@\n-x\n+y\n")  # fmt: skip
    g = grade(t, Candidate(patch=edit), LOCAL)
    assert g.status is GradeStatus.REJECTED_PROTECTED and "reference.py" in g.reason


def test_no_kernel_file_is_a_failure_not_a_crash():
    g = grade(task("softmax-rows"), Candidate(patch=""), LOCAL)
    assert not g.correct and "there is no model_new.py" in g.reason


def test_seeds_are_fresh_per_grade_and_never_in_the_candidates_files():
    from kernels.grader import _job

    spec = task("softmax-rows").kernel
    a, b = _job(spec, gpu=False, time=False), _job(spec, gpu=False, time=False)
    assert [c["seed"] for c in a["cases"]] != [c["seed"] for c in b["cases"]]
    assert a["init_seed"] != b["init_seed"] or a["cases"][0]["seed"] != b["cases"][0]["seed"]


def test_a_harness_function_replaced_at_import_is_seen_by_the_child(tmp_path):
    """Defense in depth below the static checks: the candidate process reports any of the
    judge's timing and comparison functions that candidate code replaced."""
    from kernels.grader import CHILD, _job

    work = tmp_path / "work"
    (work / ".optimizer/kernel").mkdir(parents=True)
    shutil.copy(BUILTIN / "softmax-rows/repo/reference.py", work / "reference.py")
    spec = task("softmax-rows").kernel
    job = _job(spec.model_copy(update={"trials": 1, "shapes": [{}], "distributions": ["normal"]}),
               gpu=False, time=False)  # fmt: skip
    (work / ".optimizer/kernel/job.json").write_text(json.dumps(job))
    (work / ".optimizer/kernel/child.py").write_bytes(CHILD)
    run = lambda mode: subprocess.run([sys.executable, ".optimizer/kernel/child.py", mode],  # noqa: E731
                                      cwd=work, capture_output=True, text=True,
                                      env={**os.environ, "TRITON_INTERPRET": "1"})  # fmt: skip
    assert run("reference").returncode == 0
    shutil.copy(work / ".optimizer/kernel/out/inputs.pt", work / ".optimizer/kernel/inputs.pt")
    info = json.loads((work / ".optimizer/kernel/out/ref.json").read_text())
    job["outputs"] = info["outputs"]
    (work / ".optimizer/kernel/job.json").write_text(json.dumps(job))
    expert = expert_patch(task("softmax-rows"))
    source = "".join(line[1:] + "\n" for line in expert.splitlines()
                     if line.startswith("+") and not line.startswith("+++"))  # fmt: skip
    patched = source + "\ntorch.allclose = lambda *a, **k: True\ntorch.cuda.synchronize = int\n"
    (work / "model_new.py").write_text(patched)
    done = run("candidate")
    assert done.returncode == 0, done.stderr
    report = json.loads((work / ".optimizer/kernel/out/report.json").read_text())
    assert {"torch.allclose", "torch.cuda.synchronize"} <= set(report["tampered"])
    assert done.stdout == ""  # results travel in files only


def test_validate_runs_kernel_tasks_and_refuses_a_problem_a_null_kernel_passes(tmp_path):
    from tasks.validate import validate_task

    ok = validate_task(task("bias-gelu"), LOCAL)
    assert ok.status == "ok" and ok.expert and ok.expert.correct, ok.reason
    assert "no CUDA device" in ok.reason
    loose = tmp_path / "loose"
    shutil.copytree(BUILTIN / "softmax-rows", loose)
    toml = loose / "task.toml"
    toml.write_text(toml.read_text().replace("atol = 1e-4", "atol = 1.0"))
    bad = validate_task(load_task(loose), LOCAL)
    assert bad.status == "failed" and "null kernel" in bad.reason and "zeros" in bad.reason


@pytest.mark.docker
def test_the_expert_kernel_in_docker():
    t = task("softmax-rows")
    g = grade(t, Candidate(patch=expert_patch(t)), GradeOptions(backend="docker"))
    assert g.correct, g.reason + g.artifacts.get("error", "")
    bad = grade(t, Candidate(patch=new_file_patch(cheat_source("softmax-rows", "zeros"))),
                GradeOptions(backend="docker"))  # fmt: skip
    assert not bad.correct and "wrong on" in bad.reason


@pytest.mark.docker
def test_gpu_passthrough_without_the_nvidia_runtime_says_how_to_fix_it(tmp_path):
    from sandbox import Limits, Source, open_sandbox
    from sandbox.errors import SandboxError
    from sandbox.gpu import docker_gpu_problem

    problem = docker_gpu_problem()
    assert problem and "NVIDIA Container Toolkit" in problem  # this engine has no such runtime
    repo = tmp_path / "r"
    repo.mkdir()
    (repo / "f").write_text("x\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-qm", "x"], check=True)  # fmt: skip
    with (
        open_sandbox(Source(repo=repo), "docker", limits=Limits(gpus=True)) as sb,
        pytest.raises(SandboxError) as err,
    ):
        sb.run(["true"])
    assert "NVIDIA Container Toolkit" in err.value.fix


def test_evaluate_on_a_kernel_task_scores_pass_at_1_and_says_why_no_sr(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copytree(BUILTIN / "bias-gelu", suite / "bias-gelu")
    out = tmp_path / "out"
    env = {**os.environ, "COLUMNS": "200"}
    for agent in ("oracle", "noop"):
        done = subprocess.run(
            [sys.executable, "-m", "optimizer", "evaluate", "--suite", str(suite), "--agent",
             agent, "--sandbox", "local", "--out", str(out)],
            capture_output=True, text=True, env=env, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    groups = {g["label"]: g for g in summary["groups"]}
    assert groups["oracle"]["scores"]["pass@1"]["value"] == 1.0, groups["oracle"]["scores"]
    assert groups["noop"]["scores"]["pass@1"]["value"] == 0.0  # no kernel is not a kernel
    (excluded,) = summary["sr_excluded"]
    assert excluded["task_id"] == "bias-gelu" and "no CUDA device" in excluded["reason"]


# -- a KernelBench problem as KernelBench writes them: GPU-sized, sizes in the constructor -----
SCALED = '''import torch
import torch.nn as nn


class Model(nn.Module):
    """relu(x * scale) then a max-pool of width {pool}: the constructor takes a size."""

    def __init__(self, features):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(features))
        self.pool = nn.MaxPool1d({pool})

    def forward(self, x):
        return self.pool(torch.relu(x * self.scale).unsqueeze(1)).squeeze(1)


batch_size = 4096 * 4
features = 393216
input_shape = (features,)


def get_inputs():
    return [torch.rand(batch_size, *input_shape)]


def get_init_inputs():
    return [features]
'''

SCALED_NEW = """import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _scaled_relu_pool(x_ptr, s_ptr, y_ptr, n_cols, n_out, POOL: tl.constexpr,
                      BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < n_out
    best = tl.full([BLOCK], float("-inf"), tl.float32)
    for p in range(POOL):
        src = cols * POOL + p
        x = tl.load(x_ptr + row * n_cols + src, mask=mask, other=0.0)
        s = tl.load(s_ptr + src, mask=mask, other=0.0)
        best = tl.maximum(best, tl.maximum(x * s, 0.0))
    tl.store(y_ptr + row * n_out + cols, best, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(features))
        self.pool = {pool}

    def forward(self, x):
        x = x.contiguous()
        n_out = x.shape[1] // self.pool
        y = torch.empty((x.shape[0], n_out), device=x.device, dtype=x.dtype)
        if y.numel():
            grid = (x.shape[0], triton.cdiv(n_out, 64))
            _scaled_relu_pool[grid](x, self.scale, y, x.shape[1], n_out, POOL=self.pool,
                                    BLOCK=64)
        return y
"""


def _kernelbench(tmp_path: Path, pool: int):
    from tasks.suite import load_suite

    level = tmp_path / f"kb{pool}" / "KernelBench" / "level1"
    level.mkdir(parents=True)
    (level / "1_Scaled_ReLU_Pool.py").write_text(SCALED.replace("{pool}", str(pool)))
    return load_suite(level.parents[1], cache_dir=tmp_path / "cache")[0]


def test_a_kernelbench_problem_runs_on_small_shapes_with_a_model_per_shape(tmp_path):
    """GPU-sized (16384 x 393216: 25 GB) and a constructor that takes a size: without a GPU
    the judge checks two small derived shapes, the second odd, and builds each side's model
    at each shape with the same seed. The expert-style kernel passes; the op itself fails."""
    t = _kernelbench(tmp_path, pool=2)
    k = t.kernel
    assert k.cpu_shapes and len(k.cpu_shapes) == 2 and k.skip_invalid_shapes
    assert k.cpu_shapes[1]["features"] % 2 == 1 and isinstance(k.cpu_shapes[0]["input_shape"], list)
    assert {"relu", "max_pool1d", "max_pool2d_with_indices"} <= set(
        k.forbid
    ) and "pool" not in k.forbid
    g = grade(t, Candidate(patch=new_file_patch(SCALED_NEW.replace("{pool}", "2"))), LOCAL)
    assert g.correct, g.reason + g.artifacts.get("error", "")
    assert g.kernel is not None and g.kernel.shapes == 2 and g.kernel.cases == 5 * 2 * 3
    lazy = (
        SCALED_NEW.replace("{pool}", "2")
        .replace("        x = x.contiguous()\n", "        return self.ref(x)\n")
        .replace(
            "        self.pool = 2\n", "        self.pool = 2\n        self.ref = nn.MaxPool1d(2)\n"
        )
    )
    g = grade(t, Candidate(patch=new_file_patch(lazy)), LOCAL)
    assert g.status is GradeStatus.REJECTED_GUARD and "nn.MaxPool1d" in g.reason, g.reason


def test_a_derived_shape_the_reference_rejects_is_skipped_and_said(tmp_path):
    """A pool of 40 is wider than the odd derived shape's rows (25): that shape is skipped
    and reported; the other still decides."""
    t = _kernelbench(tmp_path, pool=40)
    said: list[str] = []
    g = grade(t, Candidate(patch=new_file_patch(SCALED_NEW.replace("{pool}", "40"))), LOCAL,
              progress=said.append)  # fmt: skip
    assert g.correct, g.reason + g.artifacts.get("error", "")
    assert g.kernel is not None and g.kernel.shapes == 1
    assert any("skipped: the reference itself fails" in line for line in said), said
