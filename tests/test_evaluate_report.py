"""optimizer.evaluate_report: the markdown, the self-contained HTML page (rendered by headless
Chromium) and the rich tables of an evaluation's summary."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from optimizer import evaluate_report
from optimizer.evaluate_records import SampleRecord
from optimizer.evaluate_summary import ONE_GROUP, EvalSummary, summarize
from optimizer.svg import PALETTE
from tests.test_evaluate_summary import rec, ref
from tests.test_rundir import near, read_png

XSS = "<script>alert(1)</script>"


def two_groups(task_b: str = "b") -> EvalSummary:
    """A (3 samples of a and b, llm with costs), noop, a task without an expert, and one
    harness failure."""
    refs = {
        "a": ref("a", 2.0, ci=(1.9, 2.1)),
        task_b: ref(task_b, 4.0, ci=(3.6, 4.4)),
        "c": ref("c", None, status="none", reason="no expert"),
    }
    ok = {("a", 0), ("a", 1), (task_b, 0), (task_b, 2), ("c", 1)}
    records: list[SampleRecord] = [
        rec(t, j, agent="llm", model="m1", correct=(t, j) in ok,
            speedup=8.0 if (t, j) in ok else None,
            speedup_ci=(7.0, 9.0) if (t, j) in ok else None, cost_usd=0.5)
        for t in ("a", task_b, "c") for j in range(3)
    ]  # fmt: skip
    records.append(
        rec("a", 3, agent="llm", model="m1", correct=False, status="error", fault="harness",
            reason="the model server <timed out>")
    )  # fmt: skip
    records += [
        rec(t, j, agent="noop", speedup=1.0, cost_usd=0.0)
        for t in ("a", task_b, "c")
        for j in range(3)
    ]
    return summarize(records, refs)


def test_markdown_has_the_scores_with_noise_and_snr_the_curves_tasks_and_failures():
    s = two_groups(task_b="b|x")
    text = evaluate_report.markdown(s)
    assert text.startswith("# optimizer evaluate: 3 tasks, 2 agent/model groups\n")
    # pass@1: llm runs (2/3, 2/3, 1/3): mean 5/9, SD 0.192; noop 1 +- 0; range 4/9
    assert "| pass@1 | 0.556 ± 0.192, SNR 2.3 | 1.000 ± 0.000 | 0.444 |" in text
    # SR over a and b only; noop: SR 1/2 and 1/4, harmonic mean 1/3
    assert "| SR, harmonic mean (published) |" in text and "| 0.333 ± 0.000 |" in text
    # Cost-of-Pass: llm spent $4.50 (the harness failure excluded) on 5 verified speedups
    assert "| Cost-of-Pass ($ per verified speedup) | $0.90 ± $0.43 | ∞ | - |" in text
    # a: 2 of 3 correct (pass@2 = 1 - C(1,2)/C(3,2) = 1); c: 1 of 3 (pass@2 = 2/3)
    assert "| pass@k | llm (m1) | 0.556 | 0.889 | 1.000 |" in text
    assert "| pass@k | noop | 1.000 | 1.000 | 1.000 |" in text
    assert "sample standard deviation (ddof=1)" in text and "range (max - min)" in text
    # SR 8/4 with its interval from both: log half-widths in quadrature (1.697 to 2.342)
    assert (
        "| b\\|x | 4.00x [3.60, 4.40] | llm (m1) | 8.00x [7.00, 9.00] | 2.000 [1.697, 2.342] "
        "| 2/3 |" in text
    )
    assert "| c | none: no expert | llm (m1) | 8.00x [7.00, 9.00] | - | 1/3 |" in text
    assert "| llm (m1) | a | 3 | the model server <timed out> |" in text
    assert "## Left out of SR\n\n- c: no expert\n" in text
    assert ONE_GROUP not in text


def test_markdown_with_one_group_says_what_snr_needs():
    s = summarize([rec("t", j, speedup=2.0) for j in range(3)], {"t": ref("t", 2.0)})
    text = evaluate_report.markdown(s)
    assert f"- {ONE_GROUP}." in text
    assert "| pass@1 | 1.000 ± 0.000 | - |" in text  # a noise, but no signal: no SNR


def test_html_escapes_untrusted_text_and_loads_nothing_from_outside():
    refs = {XSS: ref(XSS, 2.0)}
    records = [
        rec(XSS, 0, model="<b>m</b>", speedup=3.0),
        rec(XSS, 1, model="<b>m</b>", correct=False, status="error", fault="harness",
            reason='<img src=x onerror="alert(1)">'),
    ]  # fmt: skip
    page = evaluate_report.html(summarize(records, refs))
    assert "<script" not in page and "<img" not in page and "<b>m" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert not re.search(r"<[^>]*\s(src|href)\s*=", page)
    assert "url(" not in page and "@import" not in page
    assert page.count("<svg ") == 3


def test_the_plots_draw_every_point():
    s = two_groups()
    speed = evaluate_report.speedup_plot(s)
    # the expert's diamond and each group's best correct speedup, per task, with tooltips
    assert "<title>a: expert 2.00x [1.90, 2.10]</title>" in speed
    assert "<title>b: llm (m1) 8.00x [7.00, 9.00]</title>" in speed
    assert "<title>c: noop 1.00x</title>" in speed
    assert ">1x<" in speed and ">10x<" in speed  # a log axis
    sr = evaluate_report.sr_plot(s)
    # one dot per scored sample on a task with an expert: 2 tasks x 3 samples x 2 groups
    assert len(re.findall(r"<circle [^>]*><title>SR ", sr)) == 12
    assert "SR = 1 (as fast as the expert)" in sr
    curves = evaluate_report.curves_plot(s)
    # pass@k for both groups; opt@k for neither (no per-test times)
    assert len(re.findall(r'<path d="M [^"]*" fill="none" stroke="#', curves)) == 2
    assert "<title>llm (m1): pass@2 = 0.889</title>" in curves
    assert ">opt@k<" not in curves


def test_print_summary_prints_the_tables_literally():
    s = two_groups(task_b="[red]b[/red]")
    console = Console(record=True, width=240)
    evaluate_report.print_summary(s, console)
    out = console.export_text()
    for text in ("llm (m1)", "noop", "0.556 ± 0.192, SNR 2.3", "[red]b[/red]", "none: no expert",
                 "harness failure: a#3: the model server <timed out>", "ddof=1"):  # fmt: skip
        assert text in out, text


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_the_html_report_renders_in_headless_chromium(tmp_path: Path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("CI is set and headless Chromium is missing (apt-get install chromium)")
        pytest.skip("needs headless Chromium (apt-get install -y chromium); CI fails instead")
    page, png = tmp_path / "report.html", tmp_path / "report.png"
    page.write_text(evaluate_report.html(two_groups()))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
    done = subprocess.run(
        [CHROMIUM, *flags, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}",
         "--window-size=1200,2000", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert png.is_file(), done.stdout + done.stderr
    pixels = read_png(png)
    assert pixels.shape[:2] == (2000, 1200)
    colours = np.unique(pixels[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 100, "the page rendered as (almost) a single colour"
    for name, hex_colour, least in (("llm", PALETTE[0], 60), ("noop", PALETTE[1], 60)):
        rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        assert near(pixels, rgb, 4) > least, f"no {name} markers or lines"
    assert near(pixels, (0x24, 0x29, 0x2F), 4) > 60, "no expert markers or mean lines"
