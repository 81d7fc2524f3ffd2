"""The task format: what an agent is asked to speed up, and how a candidate is judged.

A task is a directory holding ``task.toml`` (this model) plus the files it names: the source
tree (for local tasks), the expert patch, and hidden inputs that are never shown to agents.
Paths in the file are relative to the task directory unless a field says otherwise.

    id = "pie-pair-sums"
    kind = "program"
    title = "Count pairs with a given sum"
    prompt = "Make main.py faster. It reads ... from stdin and prints ..."

    [source]
    path = "repo"               # or git = "https://..." + commit = "<sha>", or pypi = "name==1.0"

    [setup]
    pip = ["pytest==8.3.3"]     # the env image layer (docker); local runs use the host
    install = []                # commands after the patch applies (no network)

    [workload]
    command = "python3 main.py < inputs/workload.txt"   # or: file = "bench_workload.py"
                                # or: script = "workload.py" (in the task directory)
    protocol = "cold"           # or "warm": setup(), warmup calls, median of `calls` per process

    [tests]
    command = "python3 -m pytest -q -p no:cacheprovider --junitxml={junit}"
    protected = ["tests/", "conftest.py"]

    [[checks]]                         # output equivalence against the baseline
    name = "hidden-duplicates"
    command = "python3 main.py"
    stdin = "hidden/dups.txt"          # in the task directory, copied in at grading time
    hidden = true
    compare = "exact"

    [expert]
    patch = "expert.patch"
"""

from __future__ import annotations

import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from profilers.models import Protocol
from sandbox.errors import UserError

TASK_FILE = "task.toml"
#: Where the test command must write its JUnit XML (``{junit}`` in the command).
JUNIT_PATH = ".optimizer/junit.xml"


class TaskError(UserError):
    """A task file the user must fix: the problem names the file and the field."""


class Kind(StrEnum):
    PROGRAM = "program"  # a single-file program with stdin/stdout cases (PIE style)
    REPO = "repo"  # a library with a test suite and a workload (SWE-fficiency style)
    KERNEL = "kernel"  # a GPU kernel against a PyTorch reference (KernelBench style)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Strict):
    """Where the code comes from: exactly one of a local path, a git URL + commit, a sdist.

    ``path`` is relative to the task directory (or absolute, or ``~/...``). A path that is the
    top of a git repository is used as that repository, at ``commit`` (default HEAD); any
    other directory is copied and made a one-commit repository (``commit`` is then refused).
    ``optimizer tasks validate --repo`` and ``optimizer grade --repo`` replace the source at
    run time (:func:`tasks.source.with_repo`).
    """

    path: str | None = Field(
        None, description="A directory (made a git repo) or a git repo, e.g. `../clone`."
    )
    git: str | None = Field(None, description="A git URL; needs `commit`.")
    commit: str | None = Field(
        None, description="The base commit for `git` (or for a `path` that is a git repo)."
    )
    pypi: str | None = Field(None, description="A PyPI sdist, `name==version`.")

    @model_validator(mode="after")
    def _exactly_one(self) -> SourceSpec:
        given = [k for k in ("path", "git", "pypi") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of path, git (with commit) or pypi")
        if self.git and not self.commit:
            raise ValueError("a git source needs `commit`")
        if self.pypi and not re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", self.pypi):
            raise ValueError("pypi must be `name==version`")
        return self


class Setup(_Strict):
    image: str | None = Field(None, description="A prebuilt image to use instead of building.")
    python: str | None = Field(
        None,
        pattern=r"^\d+\.\d+$",
        description='The Python (major.minor, e.g. "3.13") runs get: the docker base image with '
        "that python3; the local backend checks that it is the host's.",
    )
    pip: list[str] = Field(default_factory=list, description="pip requirements (env layer).")
    apt: list[str] = Field(default_factory=list, description="Debian packages (env layer).")
    install: list[str] = Field(
        default_factory=list,
        description="Commands run in the work dir after the patch, without network. Only the "
        "work dir persists between runs.",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Variables for every run (tests, checks, timed runs); `{workdir}` in a "
        "value is the work dir's absolute path.",
    )
    package: Literal["none", "editable", "regular"] = Field(
        "none",
        description="Install the package under test (its entry points and metadata) after the "
        "patch applies, into a user site inside the work dir: `pip install --user --no-deps "
        "--no-build-isolation --no-index [-e] .` (its build backend must be in the image).",
    )


#: Where ``setup.package`` installs the package under test (a user base in the work dir).
PACKAGE_BASE = ".optimizer/user"


class HiddenWorkload(_Strict):
    """A workload the agent never sees, timed beside the visible one (never shown to agents).

    A candidate whose speed comes from recognizing the visible workload's input (a stored
    answer keyed by its hash, a fast path for its exact shape) is not faster here.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    command: str | None = Field(None, description="A shell command, timed as a whole.")
    script: str | None = Field(
        None,
        description="A Python file in the TASK directory with setup() and workload(), copied "
        "to .optimizer/hidden/<name>.py.",
    )
    files: list[str] = Field(
        default_factory=list,
        description="Task-directory files copied to .optimizer/inputs/<their path>.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> HiddenWorkload:
        if bool(self.command) == bool(self.script):
            raise ValueError("a hidden workload gives exactly one of command or script")
        return self


class WorkloadSpec(_Strict):
    """The workload: a shell command, or a Python file with setup() and workload()."""

    command: str | None = None
    file: str | None = Field(None, description="Path in the source tree (protected).")
    script: str | None = Field(
        None,
        description="A Python file in the TASK directory (setup() and workload(), as `file`), "
        "copied by the grader to .optimizer/workload.py in the work dir; used when the "
        "workload is not part of the source tree (imported datasets).",
    )

    metric: Literal["wall", "instructions", "both"] = Field(
        "wall",
        description="What grading compares: wall time, instruction counts (deterministic), "
        "or both (instructions rank, wall time confirms).",
    )
    hidden: list[HiddenWorkload] = Field(
        default_factory=list, description="Workloads timed too, never shown to agents."
    )
    protocol: Literal["cold", "warm"] = Field(
        "cold",
        description="cold: one call per fresh process, import + setup + the call timed; warm: "
        "in each fresh process, setup(), warm-up calls, then the median of `calls` timed calls "
        "(each after a fresh setup()). A command workload is always timed cold.",
    )
    warmup: int = Field(2, ge=1, le=1000, description="Warm: untimed calls before the timed.")
    calls: int = Field(10, ge=1, le=10000, description="Warm: timed calls per process.")

    def timing(self, override: str | None = None) -> Protocol:
        """The protocol to time with: the task's, or ``override`` (a --protocol flag)."""
        name = override or self.protocol
        return Protocol(name=name, warmup=self.warmup, calls=self.calls)

    @model_validator(mode="after")
    def _exactly_one(self) -> WorkloadSpec:
        if sum(bool(v) for v in (self.command, self.file, self.script)) != 1:
            raise ValueError("give exactly one of command, file or script")
        names = [h.name for h in self.hidden]
        if len(names) != len(set(names)):
            raise ValueError("hidden workload names must be unique")
        return self


class TestsSpec(_Strict):
    command: str = Field(
        description="The test command, as the project's CI runs it. runner = junit: it writes "
        "JUnit XML to `{junit}`; pytest: a pytest command (`--junitxml={junit}` is added when "
        "missing); unittest: a `python -m unittest ...` command (run by the grader's own "
        "unittest runner, `-m optimizer_unittest`, with the same arguments)."
    )
    runner: Literal["junit", "pytest", "unittest"] = Field(
        "junit",
        description="How results are read: junit (any command writing JUnit XML to `{junit}`), "
        "pytest or unittest (natively, with live results streamed to the grader).",
    )
    protected: list[str] = Field(
        default_factory=list,
        description="Paths (files, or directories ending in /) restored from the base before "
        "grading; a patch that touches them is rejected. The workload file, conftest.py and "
        ".optimizer/ are always protected.",
    )
    must_pass: list[str] = Field(
        default_factory=list,
        description="Test ids (JUnit classname::name or pytest node ids) that must pass "
        "(SWE-fficiency PASS_TO_PASS); empty means every test that ran must pass.",
    )
    serial: list[str] = Field(
        default_factory=list,
        description="Test files run one at a time (SWE-fficiency single_thread_tests).",
    )
    patch: str | None = Field(
        None,
        description="A diff of test files in the task directory (SWE-bench's test_patch), "
        "applied to the base and to every candidate before grading: the tests an expert "
        "commit adds run on the base, the expert and candidates alike.",
    )

    @model_validator(mode="after")
    def _runner_command(self) -> TestsSpec:
        words = self.command.split()
        if self.runner == "unittest" and not any(
            a == "-m" and b == "unittest" for a, b in zip(words, words[1:], strict=False)
        ):
            raise ValueError("runner = unittest needs a `python -m unittest ...` command")
        if self.runner == "pytest":
            if "pytest" not in self.command:
                raise ValueError("runner = pytest needs a pytest command")
            if re.search(r"--junit-?xml(?!=\{junit\})", self.command):
                raise ValueError(
                    "with runner = pytest, leave out --junitxml (it is added) or write "
                    "--junitxml={junit}"
                )
        return self


class Check(_Strict):
    """An output-equivalence check: the candidate's output must match the baseline's."""

    name: str
    command: str = Field(description="Run in the work dir; its stdout (or `output`) is compared.")
    stdin: str | None = Field(None, description="A file in the task directory fed as stdin.")
    files: list[str] = Field(
        default_factory=list,
        description="Task-directory files copied to .optimizer/inputs/<their path>.",
    )
    output: str | None = Field(None, description="A file the command writes, compared instead.")
    expected: str | None = Field(
        None,
        description="A task-directory file holding the known-correct output (PIE); when given, "
        "the output must also match it, not only the baseline's.",
    )
    reference_command: str | None = Field(
        None,
        description="Run on the baseline before `command` runs on the candidate, to store "
        "reference results under .optimizer/ (GSO `--reference` then `--eqcheck`).",
    )
    hidden: bool = Field(False, description="Hidden inputs are never shown to agents.")
    compare: Literal["exact", "lines", "numeric", "exit"] = Field(
        "exact",
        description="exact, lines (line by line after stripping), numeric (rtol/atol), or "
        "exit (the command's own equivalence check: exit status 0 passes).",
    )
    rtol: float = Field(1e-9, ge=0)
    atol: float = Field(0.0, ge=0)


class ReferenceLevel(_Strict):
    """A reference solution at some performance level (EvalPerf's DPE): a diff file."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    patch: str = Field(description="The diff, in the task directory.")


class Expert(_Strict):
    """The expert's solution: a diff file, or a commit of the source repository.

    Read it with :func:`tasks.source.expert_patch` (never ``patch`` directly): a ``commit``
    alone means the diff base..commit of the non-test files (the test files' diff is the
    task's ``[tests] patch``).
    """

    patch: str | None = Field(None, description="The expert diff, in the task directory.")
    speedup: float | None = Field(None, gt=0, description="The expert's published speedup.")
    speedup_protocol: Literal["cold", "warm"] | None = Field(
        None,
        description="How `speedup` was taken: cold or warm (default: the task's "
        "workload.protocol). `tasks validate` compares only readings taken the same way.",
    )
    commit: str | None = Field(
        None,
        description="The expert commit in the source git (GSO); used when `patch` is not "
        "given: its diff from the base, test files left out.",
    )
    levels: list[ReferenceLevel] = Field(
        default_factory=list,
        description="More reference solutions, at other performance levels (EvalPerf's DPE): "
        "with the base and the expert they make the levels a candidate's DPS is scored on.",
    )


class Level(_Strict):
    """An eff@k level (ENAMEL): tests of one size, with a hardness weight."""

    hardness: float = Field(ge=0)
    checks: list[str] = Field(description="Names of the checks that make up this level.")


class Efficiency(_Strict):
    alpha: float = Field(2.0, gt=1)
    repeats: int = Field(6, ge=1)
    levels: list[Level]


class TaskLimits(_Strict):
    """Per-phase time limits (seconds) and resources."""

    install_s: float = Field(600, gt=0)
    tests_s: float = Field(300, gt=0)
    workload_s: float = Field(120, gt=0)
    check_s: float = Field(60, gt=0)
    memory_mb: int = Field(2048, gt=0)
    pids: int = Field(256, gt=0)


Distribution = Literal["problem", "normal", "uniform", "heavy"]
#: The dtype policy: each dtype's default tolerances (atol, rtol); fp32 is held to 1e-4.
DTYPE_TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (1e-4, 1e-4),
    "float16": (1e-2, 1e-2),
    "int32": (0.0, 0.0),
}


class KernelSpec(_Strict):
    """A GPU kernel task (KernelBench format): a PyTorch reference and the kernel's contract.

    ``reference`` is a KernelBench problem file in the source tree: ``class Model(nn.Module)``,
    ``get_inputs()`` and ``get_init_inputs()`` at module level, its sizes as module-level
    ints that ``get_inputs()`` reads. The candidate writes ``candidate`` (``model_new.py``)
    defining ``ModelNew`` with the same constructor and ``forward`` signature.

    The judge runs ``trials`` rounds over every shape (a dict overriding those ints; none:
    the file's own sizes; ``cpu_shapes`` instead on a host without a GPU) and distribution;
    each round has fresh inputs from seeds drawn per grade. Floating inputs are cast to
    ``dtype`` and, unless the distribution is
    ``problem`` (as ``get_inputs()`` makes them), replaced by samples of it times a scale
    (round ``t`` uses ``scales[t % len(scales)]``).
    """

    reference: str = Field(description="The KernelBench problem file in the source tree.")
    entry: str = Field("Model", description="The reference nn.Module class name.")
    candidate: str = Field("model_new.py", description="The file the candidate writes.")
    new_entry: str = Field("ModelNew", description="The class the candidate defines there.")
    dtype: Literal["float32", "float16", "int32"] = "float32"
    atol: float | None = Field(None, ge=0, description="None: the dtype policy's.")
    rtol: float | None = Field(None, ge=0, description="None: the dtype policy's.")
    trials: int = Field(5, ge=1, le=100, description="Rounds of fresh inputs per shape.")
    shapes: list[dict[str, int | list[int]]] = Field(
        default_factory=list,
        description="Module-level sizes per shape, e.g. {dim = 33} or {input_shape = [7, 9]}.",
    )
    cpu_shapes: list[dict[str, int | list[int]]] | None = Field(
        None,
        description="The shapes checked without a GPU, under Triton's CPU interpreter (which "
        "runs each program instance in Python); None: the same as shapes.",
    )
    skip_invalid_shapes: bool = Field(
        False,
        description="Shapes derived by an importer: one that the reference itself rejects "
        "(a kernel wider than the input) is skipped and reported, not an error.",
    )
    distributions: list[Distribution] = Field(
        default_factory=lambda: ["normal", "uniform", "heavy"], min_length=1
    )
    scales: list[float] = Field(default_factory=lambda: [1.0, 100.0, 0.01], min_length=1)
    forbid: list[str] = Field(
        default_factory=list,
        description="The torch operators being replaced (Python names and aten ops): never "
        "called by the candidate, statically or at run time.",
    )
    torch_in_forward: Literal["glue", "any"] = Field(
        "glue",
        description="glue: forward may run only allocation, view and copy torch ops besides "
        "its Triton kernels; any: other torch ops too (a kernel for part of a model).",
    )

    @model_validator(mode="after")
    def _sane(self) -> KernelSpec:
        if any(not (s > 0 and s == s and s != float("inf")) for s in self.scales):
            raise ValueError("scales must be positive finite numbers")
        every = [*self.shapes, *(self.cpu_shapes or [])]
        sizes = [
            n
            for shape in every
            for v in shape.values()
            for n in (v if isinstance(v, list) else [v])
        ]
        if any(n < 0 for n in sizes):
            raise ValueError("shape sizes must not be negative")
        return self

    def shapes_for(self, *, gpu: bool) -> list[dict[str, int | list[int]]]:
        """The shapes one grade checks: ``shapes`` on a GPU, ``cpu_shapes`` without one
        (when set); ``[{}]`` (the file's own sizes) when none is declared."""
        chosen = self.shapes if gpu or self.cpu_shapes is None else self.cpu_shapes
        return chosen or [{}]

    def tolerances(self) -> tuple[float, float]:
        atol, rtol = DTYPE_TOLERANCES[self.dtype]
        return (atol if self.atol is None else self.atol, rtol if self.rtol is None else self.rtol)


class Task(_Strict):
    """One task, read from ``task.toml``. ``root`` is the task directory (set on load)."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    kind: Kind
    title: str = ""
    prompt: str = Field("", description="What the agent is told (never the hidden inputs).")
    source: SourceSpec
    setup: Setup = Setup()
    workload: WorkloadSpec
    tests: TestsSpec | None = None
    checks: list[Check] = Field(default_factory=list)
    expert: Expert = Expert()
    efficiency: Efficiency | None = None
    limits: TaskLimits = TaskLimits()
    kernel: KernelSpec | None = None
    root: Path = Field(Path("."), exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> Task:
        names = [c.name for c in self.checks]
        if len(names) != len(set(names)):
            raise ValueError("check names must be unique")
        if self.efficiency:
            unknown = {n for lv in self.efficiency.levels for n in lv.checks} - set(names)
            if unknown:
                raise ValueError(f"efficiency levels name unknown checks: {sorted(unknown)}")
        if self.kind is Kind.KERNEL and self.kernel is None:
            raise ValueError("a kernel task needs a [kernel] table")
        return self

    def install_commands(self) -> list[str]:
        """What runs after the patch applies: the package install, then ``setup.install``."""
        if self.setup.package == "none":
            return list(self.setup.install)
        editable = "-e " if self.setup.package == "editable" else ""
        pip = (
            "python3 -m pip install -q --user --no-deps --no-build-isolation --no-index "
            f"--no-compile --disable-pip-version-check --no-warn-script-location {editable}."
        )
        return [pip, *self.setup.install]

    def run_env(self, base: dict[str, str]) -> dict[str, str]:
        """Every run's variables: ``base`` (the harness's), then ``setup.env``. With
        ``setup.package`` the user site is the work dir's own (never the host's)."""
        env = {**base, **self.setup.env}
        if self.setup.package != "none":
            env.pop("PYTHONNOUSERSITE", None)
            env["PYTHONUSERBASE"] = "{workdir}/" + PACKAGE_BASE
        return env

    def protected_paths(self) -> list[str]:
        """Every path a candidate may not change."""
        paths = [*(self.tests.protected if self.tests else []), "conftest.py", ".optimizer/"]
        if self.workload.file:
            paths.append(self.workload.file)
        return sorted(set(paths))

    def visible_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.hidden]

    def hidden_checks(self) -> list[Check]:
        return [c for c in self.checks if c.hidden]

    def file(self, rel: str) -> Path:
        """A file of the task directory, checked to exist."""
        path = self.root / rel
        if not path.is_file():
            raise TaskError(
                f"{self.root / TASK_FILE}: {rel} does not exist",
                "add the file or correct the path (paths are relative to the task directory)",
            )
        return path


def load_task(path: Path) -> Task:
    """Read a task from ``task.toml`` (or its directory); raise a one-line TaskError."""
    path = Path(path)
    file = path / TASK_FILE if path.is_dir() else path
    if not file.is_file():
        raise TaskError(f"no task file at {file}", f"pass a task directory holding {TASK_FILE}")
    try:
        data = tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise TaskError(f"{file}: not valid TOML ({exc})", "correct the syntax") from None
    try:
        task = Task.model_validate({**data, "root": file.parent.resolve()})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        raise TaskError(f"{file}: field '{field}': {msg}", f"{_fix(err)}") from None
    rels = [
        task.expert.patch,
        task.tests.patch if task.tests else None,
        task.workload.script,
        *(c.stdin for c in task.checks),
        *(c.expected for c in task.checks),
        *_check_files(task),
        *(h.script for h in task.workload.hidden),
        *(f for h in task.workload.hidden for f in h.files),
    ]
    for rel in rels:
        if rel:
            task.file(rel)
    return task


def _check_files(task: Task) -> list[str]:
    return [f for c in task.checks for f in c.files]


def _fix(err: dict) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return "add the field"
    if kind == "extra_forbidden":
        return "remove the field, or check its spelling"
    return "see the task format in the README"
