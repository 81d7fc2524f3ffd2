"""KernelBench problem folders (``level1/23_Softmax.py``, ...) -> kernel tasks.

The source tree holds the problem file, unchanged; ``[kernel]`` names it and its ``Model``
class, and forbids the operators its ``forward`` calls; the candidate writes ``ModelNew`` in
``model_new.py``. The workload (for the agent's own timing) runs ``ModelNew`` when the
candidate wrote one, else the reference. Nothing here imports torch.
"""

from __future__ import annotations

import ast
import math
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


#: Calls in a reference forward() that are plumbing, not the operator a kernel replaces.
_PLUMBING = frozenset(
    [
        "view",
        "reshape",
        "contiguous",
        "size",
        "shape",
        "stride",
        "dim",
        "numel",
        "unsqueeze",
        "squeeze",
        "permute",
        "transpose",
        "t",
        "expand",
        "flatten",
        "to",
        "float",
        "half",
        "double",
        "int",
        "long",
        "clone",
        "detach",
        "empty",
        "empty_like",
        "zeros",
        "zeros_like",
        "ones",
        "ones_like",
        "full",
        "full_like",
        "tensor",
        "as_tensor",
        "cuda",
        "cpu",
        "super",
        "forward",
    ]
)


def check_problem(path: Path, text: str) -> None:
    """A one-line TaskError naming what a KernelBench problem file lacks."""
    for what, pattern in _NEEDS.items():
        if not pattern.search(text):
            raise TaskError(
                f"{path}: field '{what}' is missing",
                "a KernelBench problem defines "
                "class Model(nn.Module), get_inputs() and get_init_inputs() at module level",
            )


#: torch.nn modules a reference builds in __init__ and calls in forward(), and the
#: functional and aten operators that compute them: what the candidate must not call.
_MODULE_OPS = {
    "batchnorm": ("batch_norm", "native_batch_norm", "_native_batch_norm_legit"),
    "instancenorm": ("instance_norm", "batch_norm", "native_batch_norm"),
    "groupnorm": ("group_norm", "native_group_norm"),
    "layernorm": ("layer_norm", "native_layer_norm"),
    "rmsnorm": ("rms_norm", "_fused_rms_norm"),
    "maxpool": ("max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices",
                "max_pool3d_with_indices"),
    "avgpool": ("avg_pool1d", "avg_pool2d", "avg_pool3d"),
    "conv": ("conv1d", "conv2d", "conv3d", "convolution", "_convolution"),
    "convtranspose": ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                      "convolution", "_convolution"),
    "linear": ("linear", "addmm", "mm", "matmul"),
}  # fmt: skip


def _module_ops(cls: str) -> tuple[str, ...]:
    """``BatchNorm2d`` -> its operators; an unlisted module (``TripletMarginLoss``) -> its
    name in snake case (``triplet_margin_loss``), the functional's name by convention."""
    key = re.sub(r"\d+d$", "", cls).lower()
    if key in _MODULE_OPS:
        return _MODULE_OPS[key]
    return (re.sub(r"(?<!^)(?=[A-Z])", "_", re.sub(r"\d+d$", "", cls)).lower(),)


def _nn_modules(cls: ast.ClassDef) -> dict[str, str]:
    """``self.bn = nn.BatchNorm2d(...)`` in ``__init__`` -> {"bn": "BatchNorm2d"}."""
    found = {}
    for fn in cls.body:
        if not (isinstance(fn, ast.FunctionDef) and fn.name == "__init__"):
            continue
        for node in ast.walk(fn):
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(t := node.targets[0], ast.Attribute)
                    and isinstance(t.value, ast.Name) and t.value.id == "self"
                    and isinstance(node.value, ast.Call)
                    and isinstance(node.value.func, ast.Attribute)):  # fmt: skip
                found[t.attr] = node.value.func.attr
    return found


def forbidden_ops(text: str, entry: str = "Model") -> list[str]:
    """The operators ``entry.forward`` calls (``torch.softmax`` -> softmax, ``x @ w`` ->
    matmul, ``self.bn(x)`` with ``self.bn = nn.BatchNorm2d(...)`` -> batch_norm, ...): what
    the candidate must compute in its own kernels. The names of the reference's own
    attributes are not operators, and are left out (a candidate may reuse ``self.bn``'s
    parameters)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    found: set[str] = set()
    for cls in tree.body:
        if not (isinstance(cls, ast.ClassDef) and cls.name == entry):
            continue
        modules = _nn_modules(cls)
        for fn in cls.body:
            if not (isinstance(fn, ast.FunctionDef) and fn.name == "forward"):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    f = node.func
                    if isinstance(f.value, ast.Name) and f.value.id == "self":
                        found.update(_module_ops(modules[f.attr]) if f.attr in modules else ())
                        continue
                    found.add(f.attr)
                    if f.attr == "matmul":
                        found.update(("mm", "bmm", "addmm"))
                elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
                    found.update(("matmul", "mm", "bmm", "addmm"))
    return sorted(n for n in found if n.lower() not in _PLUMBING and not n.startswith("__"))


def _sizes(text: str) -> dict[str, int | list[int]]:
    """The module-level sizes that get_inputs() reads: ``batch_size = 4096``, also
    ``N = 2048 * 2`` and ``K = N // 4`` (arithmetic on constants and earlier sizes), and
    tuples of them (``input_shape = (4096,)``, as a list). Ints of 0 and 1 are left out."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    known: dict[str, int] = {}
    found: dict[str, int | list[int]] = {}
    pairs: list[tuple[str, ast.expr]] = []
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        if isinstance(target, ast.Name):
            pairs.append((target.id, value))
        elif (isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
                and len(target.elts) == len(value.elts)):  # fmt: skip
            # D, H, W = 16, 32, 32
            pairs += [(t.id, v) for t, v in zip(target.elts, value.elts, strict=True)
                      if isinstance(t, ast.Name)]  # fmt: skip
    for name, node_value in pairs:
        if isinstance(node_value, ast.Tuple):
            items = [_int_expr(e, known) for e in node_value.elts]
            if items and all(v is not None and v >= 1 for v in items):
                found[name] = [v for v in items if v is not None]
            continue
        value = _int_expr(node_value, known)
        if value is not None:
            known[name] = value
            if value > 1:
                found[name] = value
    return found


_INT_OPS = {ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__,
            ast.FloorDiv: int.__floordiv__, ast.LShift: int.__lshift__}  # fmt: skip


def _int_expr(node: ast.expr, known: dict[str, int]) -> int | None:
    if isinstance(node, ast.Constant):
        return node.value if type(node.value) is int else None
    if isinstance(node, ast.Name):
        return known.get(node.id)
    if isinstance(node, ast.BinOp) and type(node.op) in _INT_OPS:
        a, b = _int_expr(node.left, known), _int_expr(node.right, known)
        if a is None or b is None or (isinstance(node.op, ast.FloorDiv) and b == 0):
            return None
        if isinstance(node.op, ast.LShift) and not 0 <= b <= 40:
            return None
        return _INT_OPS[type(node.op)](a, b)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        a, b = _int_expr(node.left, known), _int_expr(node.right, known)
        return a**b if a is not None and b is not None and 0 <= b <= 40 else None
    return None


def odd_shape(text: str) -> dict[str, int | list[int]]:
    """The problem's module-level sizes made odd and smaller (16384 -> 8193, 16 -> 9): a
    second shape beside the file's own, so a kernel that needs multiples of its block fails.
    Tuples (kernel sizes, strides, paddings, input shapes alike) are left as they are."""
    return {name: (v // 2) | 1 for name, v in _sizes(text).items() if isinstance(v, int)}


#: Without a GPU, sizes above CPU_SIZE are halved until they fit, and the largest of them
#: halved again while all sizes multiply to more than CPU_ELEMENTS: Triton's CPU
#: interpreter runs each program instance in Python, and KernelBench's sizes (4096 x 393216)
#: are GPU-sized. Sizes up to CPU_KEEP (kernel sizes, strides, groups) are never changed.
CPU_SIZE, CPU_ELEMENTS, CPU_KEEP = 64, 1 << 18, 16


def cpu_shapes(text: str) -> list[dict[str, int | list[int]]]:
    """Two small shapes for Triton's interpreter: the sizes shrunk by powers of two (which
    keeps their divisibility: 4096 -> 64, 393216 -> 48, 1000 -> 62), then the same made odd
    and halved again (-> 33, 25, 31). Sizes up to CPU_KEEP (kernel sizes, strides, groups)
    stay as they are, and a size that one of them divides stays a multiple of it."""
    sizes = _sizes(text)
    names = [n for n, v in sizes.items() for _ in (v if isinstance(v, list) else [v])]
    small = [x for v in sizes.values() for x in (v if isinstance(v, list) else [v])]
    for i in range(len(small)):
        while small[i] > CPU_SIZE:
            small[i] //= 2
    while math.prod(small) > CPU_ELEMENTS:
        big = [i for i, v in enumerate(small) if v >= CPU_KEEP * 2]
        if not big:
            break
        small[max(big, key=small.__getitem__)] //= 2
    kept = [v for v in small if 1 < v <= CPU_KEEP]
    odd = []
    for v in small:
        step = math.lcm(1, *(u for u in kept if v % u == 0))
        odd.append(v if v <= CPU_KEEP else max(step, ((v // 2) | 1) // step * step))

    def shape(values: list[int]) -> dict[str, int | list[int]]:
        out: dict[str, int | list[int]] = {}
        for name, v in zip(names, values, strict=True):
            if isinstance(sizes[name], list):
                out.setdefault(name, []).append(v)  # type: ignore[union-attr]
            else:
                out[name] = v
        return {n: v for n, v in out.items() if v != sizes[n]}

    return [shape(small), shape(odd)] if odd != small else [shape(small)]


def kernel_fields(text: str) -> dict[str, Any]:
    """The [kernel] fields that a KernelBench problem file implies: the operators its
    forward() calls (forbidden to the candidate), the file's own sizes and an odd shape on a
    GPU, small shapes on the CPU, and torch allowed beside the kernels (level 2 and 3
    problems are whole models, of which a kernel may replace a part)."""
    odd = odd_shape(text)
    return {
        "forbid": forbidden_ops(text),
        "shapes": [{}, odd] if odd else [],
        "cpu_shapes": cpu_shapes(text),
        "skip_invalid_shapes": True,
        "torch_in_forward": "any",
    }


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
    check_problem(path, text)
    level = path.parent.name
    tid = safe_id(f"kernelbench-{level}-{path.stem}")
    name = path.stem.split("_", 1)[-1].replace("_", " ").strip()
    prompt = (
        f"Write model_new.py defining class ModelNew(nn.Module), a faster drop-in for Model in "
        f"{path.name} ({name}): the same constructor and forward() signature and the same "
        "outputs (fp32, atol/rtol 1e-4) for any shape and values, computed by Triton kernels "
        "(@triton.jit, launched from forward()), not by the PyTorch operators it replaces.\n"
    )
    data: dict[str, Any] = {
        "id": tid,
        "kind": "kernel",
        "title": f"KernelBench {level} {path.stem}",
        "prompt": prompt,
        "source": {"path": "src"},
        "workload": {"script": "workload.py"},
        "kernel": {"reference": path.name, "entry": "Model", **kernel_fields(text)},
    }
    files = {f"src/{path.name}": text, "workload.py": _WORKLOAD.format(reference=path.name)}
    return Draft(id=tid, data=data, files=files, git_dir="src")
