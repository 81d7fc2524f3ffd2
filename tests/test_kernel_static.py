"""kernels.static_checks: a correct Triton kernel passes, and every known cheat is refused.

Each cheat source marks the lines that must be refused with ``# !``; a case passes only when
the findings of its rule are on exactly those lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pydantic
import pytest

from kernels import static_checks
from kernels.static_checks import Finding, check_sources, refusal

SOFTMAX = ["softmax", "_softmax", "log_softmax"]

GOOD_KERNEL = '''\
"""Row softmax with a Triton kernel: one program a row, looping over column blocks."""

import torch
import torch.nn as nn
import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def _softmax_rows(x_ptr, y_ptr, n_cols, stride, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(0)
    x_row = x_ptr + row * stride
    y_row = y_ptr + row * stride
    offs = tl.arange(0, BLOCK_SIZE)
    top = tl.full([BLOCK_SIZE], -float("inf"), tl.float32)
    for start in range(0, n_cols, BLOCK_SIZE):
        mask = start + offs < n_cols
        x = tl.load(x_row + start + offs, mask=mask, other=-float("inf"))
        top = tl.maximum(top, x)
    row_max = tl.max(top, axis=0)
    total = tl.zeros([BLOCK_SIZE], tl.float32)
    for start in range(0, n_cols, BLOCK_SIZE):
        mask = start + offs < n_cols
        x = tl.load(x_row + start + offs, mask=mask, other=-float("inf"))
        total += tl.where(mask, tl.exp(x - row_max), 0.0)
    denom = tl.sum(total, axis=0)
    for start in range(0, n_cols, BLOCK_SIZE):
        mask = start + offs < n_cols
        x = tl.load(x_row + start + offs, mask=mask, other=-float("inf"))
        tl.store(y_row + start + offs, tl.exp(x - row_max) / denom, mask=mask)


def _block_for(n_cols: int) -> int:
    """A power of two covering the row, at most BLOCK (longer rows loop)."""
    return min(triton.next_power_of_2(max(n_cols, 16)), BLOCK)


class ModelNew(nn.Module):
    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        n_rows, n_cols = x.shape
        y = torch.empty_like(x)
        block = _block_for(n_cols)
        grid = (triton.cdiv(n_rows, 1),)
        _softmax_rows[grid](x, y, n_cols, x.stride(0), BLOCK_SIZE=block)
        return y
'''


def marked(src: str) -> set[int]:
    return {n for n, line in enumerate(src.splitlines(), 1) if line.rstrip().endswith("# !")}


def lines_of(rule: str, src: str, forbid: list[str]) -> set[int]:
    return {f.line for f in check_sources({"model_new.py": src}, forbid) if f.rule == rule}


def test_a_correct_triton_kernel_has_no_findings() -> None:
    assert check_sources({"model_new.py": GOOD_KERNEL}, SOFTMAX) == []
    assert check_sources({"model_new.py": GOOD_KERNEL}, ["matmul", "mm", "layer_norm"]) == []


def test_a_correct_kernel_with_every_allowed_import_and_constant() -> None:
    src = (
        "from __future__ import annotations\nimport math, functools, itertools, numbers\n"
        "import typing\nfrom dataclasses import dataclass\nimport triton.language as tl\n"
        "import torch.nn.functional as F\nSCALE = 1.0\nNAMES = ('a', 'b')\n"
        "__all__ = ['ModelNew']\nLOG2E = 1 / math.log(2)\nprint(torch.__version__)\n"
        "if torch.cuda.is_available():\n    pass\n"
    )
    assert check_sources({"model_new.py": src}, SOFTMAX) == []


FALLBACK = {
    "torch.softmax": "import torch\ny = torch.softmax(x, dim=-1)  # !\n",
    "F alias": "import torch.nn.functional as F\ny = F.softmax(x, -1)  # !\n",
    "full path": "import torch\ny = torch.nn.functional.softmax(x, -1)  # !\n",
    "from-import alias": (
        "from torch.nn.functional import softmax as sm  # !\ny = x + 1\nz = sm(x, -1)  # !\n"
    ),
    "method": "y = x.contiguous().softmax(-1)  # !\n",
    "getattr string": 'import torch\nfn = getattr(torch, "softmax")  # !\n',
    "nn module": "import torch.nn as nn\nlayer = nn.Softmax(dim=1)  # !\n",
    "torch.nn module": "import torch\nlayer = torch.nn.Softmax(dim=1)  # !\n",
    "from torch import": "from torch import softmax  # !\n",
    "underscore aten name": "import torch\ny = torch._softmax(x, -1, False)  # !\n",
    "log_softmax": "import torch.nn.functional as F\ny = F.log_softmax(x, 1)  # !\n",
    "assigned module alias": "import torch\nfun = torch.nn.functional\ny = fun.softmax(x)  # !\n",
    "method reference": "f = x.softmax  # !\ny = f(-1)\n",
    "subclassing": "import torch.nn as nn\nclass ModelNew(nn.Softmax):  # !\n    pass\n",
}


@pytest.mark.parametrize("src", FALLBACK.values(), ids=FALLBACK.keys())
def test_fallback_to_the_forbidden_softmax_is_refused(src: str) -> None:
    assert lines_of("fallback", src, SOFTMAX) == marked(src)


@pytest.mark.parametrize(
    ("src", "forbid"),
    [
        ("y = a @ b  # !\n", ["matmul"]),
        ("a @= b  # !\n", ["matmul"]),
        ("import torch\ny = torch.mm(a, b)  # !\n", ["mm"]),
        ("y = a.mm(b)  # !\n", ["mm"]),
        ("import torch\ny = torch.matmul(a, b)  # !\n", ["matmul"]),
        ("y = torch.Tensor.__matmul__(a, b)  # !\n", ["matmul"]),
        ("import torch.nn as nn\nnorm = nn.LayerNorm(64)  # !\n", ["layer_norm"]),
        ("import torch.nn.functional as F\ny = F.layer_norm(x, (64,))  # !\n", ["layer_norm"]),
        ("import torch\ny = torch.layer_norm(x, (64,))  # !\n", ["LayerNorm"]),
    ],
)
def test_fallback_to_other_forbidden_ops_is_refused(src: str, forbid: list[str]) -> None:
    assert lines_of("fallback", src, forbid) == marked(src)


def test_fallback_message_names_the_call_and_why() -> None:
    src = "import torch\ny = torch.softmax(x, -1)\n"
    (finding,) = check_sources({"model_new.py": src}, SOFTMAX)
    assert (finding.rule, finding.line) == ("fallback", 2)
    assert finding.message == (
        "calls torch.softmax, the operator this task replaces: compute it in your Triton kernel"
    )
    assert str(finding) == f"model_new.py:2: {finding.message}"


def test_whole_names_only_and_triton_language_is_always_allowed() -> None:
    src = (
        "import triton\nimport triton.language as tl\nfrom triton import language as tl2\n"
        "def comm(x):\n    return x\n"
        "y = tl.dot(a, b) + comm(x) + x.comm + x.mma + commit(x)\n"
        "z = tl.softmax(x) + tl2.softmax(x) + triton.language.softmax(x)\n"
        "w = tl.sum(tl.exp(x - tl.max(x, 0)), 0)\n"
    )
    assert check_sources({"model_new.py": src}, ["mm", "softmax"]) == []
    assert lines_of("fallback", src.replace("x.comm", "x.mm  # !"), ["mm"]) == {6}


def test_the_candidates_own_softmax_functions_are_allowed() -> None:
    src = (
        "def softmax(x):\n    return launch(x)\n"
        "class ModelNew:\n    def softmax(self, x):\n        return softmax(x)\n"
        "    def forward(self, x):\n        return self.softmax(x)\n"
    )
    assert check_sources({"model_new.py": src}, SOFTMAX) == []


TRY = {
    "try/except": "try:  # !\n    y = kernel(x)\nexcept Exception:\n    y = x\n",
    "try/finally": "def f():\n    try:  # !\n        return 1\n    finally:\n        pass\n",
    "try/except*": "try:  # !\n    pass\nexcept* ValueError:\n    pass\n",
    "nested": "try:  # !\n    try:  # !\n        pass\n    except RuntimeError:\n        pass\n"
    "except Exception:\n    pass\n",
}


@pytest.mark.parametrize("src", TRY.values(), ids=TRY.keys())
def test_try_blocks_are_refused(src: str) -> None:
    assert lines_of("try", src, SOFTMAX) == marked(src)


def test_try_message_says_why() -> None:
    (finding,) = check_sources({"m.py": TRY["try/except"]})
    assert finding.message == "try/except: a kernel may not fall back to another path when it fails"


DYNAMIC = {
    "eval": 'y = eval("x + 1")  # !\n',
    "exec": "exec(code)  # !\n",
    "compile builtin": 'c = compile(src, "f", "exec")  # !\n',
    "__import__": 'os = __import__("os")  # !\n',
    "computed getattr": "import torch\nfn = getattr(torch, name)  # !\n",
    "computed setattr": "setattr(obj, name, 1)  # !\n",
    "computed hasattr": "ok = hasattr(x, 'soft' + 'max')  # !\n",
    "getattr as a value": "g = getattr  # !\n",
    "globals": 'globals()["x"] = 1  # !\n',
    "vars and locals": "v = vars(obj)  # !\nw = locals()  # !\n",
    "__dict__": 'f = F.__dict__["softmax"]  # !\n',
    "__class__ and __subclasses__": "s = ().__class__.__bases__[0].__subclasses__()  # !\n",
    "__globals__ and __code__": "g = f.__globals__  # !\nc = f.__code__  # !\n",
    "__builtins__": 'b = __builtins__["open"]  # !\n',
    "importlib": 'import importlib  # !\nm = importlib.import_module("os")\n',
}


@pytest.mark.parametrize("src", DYNAMIC.values(), ids=DYNAMIC.keys())
def test_dynamic_code_is_refused(src: str) -> None:
    assert lines_of("dynamic", src, SOFTMAX) == marked(src)


@pytest.mark.parametrize(
    "module",
    [
        *("os", "sys", "gc", "inspect", "ctypes", "subprocess", "signal", "time", "builtins"),
        *("pickle", "socket", "atexit", "weakref", "numpy", "collections", "operator"),
    ],
)
def test_imports_off_the_allowlist_are_refused_with_the_module_name(module: str) -> None:
    for src in (f"import {module}\n", f"import torch\nfrom {module} import thing as t\n"):
        findings = check_sources({"model_new.py": src})
        assert [(f.rule, f.line) for f in findings] == [("import", src.count("\n"))]
        assert f"imports {module}" in findings[0].message


def test_star_and_relative_imports_are_refused() -> None:
    src = "from torch import *  # !\nfrom . import helpers  # !\nfrom .k import f  # !\n"
    assert lines_of("import", src, SOFTMAX) == marked(src)


def test_the_other_checked_files_may_be_imported() -> None:
    files = {
        "model_new.py": "import helpers\nfrom kern.sub import k\nimport other  # !\n",
        "helpers.py": "import math\n",
        "kern/sub.py": "k = 1\n",
    }
    found = [(f.path, f.rule, f.line) for f in check_sources(files)]
    assert found == [("model_new.py", "import", 3)]


THREAD = {
    "threading": "import threading  # !\nt = threading.Thread(target=f)  # !\n",
    "concurrent": "from concurrent.futures import ThreadPoolExecutor  # !\n",
    "multiprocessing": "import multiprocessing as mp  # !\n",
    "torch.multiprocessing": "import torch.multiprocessing as mp  # !\n",
    "torch.multiprocessing attribute": "import torch\ntorch.multiprocessing.spawn(f)  # !\n",
}


@pytest.mark.parametrize("src", THREAD.values(), ids=THREAD.keys())
def test_threads_and_processes_are_refused(src: str) -> None:
    assert lines_of("thread", src, SOFTMAX) == marked(src)


def test_threading_import_gets_the_specific_message() -> None:
    (finding,) = check_sources({"model_new.py": "import threading\n"})
    assert finding.rule == "thread"
    assert finding.message.startswith("imports threading: threads and processes")


STREAM = {
    "Stream": "import torch\ns = torch.cuda.Stream()  # !\n",
    "stream context": "import torch\nwith torch.cuda.stream(s):  # !\n    pass\n",
    "Event": "import torch\ne = torch.cuda.Event(enable_timing=True)  # !\n",
    "synchronize": "import torch\ntorch.cuda.synchronize()  # !\n",
    "set/current/default stream": (
        "import torch\ntorch.cuda.set_stream(s)  # !\nc = torch.cuda.current_stream()  # !\n"
        "d = torch.cuda.default_stream()  # !\n"
    ),
    "graphs": (
        "import torch\ng = torch.cuda.CUDAGraph()  # !\n"
        "h = torch.cuda.graphs.make_graphed_callables(m, (x,))  # !\n"
    ),
    "torch.Stream, torch.Event": "import torch\ns = torch.Stream()  # !\ne = torch.Event()  # !\n",
    "from-import": "from torch.cuda import synchronize as sync  # !\nsync()  # !\n",
    "module alias": "import torch.cuda as cu\ncu.synchronize()  # !\n",
}


@pytest.mark.parametrize("src", STREAM.values(), ids=STREAM.keys())
def test_streams_events_and_syncs_are_refused(src: str) -> None:
    assert lines_of("stream", src, SOFTMAX) == marked(src)


TAMPER = {
    "assign synchronize": "import torch\ntorch.cuda.synchronize = lambda: None  # !\n",
    "setattr synchronize": 'import torch\nsetattr(torch.cuda, "synchronize", f)  # !\n',
    "do_bench alias": "import triton.testing as tt\ntt.do_bench = f  # !\n",
    "do_bench full": "import triton\ntriton.testing.do_bench = f  # !\n",
    "Tensor method": "import torch\ntorch.Tensor.softmax = f  # !\n",
    "del": "import torch\ndel torch.cuda.synchronize  # !\n",
    "delattr": 'import torch\ndelattr(torch, "softmax")  # !\n',
    "augassign": "import math\nmath.pi += 1  # !\n",
    "annassign": "import torch\ntorch.backends.cudnn.benchmark: bool = True  # !\n",
    "tuple target": "import torch\na, torch.manual_seed = 1, f  # !\n",
    "from-imported module": "from torch import nn\nnn.Module.__call__ = f  # !\n",
}


@pytest.mark.parametrize("src", TAMPER.values(), ids=TAMPER.keys())
def test_patching_modules_is_refused(src: str) -> None:
    assert lines_of("tamper", src, []) == marked(src)


COMPILE = {
    "torch.compile call": "import torch\nfast = torch.compile(model)  # !\n",
    "torch.compile decorator": "import torch\n@torch.compile  # !\ndef f(x):\n    return x\n",
    "jit": "import torch\ng = torch.jit.script(f)  # !\n",
    "_dynamo": "import torch._dynamo  # !\n",
    "_inductor": "from torch._inductor import config  # !\n",
    "cpp_extension": "from torch.utils.cpp_extension import load_inline  # !\n",
    "ops": "import torch\ny = torch.ops.aten.add(x, x)  # !\n",
    "_C": "import torch\ny = torch._C._nn.gelu(x)  # !\n",
    "private": "import torch\ny = torch._foreach_exp([x])  # !\nv = torch.__version__\n",
}


@pytest.mark.parametrize("src", COMPILE.values(), ids=COMPILE.keys())
def test_compilers_and_torch_internals_are_refused(src: str) -> None:
    assert lines_of("compile", src, SOFTMAX) == marked(src)


FORWARD = "class ModelNew:\n    def __init__(self):\n        self.cache = {}\n"
FWD = FORWARD + "    def forward(self, x):\n"
STATE = {
    "subscript in forward": FWD + "        self.cache[x] = x  # !\n",
    "module-level dict": "_CACHE = {}  # !\n",
    "module-level calls": (
        "from collections import OrderedDict, defaultdict\n_A = list()  # !\n"
        "_B: dict = dict()  # !\n_C = OrderedDict()  # !\n_D = defaultdict(list)  # !\n"
        "_E = {k: 1 for k in 'ab'}  # !\n_F = set()  # !\n"
    ),
    "augassign in forward": FWD + "        self.calls += 1  # !\n",
    "attribute in forward": FWD + "        self.last = x  # !\n",
    "setattr in forward": FWD + "        setattr(self, 'k', x)  # !\n",
    "mutating call in forward": (FWD + "        self.cache.setdefault(1, x)  # !\n"),
    "global": "def f():\n    global _BUF  # !\n    _BUF = 1\n",
    "nonlocal": "def f():\n    n = 0\n    def g():\n        nonlocal n  # !\n",
    "lru_cache": "import functools\n@functools.lru_cache(maxsize=None)  # !\ndef f(n):\n    pass\n",
    "cache": "from functools import cache  # !\n@cache  # !\ndef f(n):\n    pass\n",
    "mutable default": "def forward(self, x, _memo={}):  # !\n    return x\n",
}


@pytest.mark.parametrize("src", STATE.values(), ids=STATE.keys())
def test_state_between_calls_is_refused(src: str) -> None:
    assert lines_of("state", src, SOFTMAX) == marked(src)


def test_state_set_up_in_init_is_allowed() -> None:
    src = FORWARD + "        self.dim = 1\n        setattr(self, 'k', 2)\n"
    src += "        self.cache.clear()\n        self.cache['k'] = 1\n"
    assert check_sources({"model_new.py": src}, SOFTMAX) == []


IO = {
    "open": 'data = open("weights.bin").read()  # !\n',
    "input": "answer = input()  # !\n",
    "breakpoint": "breakpoint()  # !\n",
    "exit and quit": "exit(0)  # !\nquit()  # !\n",
}


@pytest.mark.parametrize("src", IO.values(), ids=IO.keys())
def test_io_is_refused(src: str) -> None:
    assert lines_of("io", src, SOFTMAX) == marked(src)


def test_print_and_a_parameter_named_input_are_allowed() -> None:
    src = "def forward(self, input):\n    print(input.shape)\n    return input.contiguous()\n"
    assert check_sources({"model_new.py": src}, SOFTMAX) == []


def test_a_dotted_chain_is_one_finding_not_one_per_prefix() -> None:
    src = "import torch\ny = torch._C._nn.gelu(x)\n"
    src += "h = torch.cuda.graphs.make_graphed_callables(m)\n"
    got = [(f.line, f.rule, f.message.split(":")[0]) for f in check_sources({"m.py": src})]
    assert got == [
        (2, "compile", "calls torch._C._nn.gelu"),
        (3, "stream", "calls torch.cuda.graphs.make_graphed_callables"),
    ]


def test_every_finding_is_reported_sorted_and_deduplicated() -> None:
    src = (
        "import os\nimport torch\n_CACHE = {}\n"
        "def f(x):\n    try:\n        return torch.softmax(torch.softmax(x, 1), 1)\n"
        "    except Exception:\n        return eval('x')\n"
    )
    files = {"z.py": src, "a.py": "import sys\n"}
    got = [(f.path, f.line, f.rule) for f in check_sources(files, SOFTMAX)]
    assert got == [
        ("a.py", 1, "import"),
        ("z.py", 1, "import"),
        ("z.py", 3, "state"),
        ("z.py", 5, "try"),
        ("z.py", 6, "fallback"),
        ("z.py", 8, "dynamic"),
    ]


def test_a_syntax_error_is_one_syntax_finding() -> None:
    files = {"model_new.py": "import torch\n\ndef forward(x:\n    return x\n", "ok.py": "x = 1\n"}
    (finding,) = check_sources(files, SOFTMAX)
    assert (finding.path, finding.rule, finding.line) == ("model_new.py", "syntax", 3)
    assert "valid Python" in finding.message
    (nul,) = check_sources({"k.py": "x = 1\x00\n"})
    assert nul.rule == "syntax"


def test_files_other_than_python_are_ignored() -> None:
    files = {"README.md": "import os\neval(x)\n", "kernel.cu": "try {", "setup.cfg": "[x]"}
    assert check_sources(files, SOFTMAX) == []


def test_findings_are_frozen() -> None:
    finding = Finding(path="m.py", line=1, rule="try", message="try/except: no")
    with pytest.raises(pydantic.ValidationError):
        finding.line = 2  # type: ignore[misc]
    assert len({finding, Finding(path="m.py", line=1, rule="try", message="try/except: no")}) == 1


def test_refusal_names_the_first_findings_and_counts_the_rest() -> None:
    src = "import os\nimport sys\nimport gc\n"
    findings = check_sources({"model_new.py": src})
    assert refusal([]) == ""
    text = refusal(findings, limit=2)
    assert text.startswith("static checks refused the kernel: model_new.py:1: imports os: ")
    assert "; model_new.py:2: imports sys: " in text
    assert "gc" not in text
    assert text.endswith(" (and 1 more)")
    assert "more" not in refusal(findings)
    assert "\n" not in refusal(findings)


def test_the_module_imports_neither_torch_nor_triton_and_does_no_io() -> None:
    tree = ast.parse(Path(static_checks.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported == {"__future__", "ast", "collections.abc", "pydantic"}
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not names & {"open", "print", "input"}
