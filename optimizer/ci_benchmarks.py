"""Finding the benchmarks of a Python repository for `optimizer ci`, statically.

The repository's code is never imported or run here: only ``ast``, ``tomllib`` and ``json``
read an exported copy of the head revision's tree.

Declared benchmarks come from ``optimizer.toml`` at the root (``[benchmarks.NAME]`` and
``[ci]``), or else from ``pyproject.toml`` (``[tool.optimizer.benchmarks.NAME]`` and
``[tool.optimizer.ci]``)::

    [tool.optimizer.benchmarks.parse]
    workload = "bench/parse.py"      # a .py file with workload() (and setup()), or a command
    metric = "instructions"          # wall, instructions or both (default: the CLI's)
    threshold = "5%"                 # or a fraction, 0.05
    timeout = 60                     # seconds per run

    [tool.optimizer.ci]
    pip = ["numpy"]                  # also: apt, image, build, discover = false

Unless ``discover = false``, two harnesses are discovered too:

- pytest-benchmark: the test files that mention ``benchmark`` are listed here
  (``Discovery.pytest_files``); pytest itself collects them later, in the head sandbox, and
  runs each benchmark under pytest with a ``benchmark`` fixture of the tool's own
  (``optimizer.ci_pytest``), so parametrize, conftest fixtures, classes and
  ``setup_method`` work as in the project's own test run.
- asv: ``time_*`` functions and methods in the ``.py`` files of the benchmark directory
  (``benchmark_dir`` of ``asv.conf.json``, at the root or one directory down, relative to
  that file as asv reads it; else ``benchmarks/``), one benchmark per combination of
  ``params``, each a generated stdlib-only workload file (``Benchmark.code``, to be
  written at ``Benchmark.path``); the wrapper does asv's ``setup_cache`` and ``setup`` in
  ``setup()``.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import math
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from optimizer.bench import MetricChoice
from optimizer.errors import UserError

METRICS = ("wall", "instructions", "both")
BENCHMARK_KEYS = ("workload", "metric", "threshold", "timeout")
SKIP_DIRS = frozenset(
    {"venv", "env", "node_modules", "build", "dist", "site-packages", "__pycache__"}
)  # and every hidden directory (.git, .venv, .tox, .nox, .optimizer, ...)
WRAPPER_DIR = ".optimizer/bench"
THRESHOLD_FIX = 'write a percentage like "5%" or a fraction like 0.05'


class Benchmark(BaseModel):
    """One benchmark: a workload file (given, or generated in ``code``) or a command."""

    name: str = Field(description="Unique: the table key, a pytest node id, or an asv name.")
    origin: Literal["config", "pytest-benchmark", "asv"]
    kind: Literal["file", "command"]
    command: str | None = Field(None, description="A shell command, run from the repo root.")
    path: str | None = Field(None, description="The workload file, repo-relative (posix).")
    code: str | None = Field(None, description="Generated wrapper source, to write at path.")
    files: list[str] = Field(
        default_factory=list, description="Files that define it: head's go to both sides."
    )
    metric: MetricChoice | None = Field(None, description="None: the command-line default.")
    threshold: float | None = Field(None, description="A fraction (0.05 for 5%).")
    timeout_s: float | None = None


class CISettings(BaseModel):
    """The ``[ci]`` table: the environment both sides run in, and whether to discover."""

    model_config = ConfigDict(extra="forbid")

    pip: list[str] = []
    apt: list[str] = []
    image: str | None = None
    build: str | None = None
    discover: bool = True


class Discovery(BaseModel):
    """What ``discover`` found: settings, benchmarks, and tests it cannot run (with why)."""

    settings: CISettings
    benchmarks: list[Benchmark]
    skipped: list[str]
    config_file: str | None
    pytest_files: list[str] = Field(
        default_factory=list,
        description="Test files that may hold pytest-benchmark tests: pytest itself collects "
        "them in the head sandbox (optimizer.ci_pytest), which turns them into benchmarks.",
    )


def parse_threshold(value: str | float | int) -> float:
    """``"5%"`` -> 0.05, ``0.05`` or ``"0.05"`` -> 0.05; raise ValueError unless 0 < t < 1."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"threshold {value!r} is not a number or a percentage")
    text = str(value).strip()
    try:
        number = float(text.removesuffix("%"))
    except ValueError:
        raise ValueError(f"threshold {value!r} is not a number or a percentage") from None
    if text.endswith("%"):
        number /= 100
    elif number >= 1:
        raise ValueError(
            f"threshold {value!r} is ambiguous: write '{text}%' for a percentage, "
            "or a fraction below 1"
        )
    if not 0 < number < 1:
        raise ValueError(f"threshold {value!r} is not above 0% and below 100%")
    return number


def discover(tree: Path) -> Discovery:
    """Read the configuration and find the benchmarks in ``tree`` (a plain directory)."""
    config_file, settings, declared = _load_config(tree)
    benchmarks, skipped, pytest_files = list(declared), [], []
    if settings.discover:
        from optimizer.ci_pytest import candidate_files

        taken = {b.name for b in declared}
        found = _asv_benchmarks(tree, skipped)
        benchmarks += sorted((b for b in found if b.name not in taken), key=lambda b: b.name)
        pytest_files = candidate_files(tree)
    return Discovery(
        settings=settings, benchmarks=benchmarks, skipped=skipped, config_file=config_file,
        pytest_files=pytest_files,
    )  # fmt: skip


# -- configuration --------------------------------------------------------------------------


def read_settings(tree: Path) -> CISettings:
    """Only the ``[tool.optimizer.ci]`` table of ``tree`` (pip, apt, image, build): what
    `optimizer bench` shares with `optimizer ci`."""
    return _load_config(tree)[1]


def _load_config(tree: Path) -> tuple[str | None, CISettings, list[Benchmark]]:
    if (tree / "optimizer.toml").is_file():
        file, prefix = "optimizer.toml", ""
        section: Any = _read_toml(tree, file)
    elif (tree / "pyproject.toml").is_file():
        file, prefix = "pyproject.toml", "tool.optimizer."
        tool = _read_toml(tree, file).get("tool")
        section = tool.get("optimizer") if isinstance(tool, dict) else None
        if section is None:
            return None, CISettings(), []
        _table(section, file, "tool.optimizer")
    else:
        return None, CISettings(), []
    for key in section:
        if key not in ("ci", "benchmarks"):
            raise UserError(
                f"{file}: unknown key '{prefix}{key}'",
                f"use [{prefix}ci] and [{prefix}benchmarks.NAME]",
            )
    ci = _table(section.get("ci", {}), file, f"{prefix}ci")
    try:
        settings = CISettings.model_validate(ci)
    except ValidationError as exc:
        err = exc.errors()[0]
        key, *rest = err["loc"]
        if err["type"] == "extra_forbidden":
            fields = ", ".join(CISettings.model_fields)
            raise UserError(
                f"{file}: [{prefix}ci] has unknown key '{key}'", f"use {fields}"
            ) from None
        where = f"[{prefix}ci].{key}" + "".join(f"[{i}]" for i in rest)
        raise UserError(
            f"{file}: {where}: {err['msg']}",
            "pip and apt are lists of strings, image and build strings, discover true or false",
        ) from None
    tables = _table(section.get("benchmarks", {}), file, f"{prefix}benchmarks")
    declared = []
    for name, value in tables.items():
        header = f"{prefix}benchmarks.{_key(name)}"
        declared.append(_declared(tree, f"{file}: [{header}]", name, _table(value, file, header)))
    return file, settings, declared


def _read_toml(tree: Path, file: str) -> dict[str, Any]:
    try:
        return tomllib.loads((tree / file).read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{file}: not valid TOML ({exc})", "correct the syntax") from None


def _table(value: object, file: str, header: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserError(f"{file}: {header} is {value!r}, not a table", f"write it as [{header}]")
    return value


def _key(name: str) -> str:
    """A table key as TOML writes it: bare when it can be, else quoted."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _declared(tree: Path, where: str, name: str, table: dict[str, Any]) -> Benchmark:
    """One ``[benchmarks.NAME]`` table; ``where`` names it in errors (``file: [header]``)."""
    unknown = [k for k in table if k not in BENCHMARK_KEYS]
    if unknown:
        raise UserError(
            f"{where} has unknown key '{unknown[0]}'", "use " + ", ".join(BENCHMARK_KEYS)
        )
    workload = table.get("workload")
    if not isinstance(workload, str) or not workload.strip():
        got = "missing" if workload is None else f"{workload!r}"
        raise UserError(
            f"{where}.workload is {got}", "set it to a .py file with workload(), or a shell command"
        )
    metric = table.get("metric")
    if metric is not None and metric not in METRICS:
        raise UserError(f"{where}.metric is {metric!r}", "use wall, instructions or both")
    threshold = None
    if "threshold" in table:
        try:
            threshold = parse_threshold(table["threshold"])
        except ValueError as exc:
            raise UserError(f"{where}.{exc}", THRESHOLD_FIX) from None  # "threshold 5 is ..."
    timeout = table.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout < math.inf
    ):
        raise UserError(f"{where}.timeout is {timeout!r}", "give it in seconds, a number above 0")
    options = {"metric": metric, "threshold": threshold, "timeout_s": timeout}
    spec = workload.strip()
    if not (spec.endswith(".py") and not any(c.isspace() for c in spec)):
        return Benchmark(name=name, origin="config", kind="command", command=spec, **options)
    rel = PurePosixPath(spec)
    if rel.is_absolute() or not _inside(tree, tree / rel):
        raise UserError(
            f"{where}.workload: {spec} is not a file in the repository",
            "add the file, or give its path relative to the repository root",
        )
    path = rel.as_posix()
    return Benchmark(name=name, origin="config", kind="file", path=path, files=[path], **options)


# -- shared helpers -------------------------------------------------------------------------


def _walk(top: Path) -> list[Path]:
    """The .py files under ``top`` (sorted), outside hidden and environment directories."""
    found = []
    for parent, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS]
        found += [Path(parent) / f for f in files if f.endswith(".py")]
    return sorted(p for p in found if _inside(top, p))


def _inside(top: Path, path: Path) -> bool:
    """A file that is (or links to) a file under ``top``: never one elsewhere on the host."""
    return path.is_file() and path.resolve().is_relative_to(top.resolve())


def _parse(source: bytes, rel: str, skipped: list[str]) -> ast.Module | None:
    try:
        return ast.parse(source, filename=rel)
    except (SyntaxError, ValueError) as exc:
        skipped.append(f"{rel}: cannot be parsed ({exc})")
        return None


def _wrapper(name: str, constants: dict[str, object], body: str) -> str:
    header = repr(f"Generated by optimizer ci to run {name} as a workload.")
    return "\n".join([header, *(f"{k} = {v!r}" for k, v in constants.items()), body])


def _generated(
    name: str, origin: Literal["pytest-benchmark", "asv"], code: str, files: list[str]
) -> Benchmark:
    """A benchmark run by a generated wrapper, at a path unique to its name."""
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._-")[:80]
    path = f"{WRAPPER_DIR}/{slug}-{digest}.py"
    return Benchmark(name=name, origin=origin, kind="file", path=path, code=code, files=files)


# -- asv ------------------------------------------------------------------------------------

ASV_BODY = '''
import importlib
import itertools
import os
import sys

TARGET, ARGS = None, []


def combinations(params):
    """asv's rule: a list of lists (or tuples) is several parameters; other lists are one."""
    params = list(params)
    if params and all(isinstance(p, (list, tuple)) for p in params):
        return list(itertools.product(*params))
    return [(p,) for p in params]


def first(sources, attr):
    return next((getattr(s, attr) for s in sources if getattr(s, attr, None) is not None), None)


def setup():
    global TARGET, ARGS
    directory = os.path.abspath(BENCH_DIR)
    if PACKAGE:
        sys.path.insert(0, os.path.dirname(directory))
        module = importlib.import_module(os.path.basename(directory) + "." + MODULE)
    else:
        sys.path.insert(0, directory)
        module = importlib.import_module(MODULE)
    owner = getattr(module, CLASS)() if CLASS else module
    target = getattr(owner, FUNCTION)
    sources = [target, owner, module] if CLASS else [target, module]  # where asv looks
    args = [] if INDEX is None else list(combinations(first(sources, "params"))[INDEX])
    cache = first(sources, "setup_cache")
    if cache is not None:
        args.insert(0, cache())
    for source in reversed(sources):  # the module's setup first, as asv does
        step = getattr(source, "setup", None)
        if step is not None:
            step(*args)
    TARGET, ARGS = target, args


def workload():
    TARGET(*ARGS)
'''


def _asv_benchmarks(tree: Path, skipped: list[str]) -> list[Benchmark]:
    tree = tree.resolve()
    directory = _asv_dir(tree, skipped)
    if directory is None:
        return []
    files = sorted(p.relative_to(tree).as_posix() for p in _walk(directory))
    location = {
        "BENCH_DIR": directory.relative_to(tree).as_posix(),
        "PACKAGE": (directory / "__init__.py").is_file(),
    }
    found = []
    for file in _walk(directory):
        rel = file.relative_to(tree).as_posix()
        module = None if file.name == "__init__.py" else _parse(file.read_bytes(), rel, skipped)
        if module is not None:
            dotted = ".".join(file.relative_to(directory).with_suffix("").parts)
            for cls, fn, params in _asv_targets(module):
                name = ".".join([dotted, *([cls] if cls else []), fn])
                for index, suffix in _combinations(params, name, skipped):
                    constants = {**location, "MODULE": dotted, "CLASS": cls, "FUNCTION": fn}
                    code = _wrapper(name + suffix, {**constants, "INDEX": index}, ASV_BODY)
                    found.append(_generated(name + suffix, "asv", code, files))
    return found


def _asv_conf(tree: Path) -> Path | None:
    """``asv.conf.json`` at the root, else one directory down (``benchmarks/asv.conf.json``)."""
    if (tree / "asv.conf.json").is_file():
        return tree / "asv.conf.json"
    below = sorted(p for p in tree.glob("*/asv.conf.json") if not p.parent.name.startswith("."))
    return next((p for p in below if _inside(tree, p)), None)


def _asv_dir(tree: Path, skipped: list[str]) -> Path | None:
    """``benchmark_dir`` of ``asv.conf.json`` (which may have ``//`` comment lines), relative
    to that file's directory as asv reads it, or ``benchmarks/``."""
    conf = _asv_conf(tree)
    name: object = "benchmarks"
    where = tree
    if conf is not None:
        rel_conf = conf.relative_to(tree).as_posix()
        lines = conf.read_text(encoding="utf-8", errors="replace").splitlines()
        text = "\n".join("" if ln.lstrip().startswith("//") else ln for ln in lines)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{rel_conf}: not valid JSON ({exc})",
                "correct the syntax (comments are allowed only as whole // lines)",
            ) from None
        if not isinstance(data, dict):
            raise UserError(f"{rel_conf}: not a JSON object", "write it as {...}")
        name = data.get("benchmark_dir", name)
        rel = PurePosixPath(name) if isinstance(name, str) and name.strip() else None
        if rel is None or rel.is_absolute():
            raise UserError(
                f"{rel_conf}: benchmark_dir is {name!r}",
                "give a directory relative to the asv.conf.json file",
            )
        where = conf.parent
    directory = (where / str(name)).resolve()
    if conf is None and not directory.is_relative_to(tree.resolve()):
        return None  # a benchmarks/ link out of the tree: never read
    if not directory.is_relative_to(tree.resolve()):
        raise UserError(
            f"{conf.relative_to(tree).as_posix()}: benchmark_dir is {name!r}, outside the "
            "repository",
            "give a directory inside the repository, relative to the asv.conf.json file",
        )
    if directory.is_dir():
        return directory
    if conf is not None:
        skipped.append(f"asv.conf.json: benchmark_dir {name!r} is not a directory in the tree")
    return None


def _asv_targets(module: ast.Module) -> Iterator[tuple[str | None, str, ast.expr | None]]:
    """(class or None, function, params expression) of each ``time_*`` benchmark.

    ``params`` is looked up as asv does: on the function, the class (or a base class in the
    same module), then the module.
    """
    classes = {n.name: n for n in module.body if isinstance(n, ast.ClassDef)}
    module_params = _assigned(module.body, "params")
    function_params = {
        t.value.id: node.value
        for node in module.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Attribute) and t.attr == "params" and isinstance(t.value, ast.Name)
    }
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("time_"):
            yield None, node.name, function_params.get(node.name, module_params)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            chain = list(_lineage(node, classes))
            methods = {f.name for c in chain for f in c.body if isinstance(f, ast.FunctionDef)}
            found = (_assigned(c.body, "params") for c in chain)
            params = next((p for p in found if p is not None), module_params)
            for fn in sorted(m for m in methods if m.startswith("time_")):
                yield node.name, fn, params


def _lineage(
    cls: ast.ClassDef, classes: dict[str, ast.ClassDef], depth: int = 0
) -> Iterator[ast.ClassDef]:
    """The class, then its base classes defined in the same module, depth first."""
    yield cls
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in classes and depth < 20:
            yield from _lineage(classes[base.id], classes, depth + 1)


def _assigned(body: list[ast.stmt], name: str) -> ast.expr | None:
    """The value last assigned to ``name`` in a module or class body."""
    value = None
    for node in body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value:
            targets = [node.target]
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            value = node.value
    return value


def _combinations(
    params: ast.expr | None, name: str, skipped: list[str]
) -> list[tuple[int | None, str]]:
    """(index, name suffix) of each combination of ``params``, in asv's order."""
    if params is None:
        return [(None, "")]
    try:
        value = ast.literal_eval(params)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        skipped.append(f"{name}: params is not a literal, so its combinations are unknown")
        return []
    if not isinstance(value, list | tuple):
        skipped.append(f"{name}: params is a {type(value).__name__}, not a list")
        return []
    if not value:
        return [(None, "")]
    several = all(isinstance(p, list | tuple) for p in value)
    combos = list(itertools.product(*value)) if several else [(p,) for p in value]
    return [(i, "(" + ", ".join(map(repr, c)) + ")") for i, c in enumerate(combos)]
