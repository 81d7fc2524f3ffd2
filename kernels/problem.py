"""A KernelBench problem file as a kernel task: ``optimizer run --kernel PROBLEM.py``.

The problem file is read as text (nothing here imports torch): it must define
``class Model(nn.Module)``, ``get_inputs()`` and ``get_init_inputs()`` at module level, as
KernelBench's files do. It must be committed in a git repository, where the winner lands:
the candidate is ``model_new.py`` beside it. The operators the reference's ``forward`` calls
become the task's ``forbid`` list, so the static checks refuse calling them; without a GPU
the judge checks small shapes (see :func:`tasks.importers.kernelbench.kernel_fields`).
"""

from __future__ import annotations

import re
from pathlib import Path

from sandbox.errors import UserError
from sandbox.source import file_at
from tasks.importers.kernelbench import check_problem, kernel_fields
from tasks.model import Kind, Task
from tasks.source import repo_root, resolve_commit


def kernel_task(problem: Path, base: str = "HEAD") -> Task:
    """The kernel task of a committed problem file, at ``base`` of its repository."""
    path = problem.expanduser().resolve()
    if not path.is_file():
        raise UserError(f"--kernel {problem} does not exist", "pass a KernelBench problem .py file")
    text = path.read_text(encoding="utf-8", errors="replace")
    check_problem(path, text)
    root = repo_root(path.parent)
    sha = resolve_commit(root, base)
    rel = path.relative_to(root).as_posix()
    if sha is None:
        raise UserError(f"{base!r} is not a commit in {root}", "commit the problem file first")
    if file_at(root, sha, rel) is None:
        raise UserError(
            f"{rel} is not committed at {base} in {root}", f"git add {rel} && git commit"
        )
    folder = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
    data = {
        "id": re.sub(r"[^A-Za-z0-9_.\-]+", "-", path.stem).strip("-.") or "kernel",
        "kind": Kind.KERNEL,
        "title": f"Triton kernel for {rel}",
        "prompt": (
            f"Write {folder}model_new.py defining class ModelNew(nn.Module), a faster drop-in "
            f"for Model in {rel}: the same constructor and forward() signature and the same "
            "outputs for any shape and values, computed by Triton kernels, not by the PyTorch "
            f"operators it replaces. {rel} is protected."
        ),
        "source": {"path": str(root), "commit": sha},
        "workload": {"command": "true"},
        "kernel": {"reference": rel, "candidate": f"{folder}model_new.py", **kernel_fields(text)},
    }
    return Task.model_validate(data).model_copy(update={"root": root})
