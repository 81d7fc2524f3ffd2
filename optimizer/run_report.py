"""The reports of `optimizer run`, rebuilt from its run directory's event log.

Everything here is a pure function of a :class:`~optimizer.rundir.RunState`, so a report can
be regenerated at any time (``optimizer show RUN_DIR``), even for a run that was killed.
Patches, ideas and notes come from a model and are untrusted: the HTML page escapes every
one of them, carries no script and loads nothing from outside.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from rich.text import Text

from optimizer.rundir import RunState
from optimizer.svg import PAGE_CSS, Frame, axis_labels, axis_ticks, hline, open_svg
from optimizer.svg import esc as _e

#: The candidates table's columns, shared by the markdown, HTML and terminal renderings.
COLUMNS: tuple[str, ...] = (
    "Candidate",
    "Parent",
    "Idea",
    "Stage",
    "Status",
    "Speedup [95% CI]",
    "Metric",
    "Steps",
    "Cost",
)

IDEA_WIDTH = 60

#: Right-aligned columns.
_NUMERIC = {"Speedup [95% CI]", "Steps", "Cost"}


@dataclass(frozen=True)
class SummaryRow:
    """One candidate as the reports show it: how far it got and what it measured."""

    id: str
    parent: str | None
    idea: str
    stage: str | None
    status: str
    speedup: float | None
    ci: tuple[float, float] | None
    metric: str | None
    steps: int
    cost_usd: float
    winner: bool = False

    def cells(self) -> list[str]:
        """The row as text, in :data:`COLUMNS` order."""
        return [
            f"{self.id} (winner)" if self.winner else self.id,
            self.parent or "-",
            self.idea or "-",
            self.stage or "-",
            self.status,
            fmt_speedup(self.speedup, self.ci),
            self.metric or "-",
            str(self.steps),
            f"${self.cost_usd:.2f}",
        ]


def fmt_speedup(speedup: float | None, ci: Sequence[float] | None) -> str:
    """``1.84x [1.71, 1.98]``, ``1.84x`` without a CI, ``-`` when nothing was measured."""
    if speedup is None:
        return "-"
    text = f"{speedup:.2f}x"
    return f"{text} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and len(ci) == 2 else text


def short(text: str, width: int = IDEA_WIDTH) -> str:
    """The first line of ``text``, whitespace collapsed, cut to ``width`` with an ellipsis."""
    line = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


def summary_rows(state: RunState) -> list[SummaryRow]:
    """One row per candidate, in the order they appeared."""
    winner = state.winner.candidate if state.winner else None
    return [_row(state, cid, cid == winner) for cid in state.order]


def _row(state: RunState, cid: str, winner: bool) -> SummaryRow:
    cand = state.candidates.get(cid)
    last = state.last_grade(cid)
    timed = state.measured(cid)
    if last is None:
        status = f"not graded ({cand.agent_exit})" if cand and cand.agent_exit else "not graded"
    else:
        status = last.status + (f", {last.verdict}" if last.verdict else "")
    ci = (timed.ci[0], timed.ci[1]) if timed and timed.ci and len(timed.ci) == 2 else None
    steps = (cand.steps if cand else 0) or len(state.model_calls.get(cid, []))
    return SummaryRow(
        id=cid,
        parent=cand.parent if cand else None,
        idea=short(cand.idea) if cand else "",
        stage=last.stage if last else None,
        status=status,
        speedup=timed.speedup if timed else None,
        ci=ci,
        metric=", ".join(x for x in (timed.metric, timed.protocol) if x) if timed else None,
        steps=steps,
        cost_usd=cand.cost_usd if cand else 0.0,
        winner=winner,
    )


_MEASURED_STAGES = ("full", "confirm", "minimize")


def best_by_step(state: RunState) -> list[tuple[int, float]]:
    """(model step, best significant speedup so far) at each step where the best improved.

    A grade counts when it is significant (correct, judged faster, its CI above 1.0x) in a
    full measurement (full, confirm or minimize: the quick timing is too rough, and the
    expert is not a candidate); its step is the number of model steps taken when the grade
    was recorded.
    """
    best, series = 1.0, []
    for step, grade in state.grade_log:
        if grade.stage not in _MEASURED_STAGES:
            continue
        if grade.significant and grade.speedup is not None and grade.speedup > best:
            best = grade.speedup
            if series and series[-1][0] == step:
                series[-1] = (step, best)
            else:
                series.append((step, best))
    return series


def outcome(state: RunState) -> str:
    """One line: what the run left behind, or why it left nothing."""
    if state.commit:
        return f"committed on branch {state.commit.branch} as {state.commit.sha[:12]}"
    if state.patch_written:
        return f"winner written to {state.patch_written.path} (not committed)"
    if state.ended:
        return f"nothing committed: {state.ended.reason}"
    return "nothing committed yet: the run has not ended (still running, or killed)"


def winner_line(state: RunState) -> str | None:
    """The winner's speedup, CI, metric, verdict and how much minimization removed."""
    w = state.winner
    if w is None:
        return None
    text = f"{w.candidate}: {fmt_speedup(w.speedup, w.ci)}"
    extras = [x for x in (w.metric, w.protocol, w.verdict) if x]
    if extras:
        text += f" ({', '.join(extras)})"
    if w.hunks_before:
        text += f"; minimized from {w.hunks_before} to {w.hunks_after} hunks"
    return text


def sr_line(state: RunState) -> str | None:
    """Speedup ratio against the expert's patch, when the task has one."""
    w = state.winner
    if w is None or (w.sr is None and w.expert_speedup is None):
        return None
    parts = [f"SR {w.sr:.2f}" if w.sr is not None else "SR -"]
    if w.expert_speedup is not None:
        parts.append(f"expert {w.expert_speedup:.2f}x")
    return ", ".join(parts)


def facts(state: RunState) -> list[tuple[str, str]]:
    """The headline facts as (label, value) pairs, in reading order."""
    s = state.started
    rows: list[tuple[str, str]] = []
    if s:
        rows += [("task", s.task_id), ("repo", f"{s.repo} at {s.base_sha[:12]}")]
    if (w := winner_line(state)) is not None:
        rows.append(("winner", w))
    if (sr := sr_line(state)) is not None:
        rows.append(("vs expert", sr))
    rows.append(("model", str(state.config.get("model", "-"))))
    rows.append(
        (
            "spent",
            f"${state.total_cost:.2f}, {state.total_tokens:,} tokens, "
            f"{state.total_steps} model steps",
        )
    )
    if state.ended:
        rows.append(("ended", state.ended.reason))
    if state.resumes:
        rows.append(("resumed", f"{state.resumes} time{'s' if state.resumes > 1 else ''}"))
    return rows


def _title(state: RunState) -> str:
    return f"optimizer run {state.started.run_id if state.started else '(no start record)'}"


# --- markdown -------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _fence(text: str) -> str:
    """A backtick fence longer than any backtick run inside ``text``."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def markdown(state: RunState) -> str:
    """The report as markdown: outcome, facts, candidates, winning diff, progress."""
    lines = [f"# {_title(state)}", "", f"**Outcome:** {outcome(state)}.", ""]
    lines += [f"- {label}: {value}" for label, value in facts(state)]
    lines += ["", "## Candidates", ""]
    rows = summary_rows(state)
    if rows:
        align = "|".join("--:" if c in _NUMERIC else ":--" for c in COLUMNS)
        lines += ["| " + " | ".join(COLUMNS) + " |", f"|{align}|"]
        lines += ["| " + " | ".join(_md_cell(c) for c in r.cells()) + " |" for r in rows]
    else:
        lines.append("No candidates yet.")
    if state.winner:
        fence = _fence(state.winner.patch)
        lines += ["", "## Winning diff", "", f"{fence}diff", state.winner.patch.rstrip("\n"), fence]
    lines += ["", "## Best significant speedup by model step", ""]
    series = best_by_step(state)
    if series:
        lines += ["| Step | Best speedup |", "|--:|--:|"]
        lines += [f"| {step} | {best:.2f}x |" for step, best in series]
    else:
        lines.append("No significant speedup yet.")
    if state.notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {n.kind}: {_md_cell(n.text)}" for n in state.notes]
    return "\n".join(lines) + "\n"


# --- HTML -----------------------------------------------------------------------------------

_CSS = (
    PAGE_CSS
    + """.outcome { font-size: 17px; padding: 10px 14px; border-radius: 6px; }
.outcome.yes { background: #dafbe1; border: 1px solid #4ac26b; }
.outcome.no { background: #fff8c5; border: 1px solid #d4a72c; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; }
dt { color: #59636e; } dd { margin: 0; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { border: 1px solid #d0d7de; padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; white-space: nowrap; }
tr.winner td { background: #dafbe1; font-weight: 600; }
pre.diff { font: 13px/1.4 ui-monospace, "SFMono-Regular", Menlo, monospace; border: 1px solid
  #d0d7de; border-radius: 6px; padding: 8px 0; overflow-x: auto; background: #fff; }
pre.diff span { display: block; padding: 0 12px; white-space: pre; }
.add { background: #dafbe1; color: #116329; } .del { background: #ffebe9; color: #82071e; }
.hunk { background: #ddf4ff; color: #0550ae; } .file { color: #59636e; font-weight: 600; }
svg { max-width: 100%; height: auto; }
svg text { font: 12px system-ui, sans-serif; fill: #1f2328; }
ul.notes li { margin: 2px 0; }
"""
)


def _diff_html(patch: str) -> str:
    """The diff with each line in a span classed add / del / hunk / file / ctx."""
    spans = []
    for line in patch.rstrip("\n").split("\n"):
        if line.startswith(("+++", "---", "diff ", "index ")):
            cls = "file"
        elif line.startswith("+"):
            cls = "add"
        elif line.startswith("-"):
            cls = "del"
        elif line.startswith("@@"):
            cls = "hunk"
        else:
            cls = "ctx"
        spans.append(f'<span class="{cls}">{_e(line) or " "}</span>')
    return '<pre class="diff">' + "".join(spans) + "</pre>"


def _table_html(rows: list[SummaryRow]) -> str:
    if not rows:
        return "<p>No candidates yet.</p>"
    head = "".join(f"<th>{_e(c)}</th>" for c in COLUMNS)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{_e(v)}</td>' if col in _NUMERIC else f"<td>{_e(v)}</td>"
            for col, v in zip(COLUMNS, row.cells(), strict=True)
        )
        body.append(f'<tr class="winner">{cells}</tr>' if row.winner else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def svg_plot(series: list[tuple[int, float]], total_steps: int) -> str:
    """The best significant speedup so far (y) by model step (x), a step line from 1.0x."""
    best = max((s for _, s in series), default=1.0)
    last_step = max((st for st, _ in series), default=0)
    f = Frame(x_max=max(total_steps, last_step, 1), y_max=max(1.2, best * 1.08))
    parts = open_svg(f, "best significant speedup by model step")
    parts += axis_ticks(f)
    one = f.y(1.0)
    parts.append(hline(f, 1.0, "1.0x"))
    path = f"M {f.x(0):.1f} {one:.1f}"
    for step, speedup in series:
        path += f" H {f.x(step):.1f} V {f.y(speedup):.1f}"
    path += f" H {f.x(f.x_max):.1f}"
    parts.append(f'<path d="{path}" fill="none" stroke="#1a7f37" stroke-width="2.5"/>')
    for step, speedup in series:
        parts.append(
            f'<circle cx="{f.x(step):.1f}" cy="{f.y(speedup):.1f}" r="4" fill="#1a7f37">'
            f"<title>step {step}: {speedup:.2f}x</title></circle>"
        )
    if not series:
        parts.append(
            f'<text x="{(f.left + f.width - f.right) / 2:.1f}" y="{one - 24:.1f}" '
            'text-anchor="middle">no significant speedup yet</text>'
        )
    parts += axis_labels(f, "model step", "best significant speedup")
    parts.append("</svg>")
    return "".join(parts)


def html(state: RunState) -> str:
    """A self-contained page (inline CSS and SVG, no script, nothing loaded from outside)."""
    done = state.committed or state.patch_written is not None
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts(state))
    body = [
        f"<h1>{_e(_title(state))}</h1>",
        f'<p class="outcome {"yes" if done else "no"}"><b>Outcome:</b> {_e(outcome(state))}</p>',
        f"<dl>{dl}</dl>",
        "<h2>Best significant speedup by model step</h2>",
        svg_plot(best_by_step(state), state.total_steps),
        "<h2>Candidates</h2>",
        _table_html(summary_rows(state)),
    ]
    if state.winner:
        body += ["<h2>Winning diff</h2>", _diff_html(state.winner.patch)]
    if state.notes:
        items = "".join(f"<li><b>{_e(n.kind)}</b>: {_e(n.text)}</li>" for n in state.notes)
        body += ["<h2>Notes</h2>", f'<ul class="notes">{items}</ul>']
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(_title(state))}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


# --- terminal -------------------------------------------------------------------------------


def print_show(state: RunState, console: Console) -> None:
    """`optimizer show`: the candidates table, the facts and the outcome, in the terminal.

    Every cell is a rich Text, so square brackets in model text are never read as markup.
    """
    table = Table(title=_title(state), title_justify="left")
    for col in COLUMNS:
        table.add_column(col, justify="right" if col in _NUMERIC else "left")
    for row in summary_rows(state):
        style = "bold green" if row.winner else ""
        cells = row.cells()
        idea = cells[COLUMNS.index("Idea")]
        cells[COLUMNS.index("Idea")] = idea if len(idea) <= 32 else idea[:31] + "…"
        table.add_row(*(Text(c) for c in cells), style=style)
    console.print(table)
    for label, value in facts(state):
        console.print(Text.assemble((f"{label}: ", "dim"), value))
    color = "green" if state.committed or state.patch_written else "yellow"
    console.print(Text.assemble(("outcome: ", "bold"), (outcome(state), f"bold {color}")))
