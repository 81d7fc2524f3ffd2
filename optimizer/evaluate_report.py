"""The reports of `optimizer evaluate`: an :class:`EvalSummary` as markdown, HTML and rich tables.

Pure functions of the summary. Task ids, reasons and model names are untrusted: the HTML
page escapes every one of them, carries no script and loads nothing from outside; its three
plots are inline SVG (speedup per task against the expert, the distribution of SR, and the
k-curves).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from optimizer.evaluate_summary import (
    CURVES,
    SCORES,
    EvalSummary,
    GroupSummary,
    Score,
    TaskCell,
    TaskRow,
    group_label,
)
from optimizer.run_report import fmt_speedup
from optimizer.svg import (
    PAGE_CSS,
    PALETTE,
    Frame,
    axis_labels,
    axis_ticks,
    esc,
    hline,
    open_svg,
    ticks,
)

#: The k-curves the plot draws, with their dash pattern ("" is solid).
PLOTTED_CURVES: dict[str, str] = {"pass@k": "", "opt@k": "7 4"}
#: The expert's markers and the SR means.
INK = "#24292f"
_TASK_LABEL = 28

# --- numbers as text --------------------------------------------------------------------------


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def _number(name: str, value: float) -> str:
    if name == "cost_of_pass_usd":
        return _money(value)
    if name == "tokens_per_pass":
        return f"{value:,.0f}"
    return f"{value:.3f}"


def score_text(name: str, score: Score) -> str:
    """``0.583 ± 0.167, SNR 2.5``; ``∞`` for an infinite ratio; ``-`` when there is none."""
    if score.infinite:
        return "∞"
    if score.value is None:
        return "-"
    text = _number(name, score.value)
    if score.noise is not None:
        text += f" ± {_number(name, score.noise)}"
    if score.snr is not None:
        text += f", SNR {score.snr:.1f}"
    return text


def signal_text(name: str, groups: Sequence[GroupSummary]) -> str:
    """The range across groups, the same in every group's copy of the score."""
    signal = next((g.scores[name].signal for g in groups if name in g.scores), None)
    return "-" if signal is None else _number(name, signal)


def _opt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _statuses(cell: TaskCell) -> str:
    parts = [f"{status} {n}" for status, n in cell.statuses.items()]
    if cell.harness_failed:
        parts.append(f"harness-failed {cell.harness_failed}")
    return ", ".join(parts) or "-"


def _expert(row: TaskRow) -> str:
    if row.sr_scored:
        return fmt_speedup(row.expert_speedup, row.expert_ci)
    return (
        row.expert_status if not row.expert_reason else f"{row.expert_status}: {row.expert_reason}"
    )


def _best(cell: TaskCell) -> str:
    if cell.best_speedup is None:
        return "none correct"
    return fmt_speedup(cell.best_speedup, cell.best_ci)


def _title(s: EvalSummary) -> str:
    n, g = len(s.tasks), len(s.groups)
    return f"optimizer evaluate: {n} task{'s' * (n != 1)}, {g} agent/model group{'s' * (g != 1)}"


def _score_names(s: EvalSummary) -> list[str]:
    return [name for name in SCORES if any(name in g.scores for g in s.groups)]


def _curve_names(s: EvalSummary) -> list[str]:
    return [name for name in CURVES if any(name in g.curves for g in s.groups)]


def _k_max(s: EvalSummary) -> int:
    return max((g.k for g in s.groups), default=0)


GROUP_COLUMNS = (
    "Group",
    "Tasks",
    "Samples",
    "k",
    "Harness failures",
    "SR tasks",
    "Correct",
    "Faster",
    "Cost",
    "Cost/sample",
    "Tokens",
)
TASK_COLUMNS = (
    "Task",
    "Expert [95% CI]",
    "Group",
    "Best correct [95% CI]",
    "SR",
    "Correct",
    "Faster",
    "Statuses",
    "Cost/sample",
)


#: Left-aligned (text) columns; the others hold numbers.
_TEXT_COLUMNS = {"Group", "Score", "Curve", "Task", "Expert [95% CI]", "Statuses", "Reason"}
HARNESS_COLUMNS = ("Group", "Task", "Sample", "Reason")


def _right(column: str) -> bool:
    return column not in _TEXT_COLUMNS


def group_cells(g: GroupSummary) -> list[str]:
    """One group's counts and spending, in :data:`GROUP_COLUMNS` order."""
    return [
        g.label,
        str(g.tasks),
        str(g.samples),
        str(g.k),
        str(g.harness_failed),
        str(g.sr_tasks),
        str(g.correct),
        str(g.faster),
        "-" if g.cost_usd is None else _money(g.cost_usd),
        "-" if g.cost_per_sample_usd is None else _money(g.cost_per_sample_usd),
        "-" if g.tokens is None else f"{g.tokens:,}",
    ]


def task_cells(row: TaskRow, cell: TaskCell | None, first: bool) -> list[str]:
    """One (task, group) row in :data:`TASK_COLUMNS` order; the task's own cells only on its
    first row."""
    lead = [row.task_id, _expert(row)] if first else ["", ""]
    if cell is None:
        return [*lead, "-", "no samples", "-", "-", "-", "-", "-"]
    return [
        *lead,
        cell.label,
        _best(cell),
        _opt(cell.sr) + (f" [{cell.sr_ci[0]:.3f}, {cell.sr_ci[1]:.3f}]" if cell.sr_ci else ""),
        f"{cell.correct}/{cell.samples}",
        str(cell.faster),
        _statuses(cell),
        "-" if cell.cost_usd is None else _money(cell.cost_usd),
    ]


def _task_rows(s: EvalSummary) -> list[list[str]]:
    rows: list[list[str]] = []
    for row in s.tasks:
        cells: Sequence[TaskCell | None] = row.cells or [None]
        rows += [task_cells(row, cell, i == 0) for i, cell in enumerate(cells)]
    return rows


def _curve_rows(s: EvalSummary) -> tuple[list[str], list[list[str]]]:
    k_max = _k_max(s)
    head = ["Curve", "Group", *(f"k={k}" for k in range(1, k_max + 1))]
    rows = []
    for name in _curve_names(s):
        for g in s.groups:
            if name not in g.curves:
                continue
            values = {p.k: f"{p.value:.3f}" for p in g.curves[name]}
            rows.append([CURVES[name], g.label, *(values.get(k, "") for k in range(1, k_max + 1))])
    return head, rows


def _harness_rows(s: EvalSummary) -> list[list[str]]:
    return [
        [group_label(h.agent, h.model), h.task_id, str(h.sample), h.reason]
        for h in s.harness_failures
    ]


def _all_notes(s: EvalSummary) -> list[str]:
    notes = list(s.notes)
    notes += [f"{g.label}: {note}" for g in s.groups for note in g.notes]
    return notes


def _dispersion_line(s: EvalSummary) -> str:
    d = s.dispersion
    return (
        "Each cell: the mean over the k runs (run j: the j-th scored sample of every task) "
        f"± noise, SNR. Noise: {d.noise} (needs k >= {d.min_runs}); signal: {d.signal}; "
        f"SNR = {d.snr}."
    )


# --- markdown -------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    align = "|".join("--:" if _right(h) else ":--" for h in head)
    out = ["| " + " | ".join(_md_cell(h) for h in head) + " |", f"|{align}|"]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return out


def _score_table(s: EvalSummary) -> tuple[list[str], list[list[str]]]:
    head = ["Score", *(g.label for g in s.groups), "Signal (range)"]
    rows = []
    for name in _score_names(s):
        cells = [score_text(name, g.scores[name]) if name in g.scores else "-" for g in s.groups]
        rows.append([SCORES[name], *cells, signal_text(name, s.groups)])
    return head, rows


def markdown(summary: EvalSummary) -> str:
    """The report as markdown: groups, scores with noise and SNR, k-curves, tasks, notes."""
    s = summary
    lines = [f"# {_title(s)}", ""]
    if s.metrics:
        how = f", timed {' and '.join(s.protocols)}" if s.protocols else ""
        lines += [f"Speedups measured on: {', '.join(s.metrics)}{how}.", ""]
    lines += ["## Groups", ""]
    lines += (
        _md_table(GROUP_COLUMNS, [group_cells(g) for g in s.groups])
        if s.groups
        else ["No samples yet."]
    )
    lines += ["", "## Scores", "", _dispersion_line(s), ""]
    head, rows = _score_table(s)
    lines += _md_table(head, rows) if rows else ["No scores yet."]
    head, rows = _curve_rows(s)
    if rows:
        lines += ["", "## k-curves", ""] + _md_table(head, rows)
    lines += ["", "## Per task", ""]
    rows = _task_rows(s)
    lines += _md_table(TASK_COLUMNS, rows) if rows else ["No tasks."]
    if s.sr_excluded:
        lines += ["", "## Left out of SR", ""]
        lines += [f"- {_md_cell(e.task_id)}: {_md_cell(e.reason)}" for e in s.sr_excluded]
    if s.harness_failures:
        lines += ["", "## Harness failures (not scored; `--retry-failed` redoes them)", ""]
        lines += _md_table(HARNESS_COLUMNS, _harness_rows(s))
    lines += ["", "## Notes", ""] + [f"- {_md_cell(n)}" for n in _all_notes(s)]
    return "\n".join(lines) + "\n"


# --- SVG plots ------------------------------------------------------------------------------


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _log_range(values: Sequence[float]) -> tuple[float, float]:
    """A log axis's range: the values and 1.0, padded, at least a factor of 4 wide."""
    lo, hi = min([1.0, *values]) / 1.3, max([1.0, *values]) * 1.3
    if hi / lo < 4:
        mid = math.sqrt(hi * lo)
        lo, hi = mid / 2, mid * 2
    return lo, hi


def _speed_label(value: float) -> str:
    return f"{value:,.0f}x" if value >= 10 else f"{value:g}x"


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    """A row of (marker SVG at 0,0, label) items starting at (x, y)."""
    out = []
    for marker, label in items:
        out.append(
            f'<g transform="translate({x:.1f} {y:.1f})">{marker}'
            f'<text x="10" y="4">{esc(label)}</text></g>'
        )
        x += 34 + 6.6 * len(label)
    return out


def _dot(colour: str, r: float = 4.5) -> str:
    return f'<circle r="{r}" fill="{colour}" stroke="#fff" stroke-width="1"/>'


def _diamond(colour: str, r: float = 6) -> str:
    return f'<path d="M 0 {-r} L {r} 0 L 0 {r} L {-r} 0 Z" fill="{colour}"/>'


def _cross(colour: str, r: float = 4) -> str:
    return (
        f'<path d="M {-r} {-r} L {r} {r} M {-r} {r} L {r} {-r}" stroke="{colour}" '
        'stroke-width="2" fill="none"/>'
    )


def _at(x: float, y: float, marker: str, title: str) -> str:
    return f'<g transform="translate({x:.1f} {y:.1f})">{marker}<title>{esc(title)}</title></g>'


def _whisker(f: Frame, x: float, ci: tuple[float, float] | None, colour: str) -> str:
    if ci is None:
        return ""
    lo, hi = f.y(ci[0]), f.y(ci[1])
    return (
        f'<path d="M {x:.1f} {lo:.1f} V {hi:.1f} M {x - 3:.1f} {lo:.1f} H {x + 3:.1f} '
        f'M {x - 3:.1f} {hi:.1f} H {x + 3:.1f}" stroke="{colour}" stroke-width="1.4" '
        'fill="none"/>'
    )


def _short(text: str, width: int = _TASK_LABEL) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def speedup_plot(s: EvalSummary) -> str:
    """Per task: the expert's speedup and each group's best correct speedup, with their CIs,
    on a log scale; a cross at 1.0x where a group has no correct sample."""
    tasks = [t for t in s.tasks if t.sr_scored or t.cells]
    if not tasks:
        return "<p>No tasks to plot.</p>"
    labels = {g.label: i for i, g in enumerate(s.groups)}
    values = [v for t in tasks for v in _speeds(t)]
    lo, hi = _log_range(values)
    longest = max(len(_short(t.task_id)) for t in tasks)
    f = Frame(
        width=1120, height=300 + int(4.6 * longest), left=80, right=24, top=44,
        bottom=40 + int(4.6 * longest), x_min=-0.5, x_max=len(tasks) - 0.5,
        y_min=lo, y_max=hi, log_y=True,
    )  # fmt: skip
    parts = open_svg(f, "speedup per task against the expert")
    slot = f.x(1) - f.x(0)
    every = max(1, math.ceil(len(tasks) / 60))
    for i in range(1, len(tasks), 2):
        parts.append(
            f'<rect x="{f.x(i - 0.5):.1f}" y="{f.top}" width="{slot:.1f}" '
            f'height="{f.y_end - f.top}" fill="#f6f8fa"/>'
        )
    parts += axis_ticks(f, x_ticks=[], y_fmt=_speed_label)
    parts.append(hline(f, 1.0, "1x (base)"))
    series = 1 + len(s.groups)
    width = min(0.8 * slot, 14.0 * series)
    step = width / max(series - 1, 1)

    def offset(i: int, j: int) -> float:
        return f.x(i) + (j - (series - 1) / 2) * step

    for i, t in enumerate(tasks):
        if t.sr_scored and t.expert_speedup is not None:
            x = offset(i, 0)
            parts.append(_whisker(f, x, t.expert_ci, INK))
            tip = f"{t.task_id}: expert {fmt_speedup(t.expert_speedup, t.expert_ci)}"
            parts.append(_at(x, f.y(t.expert_speedup), _diamond(INK), tip))
        for cell in t.cells:
            j = labels[cell.label]
            x, colour = offset(i, 1 + j), _colour(j)
            if cell.best_speedup is None:
                tip = f"{t.task_id}: {cell.label}: no correct sample (counted as 1.0x)"
                parts.append(_at(x, f.y(1.0), _cross(colour), tip))
                continue
            parts.append(_whisker(f, x, cell.best_ci, colour))
            tip = f"{t.task_id}: {cell.label} {fmt_speedup(cell.best_speedup, cell.best_ci)}"
            parts.append(_at(x, f.y(cell.best_speedup), _dot(colour), tip))
        if i % every == 0:
            x, y = f.x(i), f.y_end + 12
            parts.append(
                f'<text x="{x:.1f}" y="{y}" text-anchor="end" font-size="11" '
                f'transform="rotate(-40 {x:.1f} {y})">{esc(_short(t.task_id))}</text>'
            )
    legend = [(_diamond(INK), "expert")]
    legend += [(_dot(_colour(i)), g.label) for i, g in enumerate(s.groups)]
    legend += [(_cross("#59636e"), "no correct sample"), (_whisker_icon(), "95% CI")]
    parts += _legend(legend, f.left + 8, 22)
    parts += axis_labels(f, "", "speedup over the base (log scale)")
    parts.append("</svg>")
    return "".join(parts)


def _whisker_icon() -> str:
    return '<path d="M 0 -6 V 6 M -3 -6 H 3 M -3 6 H 3" stroke="#59636e" stroke-width="1.4"/>'


def _speeds(t: TaskRow) -> list[float]:
    out = [v for v in (t.expert_speedup, *(t.expert_ci or ())) if v is not None and t.sr_scored]
    for cell in t.cells:
        out += [v for v in (cell.best_speedup, *(cell.best_ci or ())) if v is not None]
    return out


def _jitter(i: int) -> float:
    """A spread in [-0.5, 0.5) that looks random and is the same every time."""
    return (i * 0.6180339887) % 1.0 - 0.5


def sr_plot(s: EvalSummary) -> str:
    """Every scored sample's SR, one column of dots per group (log scale) over lines at each
    group's harmonic and geometric means, and a line at SR = 1."""
    srs = {g.label: [v for t in s.tasks for c in t.cells if c.label == g.label for v in c.srs]
           for g in s.groups}  # fmt: skip
    if not any(srs.values()):
        return "<p>No SR to plot: no task has a usable expert.</p>"
    means = [
        v
        for g in s.groups
        for name in ("sr_hmean", "sr_gmean")
        if name in g.scores and (v := g.scores[name].value) is not None
    ]
    lo, hi = _log_range([v for vs in srs.values() for v in vs] + means)
    f = Frame(width=1120, height=440, left=80, right=24, top=44, bottom=80,
              x_min=-0.5, x_max=len(s.groups) - 0.5, y_min=lo, y_max=hi, log_y=True)  # fmt: skip
    parts = open_svg(f, "distribution of SR per group")
    parts += axis_ticks(f, x_ticks=[], y_fmt=lambda v: f"{v:g}")
    parts.append(hline(f, 1.0, "SR = 1 (as fast as the expert)"))
    slot = f.x(1) - f.x(0)
    spread = min(0.55 * slot, 220.0)
    for j, g in enumerate(s.groups):
        colour, cx = _colour(j), f.x(j)
        means = []
        for name, dash, text in (("sr_hmean", "", "harmonic"), ("sr_gmean", "5 3", "geometric")):
            score = g.scores.get(name)
            if score is None or score.value is None:
                continue
            y, half = f.y(score.value), spread / 2 + 8
            means.append(f"{text} {score.value:.3f}")
            parts.append(
                f'<line x1="{cx - half:.1f}" y1="{y:.1f}" x2="{cx + half:.1f}" y2="{y:.1f}" '
                f'stroke="{INK}" stroke-width="2.5" stroke-dasharray="{dash}">'
                f"<title>{esc(g.label)}: {means[-1]}</title></line>"
            )
        for i, v in enumerate(srs[g.label]):
            parts.append(
                f'<circle cx="{cx + spread * _jitter(i):.1f}" cy="{f.y(v):.1f}" r="4" '
                f'fill="{colour}" fill-opacity="0.55"><title>SR {v:.3g}</title></circle>'
            )
        lines = [f"{len(srs[g.label])} samples", " · ".join(means)]
        parts.append(
            f'<text x="{cx:.1f}" y="{f.y_end + 20}" text-anchor="middle" style="font-weight: 600">'
            f"{esc(g.label)}</text>"
        )
        parts += [
            f'<text x="{cx:.1f}" y="{f.y_end + 36 + 15 * i}" text-anchor="middle">'
            f"{esc(line)}</text>"
            for i, line in enumerate(lines)
            if line
        ]
    legend = [
        (f'<path d="M -8 0 H 8" stroke="{INK}" stroke-width="2.5"/>', "harmonic mean"),
        (f'<path d="M -8 0 H 8" stroke="{INK}" stroke-width="2.5" stroke-dasharray="5 3"/>',
         "geometric mean (each the mean over the k runs)"),
    ]  # fmt: skip
    parts += _legend(legend, f.left + 14, 22)
    parts += axis_labels(f, "", "SR = candidate / expert speedup (log scale)")
    parts.append("</svg>")
    return "".join(parts)


def curves_plot(s: EvalSummary) -> str:
    """pass@k (solid) and opt@k (dashed) against k, one colour per group."""
    drawn = [(g, name) for g in s.groups for name in PLOTTED_CURVES if g.curves.get(name)]
    if not drawn:
        return "<p>No k-curves yet.</p>"
    k_max = max(p.k for g, name in drawn for p in g.curves[name])
    top = max(1.0, *(p.value for g, name in drawn for p in g.curves[name]))
    f = Frame(width=1120, height=380, left=80, right=24, top=44, bottom=50,
              x_min=0.6 if k_max == 1 else 1, x_max=1.4 if k_max == 1 else k_max,
              y_min=0.0, y_max=top * 1.05)  # fmt: skip
    parts = open_svg(f, "pass@k and opt@k against k")
    x_ticks = [1.0] if k_max == 1 else ticks(1, k_max, integer=True)
    parts += axis_ticks(f, x_ticks=x_ticks, y_ticks=ticks(0.0, top), y_fmt=lambda v: f"{v:.1f}")
    labels = {g.label: i for i, g in enumerate(s.groups)}
    for g, name in drawn:
        colour, dash = _colour(labels[g.label]), PLOTTED_CURVES[name]
        points = [(f.x(p.k), f.y(p.value), p) for p in g.curves[name]]
        path = " ".join(
            f"{'M' if i == 0 else 'L'} {x:.1f} {y:.1f}" for i, (x, y, _) in enumerate(points)
        )
        parts.append(
            f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2.5" '
            f'stroke-dasharray="{dash}"/>'
        )
        for x, y, p in points:
            tip = f"{g.label}: {name.replace('@k', f'@{p.k}')} = {p.value:.3f}"
            parts.append(_at(x, y, _dot(colour, 3.5), tip))
    legend = [(_dot(_colour(i)), g.label) for i, g in enumerate(s.groups)]
    legend += [
        (f'<path d="M -9 0 H 9" stroke="#59636e" stroke-width="2.5" stroke-dasharray="{d}"/>',
         name)
        for name, d in PLOTTED_CURVES.items()
        if any(n == name for _, n in drawn)
    ]  # fmt: skip
    parts += _legend(legend, f.left + 14, 22)
    parts += axis_labels(f, "k (samples per task)", "fraction of tasks")
    parts.append("</svg>")
    return "".join(parts)


# --- HTML -----------------------------------------------------------------------------------

_CSS = (
    PAGE_CSS
    + """main { max-width: 1160px; padding: 24px 20px 48px; }
p.lead { color: #59636e; margin: 4px 0 10px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13.5px; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; white-space: nowrap; }
tr.first td { border-top: 2px solid #afb8c1; }
svg { max-width: 100%; height: auto; display: block; }
svg text { font: 12px system-ui, sans-serif; fill: #1f2328; }
ul.notes li { margin: 3px 0; }
"""
)


def _html_table(head: Sequence[str], rows: Sequence[Sequence[str]], firsts: bool = False) -> str:
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = []
    for row in rows:
        tds = "".join(
            f'<td class="num">{esc(c)}</td>' if _right(h) else f"<td>{esc(c)}</td>"
            for h, c in zip(head, row, strict=True)
        )
        cls = ' class="first"' if firsts and row[0] else ""
        body.append(f"<tr{cls}>{tds}</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{th}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def html(summary: EvalSummary) -> str:
    """One self-contained page: inline CSS and SVG, no script, nothing loaded from outside."""
    s = summary
    body = [f"<h1>{esc(_title(s))}</h1>"]
    if s.metrics:
        how = f", timed {' and '.join(s.protocols)}" if s.protocols else ""
        body.append(f'<p class="lead">Speedups measured on: {esc(", ".join(s.metrics) + how)}.</p>')
    body += ["<h2>Groups</h2>", _html_table(GROUP_COLUMNS, [group_cells(g) for g in s.groups])]
    head, rows = _score_table(s)
    body += ["<h2>Scores</h2>", f'<p class="lead">{esc(_dispersion_line(s))}</p>']
    body.append(_html_table(head, rows) if rows else "<p>No scores yet.</p>")
    body += [
        "<h2>Speedup per task against the expert</h2>",
        '<p class="lead">Best correct sample of each group, with its 95% CI; log scale.</p>',
        speedup_plot(s),
        "<h2>Distribution of SR</h2>",
        '<p class="lead">One dot per scored sample on a task with a usable expert.</p>',
        sr_plot(s),
        "<h2>k-curves</h2>",
        curves_plot(s),
    ]
    head, rows = _curve_rows(s)
    if rows:
        body.append(_html_table(head, rows))
    rows = _task_rows(s)
    body += ["<h2>Per task</h2>", _html_table(TASK_COLUMNS, rows, firsts=True)]
    if s.sr_excluded:
        items = "".join(f"<li><b>{esc(e.task_id)}</b>: {esc(e.reason)}</li>" for e in s.sr_excluded)
        body += ["<h2>Left out of SR</h2>", f'<ul class="notes">{items}</ul>']
    if s.harness_failures:
        body += [
            "<h2>Harness failures</h2>",
            '<p class="lead">Not scored; <code>optimizer evaluate --retry-failed</code> '
            "redoes them.</p>",
            _html_table(HARNESS_COLUMNS, _harness_rows(s)),
        ]
    notes = "".join(f"<li>{esc(n)}</li>" for n in _all_notes(s))
    body += ["<h2>Notes</h2>", f'<ul class="notes">{notes}</ul>']
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(_title(s))}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


# --- terminal -------------------------------------------------------------------------------


def _rich_table(title: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in head:
        table.add_column(col, justify="right" if _right(col) else "left")
    for row in rows:
        table.add_row(*(Text(c) for c in row))
    return table


def print_summary(summary: EvalSummary, console: Console) -> None:
    """The groups, the scores and the tasks as rich tables, then the notes.

    Every cell is a rich Text, so square brackets in task ids are never read as markup.
    """
    s = summary
    console.print(_rich_table(_title(s), GROUP_COLUMNS, [group_cells(g) for g in s.groups]))
    head, rows = _score_table(s)
    if rows:
        console.print(_rich_table("scores", head, rows))
    console.print(_rich_table("per task", TASK_COLUMNS, _task_rows(s)))
    for h in s.harness_failures:
        console.print(
            Text.assemble(("harness failure: ", "yellow"), f"{h.task_id}#{h.sample}: {h.reason}")
        )
    for note in [_dispersion_line(s), *_all_notes(s)]:
        console.print(Text(note, style="dim"))
