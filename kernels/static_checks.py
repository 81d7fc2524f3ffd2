"""Static checks on a kernel candidate's Python source, before any of it runs.

A kernel task wants a ``ModelNew`` computing with its own Triton kernels. The known cheats are
refused from the text alone (``ast``: nothing is imported, run, read or written), one rule id
each: the replaced torch operator in any disguise (``fallback``), ``try`` blocks, code looked
up or built at run time (``dynamic``), imports off an allowlist (``import``), threads
(``thread``), CUDA streams, events and syncs (``stream``), patching a module (``tamper``),
``torch.compile`` and torch internals (``compile``), state across calls (``state``) and I/O
(``io``). Operator names compare case-insensitively without underscores, whole names only
(``layer_norm`` catches ``nn.LayerNorm``; ``mm`` never matches ``comm``); anything under
``triton.language`` (``tl``) is allowed.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


ALLOWED = _words("torch triton math functools typing itertools numbers dataclasses __future__")
TL = ["triton.language"]
THREADS = _words("threading multiprocessing concurrent _thread")
_STREAM = """Stream Event accelerator.synchronize accelerator.current_stream accelerator.set_stream
    cuda.Stream cuda.stream cuda.streams cuda.ExternalStream cuda.StreamContext cuda.Event
    cuda.synchronize cuda.set_stream cuda.current_stream cuda.default_stream cuda.graphs
    cuda.graph cuda.CUDAGraph cuda.make_graphed_callables"""
STREAM = ["torch." + n for n in _words(_STREAM)]
COMPILE = ["torch." + n for n in _words("compile jit _dynamo _inductor utils.cpp_extension ops _C")]
CACHES = ["functools.lru_cache", "functools.cache", "functools.cached_property"]
DYNAMIC = _words("eval exec compile __import__ globals vars locals __builtins__")
ATTR_FUNCS = _words("getattr setattr delattr hasattr")
DUNDERS = _words("""__dict__ __builtins__ __class__ __subclasses__ __globals__ __code__
    __closure__ __getattribute__ __setattr__ __delattr__ __bases__ __mro__""")
IO = _words("open input breakpoint exit quit")
MUTABLE_CALLS = _words("dict list set OrderedDict defaultdict deque Counter bytearray")
MUTATORS = _words("append extend insert update setdefault add pop popitem clear remove")
MUTABLE = (ast.Dict, ast.List, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
MATMULS = _words("matmul mm bmm")
MODULE_ROOTS = _words("torch triton tl math")
WHY = {
    "fallback": ", the operator this task replaces: compute it in your Triton kernel",
    "try": ": a kernel may not fall back to another path when it fails",
    "dynamic": ": code looked up or built at run time cannot be checked",
    "import": ": a kernel may import only torch, triton and a few pure standard modules, by name",
    "thread": ": threads and processes would run work outside the timed region",
    "stream": ": side streams, events and synchronizing are the harness's, never the candidate's",
    "tamper": ": patching the library, its timers or the harness is refused",
    "compile": ": the candidate must write its own Triton kernel",
    "state": ": a kernel may not keep state or caches between calls",
    "io": ": a kernel does no I/O",
    "syntax": ": the kernel must be valid Python",
}


class Finding(BaseModel):
    """One refused construct: where it is, its rule id, and a one-line what-and-why."""

    model_config = ConfigDict(frozen=True)

    path: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def _norm(name: str) -> str:
    return name.lower().replace("_", "")


def _dotted(node: ast.AST | None) -> list[str]:
    """``a.b.c`` as ``["a", "b", "c"]``; empty when the chain is not rooted at a name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else []


def _under(qual: str, prefixes: Sequence[str]) -> bool:
    return any(qual == p or qual.startswith(p + ".") for p in prefixes)


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _mutable(value: ast.AST | None) -> bool:
    if isinstance(value, ast.Call):
        return (_dotted(value.func) or [""])[-1] in MUTABLE_CALLS
    return isinstance(value, MUTABLE)


def _show(node: ast.AST | None) -> str:
    text = ast.unparse(node) if node else ""
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker:
    """One file's findings. ``aliases``: each imported or aliased name to its dotted path."""

    def __init__(self, path: str, tree: ast.Module, forbid: set[str], local: set[str]) -> None:
        self.path, self.tree, self.forbid, self.local = path, tree, forbid, local
        self.found: list[Finding] = []
        self.aliases: dict[str, str] = {}
        self.owner: dict[int, str] = {}  # node -> its innermost enclosing function's name
        self.inner: set[int] = set()  # Name/Attribute nodes inside a longer dotted chain
        self.called: set[int] = set()  # nodes that are the callee of a Call
        self.defs: set[str] = set()  # functions and classes the file defines
        self.params: set[str] = set()  # parameter names (``input`` is not the builtin)
        for node in ast.walk(tree):  # breadth first: outer before inner
            if isinstance(node, ast.Import):
                for a in node.names:
                    root = a.name.split(".")[0]
                    self.aliases[a.asname or root] = a.name if a.asname else root
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                name, parts = getattr(node.targets[0], "id", ""), _dotted(node.value)
                if name and parts and parts[0] in self.aliases:  # F = torch.nn.functional
                    self.aliases[name] = self.resolve(node.value)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.defs.add(node.name)
                if not isinstance(node, ast.ClassDef):
                    self.owner.update((id(n), node.name) for n in ast.walk(node) if n is not node)
            elif isinstance(node, ast.arg):
                self.params.add(node.arg)

    def add(self, node: ast.AST, rule: str, what: str) -> None:
        line = getattr(node, "lineno", 1)
        self.found.append(Finding(path=self.path, line=line, rule=rule, message=what + WHY[rule]))

    def resolve(self, node: ast.AST | None) -> str:
        parts = _dotted(node)
        return ".".join([self.aliases.get(parts[0], parts[0]), *parts[1:]]) if parts else ""

    def method(self, node: ast.AST) -> str:
        """The enclosing function where assigning to ``self`` keeps state: not ``__init__``."""
        owner = self.owner.get(id(node), "__init__")
        return "" if owner == "__init__" else owner

    def modlike(self, node: ast.AST | None) -> bool:
        root = (_dotted(node) or [""])[0]
        return root in self.aliases or root in MODULE_ROOTS

    def check_qual(self, node: ast.AST, qual: str, what: str) -> None:
        """The rules on a fully qualified dotted name (an import, a name or an attribute)."""
        parts = qual.split(".")
        if THREADS.intersection(parts):
            self.add(node, "thread", what)
        if _under(qual, STREAM):
            self.add(node, "stream", what)
        if _under(qual, COMPILE) or (parts[0] == "torch" and any(map(_private, parts[1:]))):
            self.add(node, "compile", what)
        if _under(qual, CACHES):
            self.add(node, "state", what)

    def check_import(self, node: ast.AST, module: str, qual: str) -> None:
        root = module.split(".")[0]
        if root == "importlib":
            self.add(node, "dynamic", f"imports {module}")
        elif root not in ALLOWED | THREADS | self.local:
            self.add(node, "import", f"imports {module}")
        self.check_qual(node, qual, f"imports {qual}")

    def check_target(self, target: ast.AST, verb: str) -> None:
        """Tamper (an attribute of a module) and state (``self.x`` outside ``__init__``)."""
        if isinstance(target, ast.Tuple | ast.List | ast.Starred):
            for elt in getattr(target, "elts", None) or [getattr(target, "value", None)]:
                self.check_target(elt, verb)
            return
        base = target
        while isinstance(base, ast.Attribute | ast.Subscript):
            base = base.value
        if base is target or not isinstance(base, ast.Name):
            return
        if base.id in self.aliases or base.id in MODULE_ROOTS:
            self.add(target, "tamper", f"{verb} {_show(target)}")
        elif base.id == "self" and self.method(target):
            self.add(target, "state", f"{verb} {_show(target)} in {self.method(target)}()")

    def run(self) -> list[Finding]:
        for stmt in self.tree.body:  # module-level caches
            if isinstance(stmt, ast.Assign | ast.AnnAssign) and _mutable(stmt.value):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                if [getattr(t, "id", "") for t in targets] != ["__all__"]:
                    self.add(stmt, "state", f"module-level mutable container {_show(stmt)}")
        for node in ast.walk(self.tree):  # breadth first: a Call before its callee
            self.visit(node)
        return self.found

    def visit(self, node: ast.AST) -> None:
        match node:
            case ast.Import():
                for a in node.names:
                    self.check_import(node, a.name, a.name)
            case ast.ImportFrom(level=0, module=str(module)):
                for a in node.names:
                    if a.name == "*":
                        self.add(node, "import", f"from {module} import *")
                    elif _norm(a.name) in self.forbid and not _under(module, TL):
                        self.add(node, "fallback", f"imports {module}.{a.name}")
                    self.check_import(node, module, f"{module}.{a.name}")
            case ast.ImportFrom():
                self.add(
                    node, "import", f"relative import from {'.' * node.level}{node.module or ''}"
                )
            case ast.Name(ctx=ast.Load()):
                self.visit_name(node)
            case ast.Attribute():
                self.visit_attribute(node)
            case ast.Call():
                self.visit_call(node)
            case ast.Try(handlers=handlers) | ast.TryStar(handlers=handlers):
                star = "*" if isinstance(node, ast.TryStar) else ""
                self.add(node, "try", f"try/except{star}" if handlers else "try/finally")
            case ast.Global(names=names) | ast.Nonlocal(names=names):
                self.add(node, "state", f"{type(node).__name__.lower()} {', '.join(names)}")
            case ast.Assign(targets=targets) | ast.Delete(targets=targets):
                verb = "assigns" if isinstance(node, ast.Assign) else "deletes"
                for target in targets:
                    self.check_target(target, verb)
            case ast.AnnAssign(target=target) | ast.AugAssign(target=target):
                verb = "updates" if isinstance(node, ast.AugAssign) else "assigns"
                self.check_target(target, verb)
            case ast.FunctionDef(args=args) | ast.AsyncFunctionDef(args=args):
                for default in [*args.defaults, *args.kw_defaults]:
                    if _mutable(default):
                        self.add(default, "state", f"mutable default argument {_show(default)}")
        if isinstance(getattr(node, "op", None), ast.MatMult) and self.forbid & MATMULS:
            self.add(node, "fallback", "uses the @ operator (torch.matmul)")

    def visit_name(self, node: ast.Name) -> None:
        name, qual = node.id, self.aliases.get(node.id, "")
        if name in DYNAMIC:
            self.add(node, "dynamic", f"uses {name}")
        elif name in ATTR_FUNCS and id(node) not in self.called:
            self.add(node, "dynamic", f"takes {name} as a value")
        elif name in IO and name not in self.params | self.defs | self.aliases.keys():
            self.add(node, "io", f"calls {name}")
        if id(node) in self.inner or not qual:
            return
        what = f"{'calls' if id(node) in self.called else 'uses'} {name} ({qual})"
        if _norm(qual.split(".")[-1]) in self.forbid and not _under(qual, TL):
            self.add(node, "fallback", what)
        self.check_qual(node, qual, what)

    def visit_attribute(self, node: ast.Attribute) -> None:
        self.inner.add(id(node.value))
        qual, parts, shown = self.resolve(node), _dotted(node), _show(node)
        what = f"{'calls' if id(node) in self.called else 'uses'} {shown}"
        if node.attr in DUNDERS:
            self.add(node, "dynamic", f"uses .{node.attr}")
        own = len(parts) == 2 and parts[0] in ("self", "cls") and node.attr in self.defs
        if _norm(node.attr) in self.forbid and not own and not _under(qual, TL):
            self.add(node, "fallback", what)
        if qual and id(node) not in self.inner:
            self.check_qual(node, qual, what + (f" ({qual})" if shown != qual else ""))

    def visit_call(self, node: ast.Call) -> None:
        self.called.add(id(node.func))
        func, callee, method = getattr(node.func, "id", ""), node.func, self.method(node)
        obj, key = [*node.args, None, None][:2]
        triton = _under(self.resolve(obj), TL)
        if func in ATTR_FUNCS:
            name = key.value if isinstance(key, ast.Constant) else None
            if not isinstance(name, str):
                self.add(node, "dynamic", f"{func}() with a computed name")
            elif func == "getattr" and _norm(name) in self.forbid and not triton:
                self.add(node, "fallback", f"getattr(..., {name!r}) reaches {name}")
            if func in ("setattr", "delattr") and self.modlike(obj):
                self.add(node, "tamper", f"{func}({_show(obj)}, ...)")
            elif func in ("setattr", "delattr") and _dotted(obj)[:1] == ["self"] and method:
                self.add(node, "state", f"{func}({_show(obj)}, ...) in {method}()")
        held = _dotted(getattr(callee, "value", None))  # self.cache.update(...) in forward
        on_self = len(held) > 1 and held[0] == "self"
        if getattr(callee, "attr", "") in MUTATORS and on_self and method:
            self.add(node, "state", f"calls {_show(callee)} in {method}()")


def check_sources(files: Mapping[str, str], forbid: Sequence[str] = ()) -> list[Finding]:
    """Every finding in the ``.py`` files of ``files`` (relative path -> text), sorted.

    ``forbid`` names the torch operators the task replaces (``["softmax", "_softmax"]``). A
    file that does not parse is one ``syntax`` finding; other files than ``.py`` are skipped.
    Importing another of the checked files (by its top-level name) is allowed: it is checked.
    """
    names = {_norm(n) for n in forbid} - {""}
    py = {p: t for p, t in files.items() if p.endswith(".py")}
    local = {p.split("/")[0].removesuffix(".py") for p in py}
    found: set[Finding] = set()
    for path, text in py.items():
        try:
            tree = ast.parse(text, filename=path)
        except (SyntaxError, ValueError) as err:  # ValueError: a null byte
            line, msg = getattr(err, "lineno", None) or 1, getattr(err, "msg", str(err))
            message = f"does not parse ({msg})" + WHY["syntax"]
            found.add(Finding(path=path, line=line, rule="syntax", message=message))
            continue
        found.update(_Checker(path, tree, names, local).run())
    return sorted(found, key=lambda f: (f.path, f.line, f.rule, f.message))


def refusal(findings: Sequence[Finding], limit: int = 5) -> str:
    """One paragraph saying why the kernel is refused (empty when nothing was found)."""
    if not findings:
        return ""
    shown = "; ".join(str(f) for f in findings[:limit])
    more = f" (and {len(findings) - limit} more)" if len(findings) > limit else ""
    return f"static checks refused the kernel: {shown}{more}"
