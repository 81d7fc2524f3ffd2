"""Wrong ``model_new.py`` files for the built-in kernel tasks: test fixtures, no tests.

``cheat_source(task_id, cheat)`` is the full text of a candidate for one of the four kernel tasks
(softmax-rows, layernorm, bias-gelu, matmul) that computes with real Triton kernels and imports
only torch and triton, with no try/except, threads, streams, patching or calls of the replaced
operator: a static checker has nothing to refuse, and only the judge's runs can tell it is
wrong. The cheats (``CHEATS``):

- ``zeros``: the output (its right shape, dtype and device) filled with zeros by a kernel;
- ``constant``: filled with one constant (1 / ncols for softmax, else 0.5);
- ``copy``: the first input copied into an output of the reference's shape (matmul: the part
  of ``a`` that fits in (M, N), zeros elsewhere);
- ``off-by-one-row``: the expert's kernel, but the last row of the output is computed from the
  row before it (for one row, the result is right);
- ``cache``: right on the first call, then the first call's output (the same tensor) for every
  later call with the same input shapes, kept in a dict made in ``__init__`` (stored with
  ``__setitem__``, which the static checker does not see as a write);
- ``mutate-input``: the right output, and the first input overwritten with zeros by a kernel.

``FALLBACKS`` (softmax-rows only) are candidates that compute the softmax with torch in some
disguise, or run a kernel in a way the harness forbids; each gives the right values on the CPU
(those with a kernel under ``TRITON_INTERPRET=1``), so only the judge's static checks can
refuse them. ``timer-patch`` replaces ``torch.cuda.synchronize`` in the process that imports it.

Plain strings: importing this module needs neither torch nor triton.
"""

from __future__ import annotations

CHEATS: tuple[str, ...] = (
    "zeros",
    "constant",
    "copy",
    "off-by-one-row",
    "cache",
    "mutate-input",
)
TASK_IDS: tuple[str, ...] = ("softmax-rows", "layernorm", "bias-gelu", "matmul")

_HEADER = '''"""A kernel candidate ({task}, {cheat})."""

import torch
import torch.nn as nn
import triton
import triton.language as tl
'''

# the forward() parameters, the first input, and the output's shape, per task
_PARAMS = {
    "softmax-rows": "x: torch.Tensor",
    "layernorm": "x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor",
    "bias-gelu": "x: torch.Tensor, bias: torch.Tensor",
    "matmul": "a: torch.Tensor, b: torch.Tensor",
}
_KEY = {
    "softmax-rows": "tuple(x.shape)",
    "layernorm": "(tuple(x.shape), tuple(weight.shape), tuple(bias.shape))",
    "bias-gelu": "(tuple(x.shape), tuple(bias.shape))",
    "matmul": "(tuple(a.shape), tuple(b.shape))",
}
_FIRST = {"softmax-rows": "x", "layernorm": "x", "bias-gelu": "x", "matmul": "a"}
_OUT_SHAPE = {
    "softmax-rows": "x.shape",
    "layernorm": "x.shape",
    "bias-gelu": "x.shape",
    "matmul": "(a.shape[0], b.shape[1])",
}

# -- zeros, constant, copy: one simple kernel each --------------------------------------------
_FILL = """

@triton.jit
def _fill(y_ptr, n, value, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y_ptr + offs, tl.full([BLOCK], value, tl.float32), mask=offs < n)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, {params}) -> torch.Tensor:
        first = {first}
        y = torch.empty({shape}, device=first.device, dtype=first.dtype)
        n = y.numel()
        if n > 0:
            _fill[(triton.cdiv(n, 1024),)](y, n, {value}, BLOCK=1024)
        return y
"""

_COPY_FLAT = """

@triton.jit
def _copy(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(y_ptr + offs, tl.load(x_ptr + offs, mask=mask, other=0.0), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, {params}) -> torch.Tensor:
        src = x.contiguous()
        y = torch.empty(x.shape, device=x.device, dtype=x.dtype)
        n = y.numel()
        if n > 0:
            _copy[(triton.cdiv(n, 1024),)](src, y, n, BLOCK=1024)
        return y
"""

_COPY_MATMUL = """

@triton.jit
def _copy_fit(a_ptr, c_ptr, M, N, K, stride_am, stride_cm,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    inside = (rm[:, None] < M) & (rn[None, :] < N)
    a = tl.load(a_ptr + rm[:, None] * stride_am + rn[None, :],
                mask=inside & (rn[None, :] < K), other=0.0)
    tl.store(c_ptr + rm[:, None] * stride_cm + rn[None, :], a, mask=inside)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a = a.contiguous()
        m, k = a.shape
        n = b.shape[1]
        c = torch.empty((m, n), device=a.device, dtype=a.dtype)
        if m > 0 and n > 0:
            grid = (triton.cdiv(m, 32), triton.cdiv(n, 32))
            _copy_fit[grid](a, c, m, n, k, a.stride(0), c.stride(0), BLOCK_M=32, BLOCK_N=32)
        return c
"""


# -- the expert's kernels, with the two faults as options ----------------------------------------
def _softmax_kernel(wrong_last: bool, zap: bool) -> str:
    src = "tl.where((row == n_rows - 1) & (row > 0), row - 1, row)" if wrong_last else "row"
    zap_line = (
        "        tl.store(x_row + cols, tl.zeros([BLOCK], tl.float32), mask=mask)\n" if zap else ""
    )
    return f"""

@triton.jit
def _softmax_rows(x_ptr, y_ptr, n_rows, n_cols, x_stride, y_stride, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + {src} * x_stride
    y_row = y_ptr + row * y_stride
    offs = tl.arange(0, BLOCK)
    m = tl.full([BLOCK], float("-inf"), tl.float32)
    s = tl.zeros([BLOCK], tl.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + offs
        x = tl.load(x_row + cols, mask=cols < n_cols, other=float("-inf"))
        m_new = tl.maximum(m, x)
        safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        s = s * tl.exp(m - safe) + tl.exp(x - safe)
        m = m_new
    row_max = tl.max(m, axis=0)
    safe = tl.where(m == float("-inf"), row_max, m)
    row_sum = tl.sum(s * tl.exp(safe - row_max), axis=0)
    for start in range(0, n_cols, BLOCK):
        cols = start + offs
        mask = cols < n_cols
        x = tl.load(x_row + cols, mask=mask, other=float("-inf"))
        tl.store(y_row + cols, tl.exp(x - row_max) / row_sum, mask=mask)
{zap_line}"""


_SOFTMAX_RUN = """        n_cols = x.shape[-1]
        x2 = x.contiguous().view(-1, n_cols)
        y = torch.empty(x2.shape, device=x.device, dtype=x.dtype)
        if y.numel() > 0:
            block = min(triton.next_power_of_2(n_cols), 1024)
            n_rows = x2.shape[0]
            _softmax_rows[(n_rows,)](x2, y, n_rows, n_cols, x2.stride(0), y.stride(0),
                                     BLOCK=block)
        y = y.view(x.shape)
"""


def _layernorm_kernel(wrong_last: bool, zap: bool) -> str:
    src = "tl.where((row == n_rows - 1) & (row > 0), row - 1, row)" if wrong_last else "row"
    zap_line = (
        "        tl.store(x_row + cols, tl.zeros([BLOCK], tl.float32), mask=mask)\n" if zap else ""
    )
    return f"""

@triton.jit
def _layer_norm_rows(x_ptr, w_ptr, b_ptr, y_ptr, n_rows, n_cols, x_stride, y_stride, eps,
                     BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + {src} * x_stride
    y_row = y_ptr + row * y_stride
    offs = tl.arange(0, BLOCK)
    acc = tl.zeros([BLOCK], tl.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + offs
        acc += tl.load(x_row + cols, mask=cols < n_cols, other=0.0)
    mean = tl.sum(acc, axis=0) / n_cols
    acc = tl.zeros([BLOCK], tl.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + offs
        mask = cols < n_cols
        x = tl.load(x_row + cols, mask=mask, other=0.0)
        d = tl.where(mask, x - mean, 0.0)
        acc += d * d
    var = tl.sum(acc, axis=0) / n_cols
    rstd = 1.0 / tl.sqrt(var + eps)
    for start in range(0, n_cols, BLOCK):
        cols = start + offs
        mask = cols < n_cols
        x = tl.load(x_row + cols, mask=mask, other=0.0)
        w = tl.load(w_ptr + cols, mask=mask, other=0.0)
        b = tl.load(b_ptr + cols, mask=mask, other=0.0)
        tl.store(y_row + cols, (x - mean) * rstd * w + b, mask=mask)
{zap_line}"""


_LAYERNORM_RUN = """        n_cols = x.shape[-1]
        x2 = x.contiguous().view(-1, n_cols)
        w = weight.contiguous()
        b = bias.contiguous()
        y = torch.empty(x2.shape, device=x.device, dtype=x.dtype)
        if y.numel() > 0:
            block = min(triton.next_power_of_2(n_cols), 1024)
            n_rows = x2.shape[0]
            _layer_norm_rows[(n_rows,)](x2, w, b, y, n_rows, n_cols, x2.stride(0), y.stride(0),
                                        1e-5, BLOCK=block)
        y = y.view(x.shape)
"""


def _gelu_kernel(wrong_last: bool, zap: bool) -> str:
    src = (
        "tl.where((offs >= n_elements - n_cols) & (offs >= n_cols), offs - n_cols, offs)"
        if wrong_last
        else "offs"
    )
    zap_line = (
        "    tl.store(x_ptr + offs, tl.zeros([BLOCK], tl.float32), mask=mask)\n" if zap else ""
    )
    return f"""

@triton.jit
def _bias_gelu(x_ptr, b_ptr, y_ptr, n_elements, n_cols, BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_elements
    x = tl.load(x_ptr + {src}, mask=mask, other=0.0)
    b = tl.load(b_ptr + offs % n_cols, mask=mask, other=0.0)
    v = x + b
    y = v * 0.5 * (1.0 + tl.erf(v * 0.7071067811865476))
    tl.store(y_ptr + offs, y, mask=mask)
{zap_line}"""


_GELU_RUN = """        src = x.contiguous()
        b = bias.contiguous()
        y = torch.empty(x.shape, device=x.device, dtype=x.dtype)
        n = src.numel()
        if n > 0:
            _bias_gelu[(triton.cdiv(n, 1024),)](src, b, y, n, x.shape[-1], BLOCK=1024)
"""


def _matmul_kernel(wrong_last: bool, zap: bool) -> str:
    ra = "tl.where((rm == M - 1) & (rm > 0), rm - 1, rm)" if wrong_last else "rm"
    zero = """

@triton.jit
def _zero(x_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(x_ptr + offs, tl.zeros([BLOCK], tl.float32), mask=offs < n)
"""
    return f"""

@triton.jit
def _matmul(a_ptr, b_ptr, c_ptr, M, N, K,
            stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
            BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    ra = {ra}
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + rk
        a = tl.load(a_ptr + ra[:, None] * stride_am + ks[None, :] * stride_ak,
                    mask=(ra[:, None] < M) & (ks[None, :] < K), other=0.0)
        b = tl.load(b_ptr + ks[:, None] * stride_bk + rn[None, :] * stride_bn,
                    mask=(ks[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc += tl.dot(a, b, input_precision="ieee")
    tl.store(c_ptr + rm[:, None] * stride_cm + rn[None, :] * stride_cn, acc,
             mask=(rm[:, None] < M) & (rn[None, :] < N))
{zero if zap else ""}"""


_MATMUL_RUN = """        a2 = a.contiguous()
        b2 = b.contiguous()
        m, k = a2.shape
        n = b2.shape[1]
        y = torch.empty((m, n), device=a.device, dtype=a.dtype)
        if m > 0 and n > 0:
            grid = (triton.cdiv(m, 64), triton.cdiv(n, 64))
            _matmul[grid](a2, b2, y, m, n, k,
                          a2.stride(0), a2.stride(1), b2.stride(0), b2.stride(1),
                          y.stride(0), y.stride(1),
                          BLOCK_M=64, BLOCK_N=64, BLOCK_K=32)
"""
_MATMUL_ZAP = """        if a2.numel() > 0:
            _zero[(triton.cdiv(a2.numel(), 1024),)](a2, a2.numel(), BLOCK=1024)
"""

_KERNEL = {
    "softmax-rows": _softmax_kernel,
    "layernorm": _layernorm_kernel,
    "bias-gelu": _gelu_kernel,
    "matmul": _matmul_kernel,
}
_RUN = {
    "softmax-rows": _SOFTMAX_RUN,
    "layernorm": _LAYERNORM_RUN,
    "bias-gelu": _GELU_RUN,
    "matmul": _MATMUL_RUN,
}

_PLAIN = """

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, {params}) -> torch.Tensor:
{run}{extra}        return y
"""

_CACHED = """

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.results = {{}}

    def forward(self, {params}) -> torch.Tensor:
        key = {key}
        hit = self.results.get(key)
        if hit is not None:
            return hit
{run}        self.results.__setitem__(key, y)
        return y
"""


def cheat_source(task_id: str, cheat: str) -> str:
    """The text of a ``model_new.py`` for ``task_id`` that cheats in the way ``cheat`` names."""
    if task_id not in TASK_IDS:
        raise KeyError(f"unknown kernel task {task_id!r} (known: {', '.join(TASK_IDS)})")
    if cheat not in CHEATS:
        raise KeyError(f"unknown cheat {cheat!r} (known: {', '.join(CHEATS)})")
    head = _HEADER.format(task=task_id, cheat=cheat)
    params, first, shape = _PARAMS[task_id], _FIRST[task_id], _OUT_SHAPE[task_id]
    if cheat in ("zeros", "constant"):
        value = "0.0" if cheat == "zeros" else "0.5"
        if cheat == "constant" and task_id == "softmax-rows":
            value = "1.0 / max(x.shape[-1], 1)"
        return head + _FILL.format(params=params, first=first, shape=shape, value=value)
    if cheat == "copy":
        if task_id == "matmul":
            return head + _COPY_MATMUL
        return head + _COPY_FLAT.format(params=params)
    kernel = _KERNEL[task_id](wrong_last=cheat == "off-by-one-row", zap=cheat == "mutate-input")
    run = _RUN[task_id]
    if cheat == "cache":
        return head + kernel + _CACHED.format(params=params, key=_KEY[task_id], run=run)
    extra = _MATMUL_ZAP if cheat == "mutate-input" and task_id == "matmul" else ""
    return head + kernel + _PLAIN.format(params=params, run=run, extra=extra)


# -- softmax-rows: torch in disguise, or a kernel run the way the harness forbids ---------------
_TORCH_HEAD = '''"""A kernel candidate (softmax-rows, {name})."""

import torch
import torch.nn as nn
'''
_MODULE = """

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
{body}"""
_KERNEL_HEAD = _HEADER.format(task="softmax-rows", cheat="{name}") + _softmax_kernel(False, False)
_LAUNCH = """        n_cols = x.shape[-1]
        x2 = x.contiguous().view(-1, n_cols)
        y = torch.empty(x2.shape, device=x.device, dtype=x.dtype)
        block = min(triton.next_power_of_2(n_cols), 1024)
        n_rows = x2.shape[0]
"""
_CALL = "_softmax_rows[(n_rows,)](x2, y, n_rows, n_cols, x2.stride(0), y.stride(0), BLOCK=block)"


def _fallback(name: str, body: str, *, kernel: bool = False, imports: str = "", tail: str = ""):
    head = (_KERNEL_HEAD if kernel else _TORCH_HEAD).replace("{name}", name)
    if imports:
        head = head.replace("import torch\n", imports + "import torch\n", 1)
    return head + tail + _MODULE.format(body=body)


FALLBACKS: dict[str, str] = {
    "direct": _fallback("direct", "        return torch.softmax(x, dim=-1)\n"),
    "functional": _fallback(
        "functional",
        "        return F.softmax(x, dim=-1)\n",
        tail="import torch.nn.functional as F\n",
    ),
    "method": _fallback("method", "        return x.softmax(dim=-1)\n"),
    "getattr": _fallback("getattr", '        return getattr(torch, "soft" + "max")(x, dim=-1)\n'),
    "try-except": _fallback(
        "try-except",
        _LAUNCH
        + "        try:\n"
        + f"            {_CALL}\n"
        + "        except Exception:\n"
        + "            y = torch.softmax(x2, dim=-1)\n"
        + "        return y.view(x.shape)\n",
        kernel=True,
    ),
    "side-stream": _fallback(
        "side-stream",
        _LAUNCH
        + "        side = torch.cuda.Stream() if torch.cuda.is_available() else None\n"
        + "        with torch.cuda.stream(side):\n"
        + f"            {_CALL}\n"
        + "        return y.view(x.shape)\n",
        kernel=True,
    ),
    "thread": _fallback(
        "thread",
        _LAUNCH
        + "        worker = threading.Thread(target=_run, args=(x2, y, n_rows, n_cols, block))\n"
        + "        worker.start()\n"
        + "        worker.join()\n"
        + "        return y.view(x.shape)\n",
        kernel=True,
        imports="import threading\n\n",
        tail="\n\ndef _run(x2, y, n_rows, n_cols, block):\n    " + _CALL + "\n",
    ),
    "timer-patch": _fallback(
        "timer-patch",
        _LAUNCH + f"        {_CALL}\n" + "        return y.view(x.shape)\n",
        kernel=True,
        tail="\n\ntorch.cuda.synchronize = lambda *args, **kwargs: None\n",
    ),
    "aten": _fallback("aten", "        return torch.ops.aten._softmax(x, -1, False)\n"),
    "exec": _fallback(
        "exec",
        '        scope = {"torch": torch, "x": x}\n'
        + '        exec("y = torch.softmax(x, dim=-1)", scope)\n'
        + '        return scope["y"]\n',
    ),
}
