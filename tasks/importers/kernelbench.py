"""KernelBench problem folders (``level1/23_Softmax.py``, ...) -> kernel tasks.

A placeholder until the kernels issue defines the full format: the source tree holds the
problem file; ``[kernel]`` names it and its ``Model`` class; the workload runs ``ModelNew`` from
``model_new.py`` when the candidate wrote one, else the reference. Nothing here imports torch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tasks.importers.common import Draft, safe_id
from tasks.model import TaskError

FORMAT = "kernelbench"
_LEVEL = re.compile(r"level\d+")
_PROBLEM = re.compile(r"\d+_.+\.py")
_NEEDS = {
    "class Model": re.compile(r"^class\s+Model\s*\(", re.M),
    "get_inputs()": re.compile(r"^def\s+get_inputs\s*\(", re.M),
    "get_init_inputs()": re.compile(r"^def\s+get_init_inputs\s*\(", re.M),
}

_WORKLOAD = '''\
"""KernelBench workload: forward() of ModelNew (model_new.py) if present, else the reference."""

import importlib.util
import os

REFERENCE = {reference!r}


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _device(value):
    import torch

    if isinstance(value, torch.Tensor) and torch.cuda.is_available():
        return value.cuda()
    return value


_model = _inputs = None


def setup():
    global _model, _inputs
    ref = _load(REFERENCE, "reference")
    if os.path.exists("model_new.py"):
        cls = _load("model_new.py", "model_new").ModelNew
    else:
        cls = ref.Model
    _model = cls(*[_device(v) for v in ref.get_init_inputs()])
    if hasattr(_model, "cuda"):
        import torch

        if torch.cuda.is_available():
            _model = _model.cuda()
    _inputs = [_device(v) for v in ref.get_inputs()]


def workload():
    import torch

    out = _model(*_inputs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out
'''


def problem_files(folder: Path) -> list[Path]:
    """The problem files of a KernelBench folder: the repository (``KernelBench/level1``),
    its ``KernelBench`` folder (``level1/``, ...), or one level folder."""
    roots = [folder, folder / "KernelBench"]
    levels = [d for r in roots if r.is_dir() for d in r.iterdir() if d.is_dir()]
    levels = [d for d in levels if _LEVEL.fullmatch(d.name)]
    if not levels and _LEVEL.fullmatch(folder.name):
        levels = [folder]
    found = {f for lv in levels for f in lv.glob("*.py") if _PROBLEM.fullmatch(f.name)}
    return sorted(found, key=_key)


def _key(path: Path) -> tuple[str, int, str]:
    num = path.name.split("_", 1)[0]
    return (path.parent.name, int(num) if num.isdigit() else 0, path.name)


def convert(path: Path) -> Draft:
    text = path.read_text(encoding="utf-8")
    for what, pattern in _NEEDS.items():
        if not pattern.search(text):
            raise TaskError(
                f"{path}: field '{what}' is missing",
                "a KernelBench problem defines "
                "class Model(nn.Module), get_inputs() and get_init_inputs() at module level",
            )
    level = path.parent.name
    tid = safe_id(f"kernelbench-{level}-{path.stem}")
    name = path.stem.split("_", 1)[-1].replace("_", " ").strip()
    prompt = (
        f"Write model_new.py defining class ModelNew(nn.Module), a faster drop-in for Model in "
        f"{path.name} ({name}): the same constructor and forward() signature and the same "
        "outputs (fp32, atol/rtol 1e-4), computed by custom GPU kernels (CUDA through "
        "torch.utils.cpp_extension.load_inline, or Triton), not by falling back to the "
        "PyTorch operator.\n"
    )
    data: dict[str, Any] = {
        "id": tid,
        "kind": "kernel",
        "title": f"KernelBench {level} {path.stem}",
        "prompt": prompt,
        "source": {"path": "src"},
        "workload": {"script": "workload.py"},
        "kernel": {"reference": path.name, "entry": "Model"},
    }
    files = {f"src/{path.name}": text, "workload.py": _WORKLOAD.format(reference=path.name)}
    return Draft(id=tid, data=data, files=files, git_dir="src")
