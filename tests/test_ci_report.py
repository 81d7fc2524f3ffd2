"""The `optimizer ci` markdown report agrees with itself: Before, After and Ratio come from
one estimator. Pure: records built in memory, samples through the real statistics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from optimizer.bench import Side
from optimizer.ci import BenchmarkResult, CIRecord, MetricVerdict
from optimizer.ci_report import markdown, write_outputs
from profilers.compare import MetricResult
from profilers.stats import compare

#: asv-style wall samples from a VM that flips between a slow and a fast phase: the pairs
#: (base, head back to back) say head takes 0.676 of base's time, but base's median lands in
#: the slow phase (24.8 ms) and head's in the fast one (2.03 ms).
BIMODAL_BASE = [25e-3, 25.2e-3, 24.9e-3, 25.1e-3, 25.3e-3, 2e-3, 2.01e-3, 1.99e-3, 2.02e-3, 2e-3]
BIMODAL_BASE.append(24.8e-3)
BIMODAL_HEAD = [x * 0.676 for x in BIMODAL_BASE[:10]] + [2.03e-3]

UNITS = {"G": 1e9, "M": 1e6, "k": 1e3, "": 1, "s": 1, "ms": 1e-3, "µs": 1e-6, "ns": 1e-9}


def result(metric: str, base: list[float], head: list[float]) -> MetricResult:
    cmp = compare(base, head, floor=0.02, alpha=0.005, paired=metric == "wall")
    return MetricResult(
        metric=metric, unit="s" if metric == "wall" else "instructions",
        verdict=cmp.verdict.value, ratio=cmp.ratio, ci=cmp.ci, p_value=cmp.p_value,
        p_slower=cmp.p_slower, p_faster=cmp.p_faster, p_mwu=cmp.p_mwu,
        deterministic=cmp.deterministic, floor=0.02, pairs=len(base), stopped="conclusive",
        base_median=cmp.base_median, head_median=cmp.head_median, cv_base=cmp.cv_base,
        cv_head=cmp.cv_head, base_samples=base, head_samples=head,
        order=["base", "head"] * len(base),
    )  # fmt: skip


def benchmark(name: str, *results: MetricResult) -> BenchmarkResult:
    metrics = [
        MetricVerdict(
            metric=r.metric,
            verdict="unchanged" if r.verdict == "same" else "inconclusive",
            threshold=0.02,
            alpha=0.005,
            p_holm=r.p_value,
            result=r,
        )  # fmt: skip
        for r in results
    ]
    return BenchmarkResult(
        name=name, origin="config", workload=f"bench/{name}.py", verdict=metrics[0].verdict,
        metrics=metrics,
    )  # fmt: skip


def record(*benchmarks: BenchmarkResult) -> CIRecord:
    return CIRecord(
        repo="/repo", base=Side(label="base", rev="HEAD~1", sha="a" * 40),
        head=Side(label="head", rev="HEAD", sha="b" * 40), backend="local", environment={},
        metric="both", threshold=0.02, config_file="pyproject.toml",
        benchmarks=list(benchmarks), skipped=[], exit_code=2, summary="summary",
        started_at="2025-01-01T00:00:00+00:00", elapsed_s=1.0,
    )  # fmt: skip


def rows(text: str) -> dict[str, list[str]]:
    """The table's rows by their last cell ("name (metric)"), as lists of cells."""
    found = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[5].endswith(")") and not cells[5].startswith("Benchmark"):
            found[cells[5]] = cells
    return found


def number(cell: str) -> float:
    """ "24.8ms" -> 0.0248, "1.10G instr" -> 1.1e9."""
    match = re.fullmatch(r"([0-9.]+)(G|M|k|s|ms|µs|ns|)( instr)?", cell)
    assert match, cell
    return float(match[1]) * UNITS[match[2]]


def ratio(cell: str) -> float:
    return float(cell.split()[0])


@pytest.fixture
def mixed() -> CIRecord:
    """A bimodal wall row, a deterministic instruction row, a noisy instruction row."""
    return record(
        benchmark("bimodal", result("wall", BIMODAL_BASE, BIMODAL_HEAD)),
        benchmark("exact", result("instructions", [1.0e9] * 3, [1.1e9] * 3)),
        benchmark(
            "noisy",
            result("instructions", [4.0e8, 4.1e8, 4.05e8, 3.9e8], [4.3e8, 4.25e8, 4.4e8, 4.2e8]),
        ),
    )


def test_the_bimodal_example_no_longer_contradicts_its_ratio(mixed: CIRecord) -> None:
    mv = mixed.benchmarks[0].metrics[0]
    # the contradiction the report used to print: medians 24.8 ms -> 2.03 ms beside 0.676
    assert mv.result.base_median == pytest.approx(24.8e-3)
    assert mv.result.head_median == pytest.approx(2.03e-3)
    assert mv.result.ratio == pytest.approx(0.676)
    cells = rows(markdown(mixed))["bimodal (wall)"]
    assert cells[1] == "24.8ms"
    assert cells[2] == "16.8ms"  # 24.8 ms x 0.676, not head's own median
    assert "2.03ms" not in markdown(mixed)
    assert cells[3].startswith("0.676 [")


def test_after_is_before_times_the_printed_ratio_on_every_row(mixed: CIRecord) -> None:
    table = rows(markdown(mixed))
    assert set(table) == {"bimodal (wall)", "exact (instructions)", "noisy (instructions)"}
    for name, cells in table.items():
        before, after, r = number(cells[1]), number(cells[2]), ratio(cells[3])
        # three significant digits on each number: agreement within their rounding
        assert after == pytest.approx(before * r, rel=0.01), (name, cells)


def test_deterministic_rows_are_marked_exact_and_others_show_their_ci(mixed: CIRecord) -> None:
    table = rows(markdown(mixed))
    assert table["exact (instructions)"][3] == "1.100 (exact)"
    assert table["exact (instructions)"][1:3] == ["1.00G instr", "1.10G instr"]
    for noisy in ("noisy (instructions)", "bimodal (wall)"):
        assert "exact" not in table[noisy][3]
        assert re.fullmatch(r"[0-9.]+ \[[0-9.]+, [0-9.]+\]", table[noisy][3]), table[noisy]


def test_the_estimators_are_stated_under_the_table(mixed: CIRecord) -> None:
    text = markdown(mixed)
    table_end = text.index("| bimodal (wall) |")
    sentence = next(line for line in text.splitlines() if line.startswith("Before is"))
    assert text.index(sentence) > table_end
    assert "base's median" in sentence and "After is Before × Ratio" in sentence
    assert "Hodges-Lehmann" in sentence and "signed-rank" in sentence
    assert "ratio of medians" in sentence and "exact" in sentence and "bootstrap" in sentence
    # only the metrics in the table are explained
    only_instr = markdown(record(mixed.benchmarks[1]))
    assert "ratio of medians" in only_instr and "Hodges-Lehmann" not in only_instr


def test_the_json_record_keeps_the_raw_medians(mixed: CIRecord, tmp_path: Path) -> None:
    out = tmp_path / "ci.json"
    text = write_outputs(mixed, out, None)
    assert text == markdown(mixed)
    saved = json.loads(out.read_text())
    assert saved == json.loads(mixed.model_dump_json())
    wall = saved["benchmarks"][0]["metrics"][0]["result"]
    assert wall["base_median"] == pytest.approx(24.8e-3)
    assert wall["head_median"] == pytest.approx(2.03e-3)
