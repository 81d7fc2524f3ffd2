"""The outputs of `optimizer ci`: an asv-style markdown table, JUnit XML, and JSON."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from optimizer.ci import BenchmarkResult, CIRecord, MetricVerdict
from optimizer.results import write_text_atomic

#: asv's change column: + slower, - faster, x failed; ~ here means "cannot tell yet".
MARK = {"regression": "+", "improvement": "-", "unchanged": " ", "inconclusive": "~", "error": "x"}


def human(value: float, unit: str) -> str:
    """1.23ms, 45.6µs, 409M, 1.20G: three significant digits and a unit."""
    scales = (
        ((1, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))
        if unit == "s"
        else ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""))
    )
    scale, suffix = next(((s, x) for s, x in scales if value >= s), scales[-1])
    v = value / scale
    return f"{v:.{0 if v >= 100 else 1 if v >= 10 else 2}f}{suffix}"


def _row(b: BenchmarkResult, mv: MetricVerdict) -> str:
    """Before, After and Ratio from one estimator: After is Before x the ratio, the estimate
    the ratio's CI is about (per-side medians of bimodal wall samples can disagree with a
    paired ratio; the raw medians stay in the JSON record)."""
    r = mv.result
    unit = "" if r.unit == "s" else " instr"
    before, after = r.base_median, r.base_median * r.ratio
    if r.deterministic:
        ratio = f"{r.ratio:.3f} (exact)"
    else:
        ratio = f"{r.ratio:.3f} [{r.ci[0]:.3f}, {r.ci[1]:.3f}]"
    return (
        f"| {MARK[mv.verdict]} | {human(before, r.unit)}{unit} | "
        f"{human(after, r.unit)}{unit} | {ratio} | {mv.verdict} | "
        f"{b.name} ({mv.metric}) |"
    )


#: How each metric's ratio and CI are estimated (stated under the table).
ESTIMATORS = {
    "wall": "wall: the Hodges-Lehmann estimate of the per-pair ratios (base and head run "
    "back to back), with a signed-rank (Wilcoxon) 95% CI",
    "instructions": "instructions: the ratio of medians, exact when the counts are constant "
    "on both sides (`exact`), else with a bootstrap 95% CI",
}


def estimators(record: CIRecord) -> str:
    """The sentence that says where Before, After and Ratio come from."""
    used = {mv.metric for res in record.benchmarks for mv in res.metrics}
    ratio = "; ".join(text for metric, text in ESTIMATORS.items() if metric in used)
    return (
        "Before is the base's median, After is Before × Ratio, so both columns follow the "
        f"estimator of the ratio and its CI. Ratio (head / base): {ratio or 'none measured'}."
    )


def markdown(record: CIRecord) -> str:
    """The summary: a headline, one row per benchmark and metric, then the details."""
    b, h = record.base.sha[:8], record.head.sha[:8]
    head = {0: "no regressions", 1: "regression", 2: "inconclusive", 3: "error"}
    lines = [
        f"## optimizer ci: {head.get(record.exit_code, '?')} ({record.summary})",
        "",
        f"base `{record.base.rev}` ({b}) → head `{record.head.rev}` ({h}); metric "
        f"{record.metric}, threshold {record.threshold:.1%}, {record.backend} sandbox, "
        f"{record.elapsed_s:.0f} s",
        "",
        f"| Change | Before [{b}] | After [{h}] | Ratio [95% CI] | Verdict | Benchmark (metric) |",
        "|:-:|--:|--:|--:|:--|:--|",
    ]
    for res in record.benchmarks:
        if res.error:
            lines.append(f"| x | failed | failed | n/a | error | {res.name} |")
        lines += [_row(res, mv) for mv in res.metrics]
    lines += ["", "`+` slower, `-` faster, `~` cannot tell (noise), `x` failed.", ""]
    lines.append(estimators(record))
    for res in record.benchmarks:
        if res.verdict == "regression":
            lines += ["", f"### Regression: {res.name}", ""]
            for mv in res.metrics:
                if mv.verdict == "regression":
                    confirm = f", re-run {mv.confirm.ratio:.3f}" if mv.confirm else ""
                    lines.append(
                        f"- {mv.metric}: {mv.result.ratio - 1:+.1%} (Holm p = {mv.p_holm:.2g}"
                        f"{confirm})"
                    )
            if res.hotspots:
                lines += ["", "Where the time grew (cProfile, own time per function):", ""]
                lines += [
                    "| Function | Before | After | Share before | Share after "
                    "| Added, as a share of base's total |",
                    "|:--|--:|--:|--:|--:|--:|",
                ]
                lines += [
                    f"| `{c.location}` | {human(c.base_s, 's')} | {human(c.head_s, 's')} | "
                    f"{c.base_share:.1%} | {c.head_share:.1%} | {c.growth:+.1%} |"
                    for c in res.hotspots
                ]
            elif res.hotspots_note:
                lines.append(f"- hotspots: {res.hotspots_note}")
        elif res.error:
            lines += ["", f"### Error: {res.name}", "", f"    {res.error}"]
        elif res.note:
            lines += ["", f"### {res.verdict.capitalize()}: {res.name}", "", f"- {res.note}"]
    if record.skipped:
        lines += ["", "<details><summary>Discovered but not run</summary>", ""]
        lines += [f"- {s}" for s in record.skipped] + ["", "</details>"]
    return "\n".join(lines) + "\n"


def junit(record: CIRecord) -> str:
    """JUnit XML: a test per benchmark; regressions fail, errors error, inconclusive skip."""
    suite = ET.Element(
        "testsuite",
        name="optimizer ci",
        tests=str(len(record.benchmarks)),
        failures=str(sum(r.verdict == "regression" for r in record.benchmarks)),
        errors=str(sum(r.verdict == "error" for r in record.benchmarks)),
        skipped=str(sum(r.verdict == "inconclusive" for r in record.benchmarks)),
        time=f"{record.elapsed_s:.3f}",
    )
    for res in record.benchmarks:
        case = ET.SubElement(suite, "testcase", classname=f"optimizer.ci.{res.origin}")
        case.set("name", res.name)
        detail = "; ".join(
            f"{mv.metric} {mv.verdict}: ratio {mv.result.ratio:.4f} "
            f"[{mv.result.ci[0]:.4f}, {mv.result.ci[1]:.4f}], Holm p {mv.p_holm:.3g}"
            for mv in res.metrics
        )
        if res.verdict == "regression":
            ET.SubElement(case, "failure", message=f"{res.name} is slower: {detail}").text = detail
        elif res.verdict == "error":
            ET.SubElement(case, "error", message=res.error or "failed").text = res.error
        elif res.verdict == "inconclusive":
            ET.SubElement(case, "skipped", message=f"inconclusive: {detail}")
        ET.SubElement(case, "system-out").text = detail
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def write_outputs(record: CIRecord, json_path: Path | None, junit_path: Path | None) -> str:
    """Write the JSON and JUnit files (atomically), append to the GitHub step summary."""
    if json_path:
        write_text_atomic(json_path.expanduser(), record.model_dump_json(indent=2) + "\n")
    text = markdown(record)
    if junit_path:
        write_text_atomic(junit_path.expanduser(), junit(record))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(text)
    return text
