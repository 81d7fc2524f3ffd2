"""Each built-in expert Triton kernel on a CUDA GPU, as the kernel judge times it, beside a
plain in-process ``triton.testing.do_bench`` of the same call (what a user would run).

    python benchmarks/kernels_gpu.py [--sandbox local|docker] [--tasks softmax-rows,matmul]

For every kernel task of the ``builtin`` suite the expert is graded (``optimizer grade``'s
judge: correctness over every shape, distribution and trial, then do_bench medians with the
L2 flushed and a fresh input set per call), giving its median time against eager PyTorch and
``torch.compile``; the last rows are KernelBench's fast_1 over the tasks (against both) and
the geometric-mean speedup. The ``plain`` columns time the same expert and eager module in
this process with ``do_bench`` on one fixed input, for comparison. Without a GPU it says so
and exits 2: under Triton's CPU interpreter times are meaningless.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tasks.grade import Candidate, GradeOptions, grade
from tasks.model import Kind
from tasks.source import expert_patch, task_source
from tasks.suite import load_suite

out = Console(highlight=False)


def plain_do_bench(task) -> tuple[float, float] | None:
    """(eager ms, expert ms) by do_bench in this process, on the problem's own inputs."""
    import torch
    from triton.testing import do_bench

    with tempfile.TemporaryDirectory() as tmp:
        src = task_source(task)
        subprocess.run(["git", "-C", str(src.repo), "worktree", "add", "-q", "--detach", tmp,
                        src.rev], check=True, capture_output=True)  # fmt: skip
        try:
            subprocess.run(["git", "-C", tmp, "apply"], input=expert_patch(task), text=True,
                           check=True, capture_output=True)  # fmt: skip
            sys.path.insert(0, tmp)
            ref = _load(Path(tmp) / task.kernel.reference, "reference_bench")
            new = _load(Path(tmp) / task.kernel.candidate, "model_new_bench")
            inputs = [v.cuda() if isinstance(v, torch.Tensor) else v for v in ref.get_inputs()]
            eager = ref.Model(*ref.get_init_inputs()).cuda()
            expert = new.ModelNew(*ref.get_init_inputs()).cuda()
            with torch.no_grad():
                t_eager = do_bench(lambda: eager(*inputs), return_mode="median")
                t_new = do_bench(lambda: expert(*inputs), return_mode="median")
            return float(t_eager), float(t_new)
        finally:
            sys.path.remove(tmp)
            subprocess.run(["git", "-C", str(src.repo), "worktree", "remove", "--force", tmp],
                           capture_output=True)  # fmt: skip


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sandbox", default="local", choices=["local", "docker"])
    parser.add_argument("--tasks", default="", help="Comma-separated task ids (default: all).")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        out.print("torch is not installed: pip install -e '.[kernels]'")
        return 2
    if not torch.cuda.is_available():
        out.print("no CUDA device: Triton kernels would run in its CPU interpreter, whose times "
                  "say nothing about GPU speed; run this on a host with an NVIDIA GPU")  # fmt: skip
        return 2
    wanted = {t for t in args.tasks.split(",") if t}
    tasks = [t for t in load_suite("builtin") if t.kind is Kind.KERNEL]
    tasks = [t for t in tasks if not wanted or t.id in wanted]
    table = Table(title=f"built-in expert kernels on {torch.cuda.get_device_name()}")
    for col in ("task", "correct", "eager ms", "compile ms", "kernel ms", "vs eager",
                "vs compile", "plain eager ms", "plain kernel ms", "flags"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("task", "flags") else "right")
    speedups: list[tuple[bool, float | None, float | None]] = []
    for task in tasks:
        g = grade(task, Candidate(patch=expert_patch(task), agent="expert"),
                  GradeOptions(backend=args.sandbox))  # fmt: skip
        t = g.kernel.timing if g.kernel else None
        plain = plain_do_bench(task) if g.correct else None
        speedups.append((g.correct, t and t.speedup_eager, t and t.speedup_compile))
        table.add_row(
            task.id, "yes" if g.correct else f"no: {g.reason[:60]}",
            _ms(t and t.eager_ms), _ms(t and t.compile_ms), _ms(t and t.kernel_ms),
            _x(t and t.speedup_eager), _x(t and t.speedup_compile),
            _ms(plain and plain[0]), _ms(plain and plain[1]),
            "; ".join(t.flagged) if t else (g.kernel.timing_note if g.kernel else ""),
        )  # fmt: skip
    out.print(table)
    n = len(speedups) or 1
    for label, i in (("eager", 1), ("torch.compile", 2)):
        fast1 = sum(1 for s in speedups if s[0] and s[i] and s[i] > 1.0) / n
        correct = [s[i] for s in speedups if s[0] and s[i]]
        geo = math.exp(sum(math.log(v) for v in correct) / len(correct)) if correct else None
        out.print(f"fast_1 against {label}: {fast1:.2f}; geometric-mean speedup: {_x(geo)}")
    return 0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


if __name__ == "__main__":
    sys.exit(main())
