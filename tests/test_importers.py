"""Importers: small fixture files in the public dataset schemas, turned into tasks."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profilers import Protocol
from tasks.checks import input_path
from tasks.importers import detect, import_dataset
from tasks.importers.common import dump_toml
from tasks.model import Kind, TaskError
from tasks.suite import load_suite
from tests.conftest import git

WORKLOAD = """\
import timeit
import statistics

from sympy import symbols, expand

def setup():
    global x
    x, = symbols("x"),

def workload():
    expand((x + 1) ** 30)

runtimes = timeit.repeat(workload, number=1, repeat=5, setup=setup)
print("Mean:", statistics.mean(runtimes))
print("Std Dev:", statistics.stdev(runtimes))
"""

EXPERT = """\
diff --git a/sympy/core/expr.py b/sympy/core/expr.py
--- a/sympy/core/expr.py
+++ b/sympy/core/expr.py
@@ -1,1 +1,1 @@
-slow = True
+slow = False
"""


def swe_row(n: int, **override: Any) -> dict[str, Any]:
    row = {
        "repo": "sympy/sympy",
        "instance_id": f"sympy__sympy-{24000 + n}",
        "base_commit": f"{n:040x}",
        "patch": EXPERT,
        "test_patch": "",
        "problem_statement": "expand is slow",
        "hints_text": "",
        "created_at": "2023-01-01T00:00:00Z",
        "version": "1.12",
        "FAIL_TO_PASS": [],
        "PASS_TO_PASS": ["sympy/core/tests/test_expand.py::test_expand_power"],
        "environment_setup_commit": f"{n + 100:040x}",
        "workload": WORKLOAD,
        "speedup": 1.8,
        "covering_tests": ["sympy/core/tests/test_expand.py"],
        "single_thread_tests": ["sympy/core/tests/test_expand.py"],
        "test_cmd": "pytest -rA",
        "rebuild_cmd": "pip install -e .",
        "image_name": f"ghcr.io/swefficiency/swefficiency-images:sympy__sympy-{24000 + n}",
    }
    row.update(override)
    return row


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("OPTIMIZER_CACHE", str(root))
    return root


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# --- SWE-fficiency ----------------------------------------------------------------------------


def test_swefficiency_rows_map_to_repo_tasks(tmp_path: Path, cache: Path) -> None:
    data = write_jsonl(tmp_path / "swefficiency.jsonl", [swe_row(1), swe_row(2, speedup=None)])
    assert detect(data) == "swefficiency"
    first, second = load_suite(str(data))
    assert first.root == cache / "imported" / "swefficiency" / digest(data) / "sympy__sympy-24001"
    assert first.id == "sympy__sympy-24001" and first.kind is Kind.REPO
    assert first.source.git == "https://github.com/sympy/sympy"
    assert first.source.commit == f"{1:040x}"
    assert first.setup.image == "ghcr.io/swefficiency/swefficiency-images:sympy__sympy-24001"
    assert first.setup.install == ["pip install -e ."]
    assert first.setup.env == {"PYTHONHASHSEED": "0"}
    assert first.workload.script == "workload.py" and first.workload.file is None
    saved = first.file("workload.py").read_text()  # its own timing loop kept out of imports
    assert saved.splitlines()[:12] == WORKLOAD.splitlines()[:12]
    assert "\nruntimes = timeit.repeat(" not in saved and "\nprint(" not in saved
    assert "# (the script's own timing, kept out of the judge's runs) runtimes = " in saved
    compile(saved, "workload.py", "exec")
    # SWE-fficiency's protocol: timeit.repeat(..., repeat=5, setup=setup) in one process
    assert first.workload.timing() == Protocol(name="warm", calls=5, warmup=1)
    assert first.tests is not None
    assert first.tests.command == ("pytest -rA sympy/core/tests/test_expand.py --junitxml={junit}")
    assert first.tests.protected == ["sympy/core/tests/test_expand.py"]
    assert first.tests.must_pass == ["sympy/core/tests/test_expand.py::test_expand_power"]
    assert first.tests.serial == ["sympy/core/tests/test_expand.py"]
    assert first.expert.patch == "expert.patch"
    assert first.file("expert.patch").read_text() == EXPERT
    assert first.expert.speedup == 1.8
    assert second.expert.speedup is None
    assert "expand((x + 1) ** 30)" in first.prompt


def test_swefficiency_without_test_cmd_runs_pytest_on_the_covering_tests(tmp_path: Path) -> None:
    row = swe_row(1, test_cmd=None, single_thread_tests=[], covering_tests='["a/t1.py", "t2.py"]')
    [task] = load_suite(str(write_jsonl(tmp_path / "s.jsonl", [row])))
    assert task.tests is not None
    assert task.tests.command == "python -m pytest -q a/t1.py t2.py --junitxml={junit}"
    assert task.tests.protected == ["a/t1.py", "t2.py"]
    assert task.setup.env == {}
    assert "a/t1.py" in task.protected_paths() and "conftest.py" in task.protected_paths()


def test_reimport_reuses_the_cached_directory(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "swefficiency.jsonl", [swe_row(1)])
    [task] = import_dataset(data)
    toml = task.root / "task.toml"
    before = toml.stat().st_mtime_ns
    (task.root / "marker").write_text("still here")
    [again] = import_dataset(data)
    assert again.root == task.root
    assert toml.stat().st_mtime_ns == before
    assert (again.root / "marker").read_text() == "still here"
    assert [p.name for p in task.root.parent.iterdir()] == [task.id]  # no temp dirs left
    # A changed file is a new source: a new directory.
    data.write_text(data.read_text().replace("1.8", "1.9"))
    [changed] = import_dataset(data)
    assert changed.root != task.root and changed.expert.speedup == 1.9


def test_a_malformed_row_names_the_file_line_and_field(tmp_path: Path) -> None:
    bad = swe_row(3)
    del bad["base_commit"]
    data = write_jsonl(tmp_path / "swefficiency.jsonl", [swe_row(1), swe_row(2), bad])
    with pytest.raises(TaskError) as exc:
        load_suite(str(data))
    message = str(exc.value)
    assert message.startswith("swefficiency.jsonl line 3: field 'base_commit' is missing. Fix:")
    assert "\n" not in message


def test_bad_json_and_unknown_formats_are_one_line_errors(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(swe_row(1)) + "\n{not json\n")
    with pytest.raises(TaskError, match=r"^d.jsonl line 2: not valid JSON"):
        load_suite(str(data))
    other = write_jsonl(tmp_path / "other.jsonl", [{"question": "?", "answer": "!"}])
    with pytest.raises(TaskError, match="unknown dataset format"):
        load_suite(str(other))
    dup = write_jsonl(tmp_path / "dup.jsonl", [swe_row(1), swe_row(1)])
    with pytest.raises(TaskError, match=r"^dup.jsonl line 2: field 'instance_id': duplicate"):
        load_suite(str(dup))


# --- GSO --------------------------------------------------------------------------------------

GSO_SCRIPT = """\
import json
import timeit

def setup():
    return list(range({n}))

def experiment(data):
    return sum(x * x for x in data)

def store_result(result, filename):
    with open(filename, "w") as f:
        json.dump(result, f)

def load_result(filename):
    with open(filename) as f:
        return json.load(f)

def check_equivalence(reference, current):
    assert reference == current, (reference, current)

def run_test(eqcheck=False, reference=False, prefix=""):
    data = setup()
    t0 = timeit.default_timer()
    result = experiment(data)
    elapsed = timeit.default_timer() - t0
    if reference:
        store_result(result, f"{{prefix}}_result.json")
    if eqcheck:
        check_equivalence(load_result(f"{{prefix}}_result.json"), result)
    return elapsed

def main():
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("output_file")
    parser.add_argument("--eqcheck", action="store_true")
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--file_prefix", type=str)
    args = parser.parse_args()
    t = run_test(args.eqcheck, args.reference, args.file_prefix)
    with open(args.output_file, "a") as f:
        f.write(f"Execution time: {{t:.6f}}s\\n")

if __name__ == "__main__":
    main()
"""


def gso_row(n: int, **override: Any) -> dict[str, Any]:
    opt = f"{n:x}" * 40
    row = {
        "instance_id": f"numpy__numpy-{opt[:7]}",
        "repo": "numpy/numpy",
        "base_commit": f"{n + 1:x}" * 40,
        "opt_commit": opt[:40],
        "api": "numpy.sum",
        "prob_script": GSO_SCRIPT.format(n=1000),
        "tests": [GSO_SCRIPT.format(n=10), GSO_SCRIPT.format(n=20)],
        "hints_text": "",
        "setup_commands": ["apt-get install -y gcc"],
        "install_commands": ["uv pip install -e ."],
        "created_at": "2024-01-01",
        "gt_commit_message": "faster sum",
        "gt_diff": EXPERT,
        "arch": "x86_64",
        "instance_image_tag": "latest",
    }
    row.update(override)
    return row


def test_gso_instances_map_to_repo_tasks_with_hidden_checks(tmp_path: Path, cache: Path) -> None:
    data = tmp_path / "gso.json"
    data.write_text(json.dumps([gso_row(1), gso_row(2, base_commit=None, tests=[])]))
    assert detect(data) == "gso"
    first, second = load_suite(str(data))
    assert first.root.parent == cache / "imported" / "gso" / digest(data)
    assert first.kind is Kind.REPO and first.id == "numpy__numpy-1111111"
    assert first.workload.protocol == "warm"  # GSO times experiment() calls in one process
    assert first.source.git == "https://github.com/numpy/numpy"
    assert first.source.commit == "2" * 40
    assert first.expert.commit == "1" * 40
    assert first.file("expert.patch").read_text() == EXPERT
    assert first.setup.install == ["apt-get install -y gcc", "uv pip install -e ."]
    assert [c.name for c in first.visible_checks()] == ["gso-prob"]
    assert [c.name for c in first.hidden_checks()] == ["gso-test-0", "gso-test-1"]
    hidden = first.hidden_checks()[1]
    assert hidden.files == ["hidden/gso_test_1.py"]
    assert first.file(hidden.files[0]).read_text() == GSO_SCRIPT.format(n=20)
    assert hidden.compare == "exit"
    assert "--eqcheck" in hidden.command and hidden.reference_command is not None
    assert "--reference" in hidden.reference_command
    assert "numpy.sum" in first.prompt and "list(range(1000))" in first.prompt
    assert second.source.commit == "2" * 40 + "^"  # default base: opt_commit^
    assert second.hidden_checks() == []


def test_gso_workload_and_check_convention_run(tmp_path: Path) -> None:
    [task] = load_suite(str(write_jsonl(tmp_path / "gso.jsonl", [gso_row(1)])))
    work = tmp_path / "work"
    check = task.hidden_checks()[0]
    script = task.file(check.files[0])
    copied = work / input_path(task, check.files[0])  # where the grader puts it
    copied.parent.mkdir(parents=True)
    copied.write_text(script.read_text())
    assert check.reference_command is not None

    def run(command: str) -> int:
        cmd = command.replace("python3", sys.executable, 1)
        return subprocess.run(cmd, shell=True, cwd=work, capture_output=True).returncode

    assert run(check.reference_command) == 0
    assert run(check.command) == 0
    # A candidate whose result differs fails the eqcheck.
    copied.write_text(script.read_text().replace("x * x", "x * 2"))
    assert run(check.command) != 0
    # The workload script exposes setup() and workload() around the prob_script.
    code = task.file("workload.py").read_text() + "\nsetup()\nprint(workload())\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == str(sum(x * x for x in range(1000)))


def test_gso_row_without_base_or_opt_commit(tmp_path: Path) -> None:
    rows = [gso_row(1), gso_row(2, base_commit=None, opt_commit=None)]
    data = write_jsonl(tmp_path / "gso.jsonl", rows)
    with pytest.raises(TaskError, match=r"^gso.jsonl line 2: field 'base_commit' is missing"):
        load_suite(str(data))


# --- PIE --------------------------------------------------------------------------------------

SRC = "n = int(input())\ntotal = 0\nfor i in range(n + 1):\n    total += i\nprint(total)"
TGT = "n = int(input())\nprint(n * (n + 1) // 2)\n"


def pie_row(pid: str, **override: Any) -> dict[str, Any]:
    row = {
        "problem_id": pid,
        "src_code": SRC,
        "tgt_code": TGT,
        "tests": [0, 2],
        "src_agg_runtime": 0.9,
        "tgt_agg_runtime": 0.3,
    }
    row.update(override)
    return row


def write_cases(root: Path, pid: str, cases: dict[int, tuple[str, str]]) -> None:
    folder = root / pid
    folder.mkdir(parents=True)
    for i, (inp, out) in cases.items():
        (folder / f"input.{i}.txt").write_text(inp)
        (folder / f"output.{i}.txt").write_text(out)


def test_pie_rows_become_program_tasks_whose_expert_patch_applies(tmp_path: Path) -> None:
    cases = tmp_path / "testcases"
    write_cases(cases, "p00001", {0: ("10\n", "55\n"), 1: ("1\n", "1\n"), 2: ("100\n", "5050\n")})
    data = write_jsonl(tmp_path / "pie.jsonl", [pie_row("p00001")])
    assert detect(data) == "pie"
    [task] = load_suite(str(data), cases_dir=cases)
    assert task.kind is Kind.PROGRAM and task.id == "pie-p00001"
    assert task.workload.protocol == "cold"  # PIE times whole programs
    assert task.source.path == "src"
    src = task.root / "src"
    assert (src / "main.py").read_text() == SRC
    assert git(src, "status", "--porcelain") == ""  # a clean git repo
    assert task.expert.speedup == pytest.approx(3.0)
    assert [(c.name, c.hidden, c.stdin, c.expected) for c in task.checks] == [
        ("case-0", False, "cases/input.0.txt", "cases/output.0.txt"),
        ("case-2", True, "cases/input.2.txt", "cases/output.2.txt"),
    ]
    assert all(c.compare == "lines" and c.command == "python3 main.py" for c in task.checks)
    assert task.file("cases/output.2.txt").read_text() == "5050\n"

    # The expert patch applies to a copy of the generated source and yields tgt_code.
    copy = tmp_path / "copy"
    subprocess.run(["git", "clone", "-q", str(src), str(copy)], check=True)
    subprocess.run(
        ["git", "-C", str(copy), "apply", "--check", str(task.file("expert.patch"))], check=True
    )
    subprocess.run(["git", "-C", str(copy), "apply", str(task.file("expert.patch"))], check=True)
    assert (copy / "main.py").read_text() == TGT

    # The workload runs the program on the visible input.
    code = task.file("workload.py").read_text() + "\nsetup()\nworkload()\nprint('ok')\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=src, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok"


def test_pie_falls_back_to_row_io_and_names_duplicate_problems(tmp_path: Path) -> None:
    rows = [
        pie_row("p2", input="5\n", output="15\n", tests=None),
        pie_row("p2", input=["1\n", "2\n"], output=["1\n", "3\n"], tests=None),
        pie_row("p3", src_code='#include <cstdio>\nint main(){puts("1");}\n', input="x\n"),
    ]
    tasks = load_suite(str(write_jsonl(tmp_path / "pie.jsonl", rows)))
    assert [t.id for t in tasks] == ["pie-p2-1", "pie-p2-2", "pie-p3"]
    assert [c.name for c in tasks[1].checks] == ["case-0", "case-1"]
    assert tasks[1].file("cases/output.1.txt").read_text() == "3\n"
    cpp = tasks[2]
    assert (cpp.root / "src" / "main.cpp").is_file()
    assert cpp.setup.install == ["g++ --std=c++17 -O3 -o main main.cpp"]
    assert cpp.checks[0].command == "./main" and cpp.checks[0].expected is None


def test_pie_row_without_test_cases_is_an_error(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "pie.jsonl", [pie_row("p1", input="1\n"), pie_row("p9")])
    with pytest.raises(TaskError) as exc:
        load_suite(str(data), cases_dir=tmp_path / "nocases")
    message = str(exc.value)
    assert message.startswith("pie.jsonl line 2: field 'tests' has no test cases for p9")
    assert "cases_dir" in message and "\n" not in message


# --- KernelBench ------------------------------------------------------------------------------

KB = '''\
import torch
import torch.nn as nn

N = 2048


class Model(nn.Module):
    """{doc}"""

    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A, B)


def get_inputs():
    return [torch.randn(N, N), torch.randn(N, N)]


def get_init_inputs():
    return []
'''


def test_kernelbench_folder_becomes_kernel_tasks(tmp_path: Path, cache: Path) -> None:
    kb = tmp_path / "KernelBench"
    (kb / "level1").mkdir(parents=True)
    (kb / "level2").mkdir()
    (kb / "level1" / "1_Square_matrix_multiplication_.py").write_text(KB.format(doc="mm"))
    (kb / "level1" / "10_Matmul.py").write_text(KB.format(doc="mm10"))
    (kb / "level2" / "2_Conv_ReLU.py").write_text(KB.format(doc="conv"))
    (kb / "level1" / "helper.py").write_text("x = 1\n")  # not a problem file
    assert detect(kb) == "kernelbench"
    tasks = load_suite(str(kb))
    assert [t.id for t in tasks] == [
        "kernelbench-level1-1_Square_matrix_multiplication_",
        "kernelbench-level1-10_Matmul",
        "kernelbench-level2-2_Conv_ReLU",
    ]
    first = tasks[0]
    assert first.kind is Kind.KERNEL and first.kernel is not None
    assert first.kernel.reference == "1_Square_matrix_multiplication_.py"
    assert first.kernel.entry == "Model"
    assert (first.root / "src" / first.kernel.reference).read_text() == KB.format(doc="mm")
    assert first.root.parent.parent == cache / "imported" / "kernelbench"
    assert "ModelNew" in first.prompt
    # One level folder works too, and a problem without get_inputs is named.
    assert len(load_suite(str(kb / "level1"))) == 2
    (kb / "level1" / "3_Bad.py").write_text(KB.format(doc="x").replace("def get_inputs", "def g"))
    with pytest.raises(TaskError, match=r"3_Bad.py: field 'get_inputs\(\)' is missing. Fix:"):
        load_suite(str(kb))


# --- the cache location and the TOML writer ---------------------------------------------------


def test_cache_defaults_to_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPTIMIZER_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    data = write_jsonl(tmp_path / "s.jsonl", [swe_row(1)])
    [task] = load_suite(str(data))
    expected = tmp_path / "home" / ".cache" / "optimizer" / "imported" / "swefficiency"
    assert task.root.parent == expected / digest(data)
    [other] = load_suite(str(data), cache_dir=tmp_path / "elsewhere")
    assert other.root.is_relative_to(tmp_path / "elsewhere" / "imported")
    assert os.path.samefile(task.file("workload.py").parent, task.root)


@settings(max_examples=60, deadline=None)
@given(st.text(), st.lists(st.text(max_size=5), max_size=3), st.floats(allow_nan=False))
def test_dump_toml_round_trips(text: str, items: list[str], number: float) -> None:
    if number in (float("inf"), float("-inf")):
        number = 1.0
    data = {"s": text, "t": {"items": items, "x": number, "ok": True}, "arr": [{"k": text}]}
    assert tomllib.loads(dump_toml(data)) == data
