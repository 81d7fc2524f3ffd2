"""Tests for optimizer/ci_benchmarks.py: configuration, pytest-benchmark and asv discovery on
real files, and the generated wrappers run for real by the harness in a local sandbox."""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from optimizer.ci_benchmarks import Benchmark, CISettings, discover, parse_threshold
from optimizer.errors import UserError
from profilers import Workload, install, measure_wall
from sandbox import Limits, Sandbox, Source, open_sandbox


def write(tree: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tree


def names(tree: Path) -> list[str]:
    return [b.name for b in discover(tree).benchmarks]


def error(tree: Path) -> str:
    with pytest.raises(UserError) as info:
        discover(tree)
    line = str(info.value)
    assert "\n" not in line and ". Fix: " in line
    return line


# -- configuration --------------------------------------------------------------------------

PYPROJECT = """
[project]
name = "demo"

[tool.optimizer.benchmarks.sort]
workload = "./bench/sort.py"
metric = "instructions"
threshold = "5%"
timeout = 30

[tool.optimizer.benchmarks."cli run"]
workload = "python -m demo --fast"
threshold = 0.1

[tool.optimizer.benchmarks.parse]
workload = "bench/parse.py"

[tool.optimizer.ci]
pip = ["numpy>=1.26"]
apt = ["libxml2-dev"]
build = "python3 setup.py build_ext --inplace"
"""


def test_pyproject_tables_are_declared_benchmarks_in_file_order(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": PYPROJECT, "bench/sort.py": "", "bench/parse.py": ""})
    found = discover(tmp_path)
    assert found.config_file == "pyproject.toml"
    assert found.settings == CISettings(
        pip=["numpy>=1.26"], apt=["libxml2-dev"], build="python3 setup.py build_ext --inplace"
    )
    sort, cli, parse = found.benchmarks
    assert sort == Benchmark(
        name="sort",
        origin="config",
        kind="file",
        path="bench/sort.py",
        files=["bench/sort.py"],
        metric="instructions",
        threshold=0.05,
        timeout_s=30,
    )
    assert (cli.name, cli.kind, cli.command, cli.path, cli.files) == (
        "cli run",
        "command",
        "python -m demo --fast",
        None,
        [],
    )
    assert cli.threshold == 0.1 and cli.metric is None and cli.timeout_s is None
    assert (parse.name, parse.path, parse.code) == ("parse", "bench/parse.py", None)
    assert found.skipped == []


def test_optimizer_toml_is_used_instead_of_pyproject(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": PYPROJECT,  # would fail: its bench files do not exist
            "optimizer.toml": """
                [benchmarks.render]
                workload = "make render"
                metric = "both"

                [ci]
                image = "ghcr.io/me/env:1"
                """,
        },
    )
    found = discover(tmp_path)
    assert found.config_file == "optimizer.toml"
    assert found.settings == CISettings(image="ghcr.io/me/env:1")
    assert [(b.name, b.command, b.metric) for b in found.benchmarks] == [
        ("render", "make render", "both")
    ]


def test_no_configuration_gives_defaults(tmp_path: Path) -> None:
    assert discover(tmp_path).config_file is None
    write(tmp_path, {"pyproject.toml": "[project]\nname = 'x'\n[tool.ruff]\nline-length = 1\n"})
    found = discover(tmp_path)
    assert (found.config_file, found.settings, found.benchmarks) == (None, CISettings(), [])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5%", 0.05),
        ("0.5%", 0.005),
        (" 12.5% ", 0.125),
        (0.05, 0.05),
        ("0.05", 0.05),
        (0.999, 0.999),
    ],
)
def test_parse_threshold_accepts_percentages_and_fractions(value: object, expected: float) -> None:
    assert parse_threshold(value) == pytest.approx(expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (5, "threshold 5 is ambiguous: write '5%'"),
        ("5", "threshold '5' is ambiguous: write '5%'"),
        (1, "ambiguous"),
        ("100%", "not above 0% and below 100%"),
        ("0%", "not above 0%"),
        (0, "not above 0%"),
        ("-5%", "not above 0%"),
        ("fast", "not a number or a percentage"),
        ("", "not a number"),
        ("%", "not a number"),
        ("nan", "not above 0%"),
        (True, "not a number"),
        ([5], "not a number"),
    ],
)
def test_parse_threshold_rejects_bad_values(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_threshold(value)  # type: ignore[arg-type]


BAD_CONFIGS = [
    (
        "[tool.optimizer.benchmarks.parse]\nworkload = 'x.py'\nmetric = 'fast'\n",
        "pyproject.toml: [tool.optimizer.benchmarks.parse].metric is 'fast'. "
        "Fix: use wall, instructions or both",
    ),
    (
        "[tool.optimizer.benchmarks.parse]\nworkload = 'x.py'\nthreshold = 5\n",
        "pyproject.toml: [tool.optimizer.benchmarks.parse].threshold 5 is ambiguous",
    ),
    (
        "[tool.optimizer.benchmarks.parse]\nworkload = 'x.py'\nthreshold = 'lots'\n",
        "[tool.optimizer.benchmarks.parse].threshold 'lots' is not a number",
    ),
    (
        "[tool.optimizer.benchmarks.parse]\nworkload = 'x.py'\ntimeout = -1\n",
        "pyproject.toml: [tool.optimizer.benchmarks.parse].timeout is -1",
    ),
    (
        "[tool.optimizer.benchmarks.parse]\nworkload = 'x.py'\ntimeout = '10'\n",
        "[tool.optimizer.benchmarks.parse].timeout is '10'",
    ),
    ("[tool.optimizer.benchmarks.parse]\nmetric = 'wall'\n", ".parse].workload is missing"),
    ("[tool.optimizer.benchmarks.parse]\nworkload = 3\n", ".parse].workload is 3"),
    (
        "[tool.optimizer.benchmarks.parse]\nworkload = 'bench/nope.py'\n",
        "[tool.optimizer.benchmarks.parse].workload: bench/nope.py is not a file in the repo",
    ),
    ("[tool.optimizer.benchmarks.up]\nworkload = '../x.py'\n", ".up].workload: ../x.py is not"),
    (
        "[tool.optimizer.benchmarks.parse]\nwrkload = 'x.py'\n",
        "pyproject.toml: [tool.optimizer.benchmarks.parse] has unknown key 'wrkload'. "
        "Fix: use workload, metric, threshold, timeout",
    ),
    (
        "[tool.optimizer.benchmarks.'a b']\nworkload = 'x.py'\nmetric = 1\n",
        '[tool.optimizer.benchmarks."a b"].metric is 1',
    ),
    (
        "[tool.optimizer.benchmarks]\nparse = 3\n",
        "tool.optimizer.benchmarks.parse is 3, not a table",
    ),
    ("[tool.optimizer]\nbenchmarks = 3\n", "tool.optimizer.benchmarks is 3, not a table"),
    (
        "[tool.optimizer.benchmark.parse]\nworkload = 'x.py'\n",
        "pyproject.toml: unknown key 'tool.optimizer.benchmark'. Fix: use [tool.optimizer.ci]",
    ),
    ("[tool.optimizer.ci]\npipp = ['x']\n", "[tool.optimizer.ci] has unknown key 'pipp'"),
    ("[tool.optimizer.ci]\npip = 'numpy'\n", "pyproject.toml: [tool.optimizer.ci].pip: "),
    ("[tool.optimizer.ci]\npip = ['a', 2]\n", "[tool.optimizer.ci].pip[1]: "),
    ("[tool.optimizer.ci]\ndiscover = 'maybe'\n", "[tool.optimizer.ci].discover: "),
    ("[tool.optimizer\nci = 1\n", "pyproject.toml: not valid TOML (Expected ']'"),
]


@pytest.mark.parametrize(("pyproject", "message"), BAD_CONFIGS)
def test_malformed_pyproject_is_a_one_line_user_error(
    tmp_path: Path, pyproject: str, message: str
) -> None:
    write(tmp_path, {"pyproject.toml": pyproject, "x.py": ""})
    assert message in error(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[benchmarks.a]\nworkload = 'x.py'\nmetric = 'fast'\n", "optimizer.toml: [benchmarks.a]"),
        ("[ci]\nbuild = 3\n", "optimizer.toml: [ci].build: "),
        ("[cii]\nbuild = 'x'\n", "optimizer.toml: unknown key 'cii'. Fix: use [ci] and"),
        ("[benchmarks.a\n", "optimizer.toml: not valid TOML"),
    ],
)
def test_malformed_optimizer_toml_is_a_one_line_user_error(
    tmp_path: Path, text: str, message: str
) -> None:
    write(tmp_path, {"optimizer.toml": text, "x.py": ""})
    assert message in error(tmp_path)


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ('{"benchmark_dir": "perf",,}', "asv.conf.json: not valid JSON"),
        ("[1, 2]", "asv.conf.json: not a JSON object"),
        ('{"benchmark_dir": "../elsewhere"}', "asv.conf.json: benchmark_dir is '../elsewhere'"),
        ('{"benchmark_dir": 3}', "asv.conf.json: benchmark_dir is 3"),
    ],
)
def test_malformed_asv_conf_is_a_user_error(tmp_path: Path, conf: str, message: str) -> None:
    write(tmp_path, {"asv.conf.json": conf})
    assert message in error(tmp_path)


# -- pytest-benchmark -----------------------------------------------------------------------

PERF_TESTS = """
import pytest

from demo import parse


@pytest.fixture
def test_data(benchmark):  # a fixture, not a test
    return 1


def test_parse(benchmark):
    assert benchmark(parse, "1 2 3") == [1, 2, 3]


def test_files(benchmark, tmp_path, tmpdir, rounds=3):
    benchmark(parse, "1")


def test_plain():  # no benchmark: not one of ours
    assert parse("") == []


def test_db(benchmark, db):
    benchmark(db.query)


def test_two(benchmark, db, client):
    benchmark(db.query)


async def test_async(benchmark):
    benchmark(parse, "1")


@pytest.mark.parametrize("n", [1, 2])
def test_sizes(benchmark, n):
    benchmark(parse, "1" * n)


@pytest.mark.usefixtures("db")
def test_uses(benchmark):
    benchmark(parse, "1")


def helper(benchmark):  # not test*
    benchmark(parse, "1")


class TestParser:
    def test_method(self, benchmark):
        benchmark(parse, "4")

    def test_other(self):
        pass


@pytest.mark.parametrize("n", [1])
class TestMarked:
    def test_marked(self, benchmark, n):
        benchmark(parse, "1")


class TestWithInit:  # pytest does not collect it
    def __init__(self):
        pass

    def test_x(self, benchmark):
        benchmark(parse, "1")


class Helper:  # not Test*
    def test_x(self, benchmark):
        benchmark(parse, "1")
"""


def test_pytest_benchmark_files_are_listed_for_pytest_to_collect_not_parsed_here(
    tmp_path: Path,
) -> None:
    """Discovery on the host only lists the files: pytest collects them in the sandbox
    (parametrize, conftest fixtures and classes included; tests/test_ci_pytest.py)."""
    write(tmp_path, {"tests/test_perf.py": PERF_TESTS, "tests/test_plain.py": "def test_x(): 0\n"})
    found = discover(tmp_path)
    assert found.benchmarks == []
    assert found.pytest_files == ["tests/test_perf.py"]
    assert found.skipped == []


def test_pytest_discovery_walks_test_files_but_not_environments_or_hidden_dirs(
    tmp_path: Path,
) -> None:
    test = "def test_it(benchmark):\n    benchmark(len, 'x')\n"
    ignored = [".venv", "venv", "env", "node_modules", "build", "dist", ".tox", ".optimizer"]
    write(
        tmp_path,
        {
            "pkg/parse_test.py": test,
            "test_root.py": test,
            "tests/helpers.py": test,  # not a test file name
            "tests/test_nobench.py": "def test_x(:\n",  # broken, but never says benchmark
            "tests/test_broken.py": "def test_x(benchmark:\n",
            "lib/site-packages/x/test_x.py": test,
            **{f"{d}/test_x.py": test for d in ignored},
        },
    )
    found = discover(tmp_path)
    assert found.pytest_files == ["pkg/parse_test.py", "test_root.py", "tests/test_broken.py"]


# -- asv ------------------------------------------------------------------------------------

ASV_SORT = """
import random


def setup():
    global DATA
    DATA = list(range(100))


def time_shuffle():
    random.shuffle(DATA)


def mem_list():
    return [0] * 100


def track_value():
    return 1


class TimeSort:
    params = [[100, 1000], ["quick", "merge"]]
    param_names = ["n", "kind"]

    def setup(self, n, kind):
        self.data = list(range(n, 0, -1))

    def time_sort(self, n, kind):
        sorted(self.data)

    def peakmem_sort(self, n, kind):
        sorted(self.data)


class Sizes:
    params = (10, 20)

    def time_range(self, n):
        list(range(n))

    def timeraw_import(self, n):
        return "import json"


class _Private:
    def time_hidden(self):
        pass


class Base:
    params = [1, 2]

    def setup(self, n):
        self.n = n


class TimeChild(Base):
    def time_child(self, n):
        pass


class TimeDynamic:
    params = [list(range(3))]

    def time_x(self, n):
        pass


def time_pair(a):
    pass


time_pair.params = ["x", "y"]
"""


def test_asv_benchmarks_are_found_with_params_expanded_as_asv_names_them(
    tmp_path: Path,
) -> None:
    deep = "class TimeDeep:\n    def time_it(self):\n        pass\n"
    write(tmp_path, {"benchmarks/bench_sort.py": ASV_SORT, "benchmarks/sub/deep.py": deep})
    found = discover(tmp_path)
    by_name = {b.name: b for b in found.benchmarks}
    assert list(by_name) == [
        "bench_sort.Sizes.time_range(10)",
        "bench_sort.Sizes.time_range(20)",
        "bench_sort.TimeChild.time_child(1)",
        "bench_sort.TimeChild.time_child(2)",
        "bench_sort.TimeSort.time_sort(100, 'merge')",
        "bench_sort.TimeSort.time_sort(100, 'quick')",
        "bench_sort.TimeSort.time_sort(1000, 'merge')",
        "bench_sort.TimeSort.time_sort(1000, 'quick')",
        "bench_sort.time_pair('x')",
        "bench_sort.time_pair('y')",
        "bench_sort.time_shuffle",
        "sub.deep.TimeDeep.time_it",
    ]
    assert found.skipped == [
        "bench_sort.TimeDynamic.time_x: params is not a literal, so its combinations are unknown"
    ]
    # itertools.product order: (100, quick), (100, merge), (1000, quick), (1000, merge)
    code = by_name["bench_sort.TimeSort.time_sort(1000, 'quick')"].code or ""
    assert "INDEX = 2\n" in code and "CLASS = 'TimeSort'\n" in code
    assert "INDEX = None\n" in (by_name["bench_sort.time_shuffle"].code or "")
    for b in found.benchmarks:
        assert (b.origin, b.kind) == ("asv", "file")
        assert b.files == ["benchmarks/bench_sort.py", "benchmarks/sub/deep.py"]
        code = b.code or ""
        assert "PACKAGE = False\n" in code and "BENCH_DIR = 'benchmarks'\n" in code
        compile(code, b.path or "", "exec")


def test_asv_conf_json_with_comments_names_a_package_benchmark_dir(tmp_path: Path) -> None:
    conf = """
        // asv.conf.json allows comment lines
        {
            "version": 1,
            // the benchmarks live in perf/
            "benchmark_dir": "perf"
        }
        """
    write(
        tmp_path,
        {
            "asv.conf.json": conf,
            "perf/__init__.py": "def time_in_init():\n    pass\n",
            "perf/bench_a.py": "def time_a():\n    pass\n",
            "benchmarks/bench_b.py": "def time_b():\n    pass\n",  # not the benchmark dir
        },
    )
    (b,) = discover(tmp_path).benchmarks
    assert b.name == "bench_a.time_a"
    assert b.files == ["perf/__init__.py", "perf/bench_a.py"]
    code = b.code or ""
    assert "PACKAGE = True\n" in code and "BENCH_DIR = 'perf'\n" in code


def test_a_missing_asv_benchmark_dir_is_reported_as_skipped(tmp_path: Path) -> None:
    write(tmp_path, {"asv.conf.json": '{"benchmark_dir": "perf"}'})
    found = discover(tmp_path)
    assert found.benchmarks == []
    assert found.skipped == ["asv.conf.json: benchmark_dir 'perf' is not a directory in the tree"]


def test_files_linking_outside_the_tree_are_never_read(tmp_path: Path) -> None:
    secret = write(tmp_path, {"secret.py": "def time_secret():\n    pass\n"}) / "secret.py"
    tree = write(tmp_path / "tree", {"benchmarks/bench_a.py": "def time_a():\n    pass\n"})
    (tree / "benchmarks/linked.py").symlink_to(secret)
    (b,) = discover(tree).benchmarks
    assert (b.name, b.files) == ("bench_a.time_a", ["benchmarks/bench_a.py"])
    write(tree, {"optimizer.toml": "[benchmarks.s]\nworkload = 'benchmarks/linked.py'\n"})
    assert "[benchmarks.s].workload: benchmarks/linked.py is not a file in" in error(tree)
    elsewhere = write(tmp_path, {"elsewhere/bench_e.py": "def time_e():\n    pass\n"})
    (tmp_path / "other").mkdir()
    (tmp_path / "other/benchmarks").symlink_to(elsewhere / "elsewhere")
    assert discover(tmp_path / "other").benchmarks == []
    (tree / "optimizer.toml").unlink()
    (tree / "test_linked.py").symlink_to(write(tmp_path, {"test_s.py": TEST_X}) / "test_s.py")
    assert discover(tree).pytest_files == []


# -- combining ------------------------------------------------------------------------------

DECLARED = """
[benchmarks."bench_x.time_a"]
workload = "python3 -c pass"

[benchmarks.zeta]
workload = "true"

[benchmarks.alpha]
workload = "true"
"""
BENCH_X = "def time_b():\n    pass\n\ndef time_a():\n    pass\n"
TEST_X = "def test_x(benchmark):\n    benchmark(len, 'x')\n"


def test_declared_come_first_and_win_name_collisions(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"optimizer.toml": DECLARED, "benchmarks/bench_x.py": BENCH_X, "test_x.py": TEST_X},
    )
    found = discover(tmp_path)
    assert [(b.name, b.origin) for b in found.benchmarks] == [
        ("bench_x.time_a", "config"),
        ("zeta", "config"),
        ("alpha", "config"),
        ("bench_x.time_b", "asv"),
    ]
    assert found.pytest_files == ["test_x.py"]


def test_discover_false_keeps_only_declared_benchmarks(tmp_path: Path) -> None:
    files = {
        "optimizer.toml": DECLARED + "\n[ci]\ndiscover = false\n",
        "benchmarks/bench_x.py": BENCH_X,
        "test_x.py": TEST_X,
        "asv.conf.json": "{not json",  # never read
    }
    assert names(write(tmp_path, files)) == ["bench_x.time_a", "zeta", "alpha"]


# -- the generated wrappers, run by the real harness --------------------------------------

LIMITS = Limits(wall_s=60)


def run_wrapper(sb: Sandbox, b: Benchmark, inner: int = 3) -> float:
    """Write the wrapper, run it under the harness, and return its median time."""
    assert b.path and b.code
    sb.write_file(b.path, b.code.encode())
    workload = install(sb, Workload(kind="file", target=b.path))
    run = measure_wall(sb, workload, inner=inner, python=sys.executable, limits=LIMITS)
    assert len(run.samples_ns) == inner
    return run.seconds


def lines(sb: Sandbox, log: str) -> list[str]:
    return sb.run(["cat", log], limits=LIMITS).stdout.splitlines()


ASV_RUN = """
def note(text, log="asv.log"):
    with open(log, "a") as f:
        f.write(text + "\\n")


class TimeSort:
    params = [[100, 1000], ["quick", "merge"]]

    def setup_cache(self):
        note("setup_cache")
        return "cached"

    def setup(self, cache, n, kind):
        note(f"setup {cache} {n} {kind}")
        self.data = list(range(n, 0, -1))

    def time_sort(self, cache, n, kind):
        assert sorted(self.data)[0] == 1
        note(f"time_sort {cache} {n} {kind}")
"""
ASV_FUNCS = """
def setup():
    global DATA
    DATA = [3, 1, 2]
    with open("funcs.log", "a") as f:
        f.write("module setup\\n")


def time_module():
    with open("funcs.log", "a") as f:
        f.write(f"time_module {sorted(DATA)}\\n")
"""


@pytest.mark.parametrize("layout", ["plain", "package"])
def test_asv_wrappers_run_setup_cache_setup_and_the_params_combination(
    make_repo: Callable[..., Path], layout: str
) -> None:
    bench_dir = "benchmarks" if layout == "plain" else "perf"
    files = {f"{bench_dir}/bench_sort.py": ASV_RUN, f"{bench_dir}/bench_funcs.py": ASV_FUNCS}
    if layout == "package":
        files.update({"asv.conf.json": '{"benchmark_dir": "perf"}', "perf/__init__.py": ""})
    repo = make_repo(files)
    found = {b.name: b for b in discover(repo).benchmarks}
    with open_sandbox(Source(repo=repo, rev="HEAD"), "local", limits=LIMITS) as sb:
        assert run_wrapper(sb, found["bench_sort.TimeSort.time_sort(1000, 'merge')"], 2) > 0
        assert lines(sb, "asv.log") == [
            "setup_cache",
            "setup cached 1000 merge",
            "time_sort cached 1000 merge",
            "time_sort cached 1000 merge",
        ]
        assert run_wrapper(sb, found["bench_funcs.time_module"], 2) > 0
        assert lines(sb, "funcs.log") == ["module setup"] + ["time_module [1, 2, 3]"] * 2
