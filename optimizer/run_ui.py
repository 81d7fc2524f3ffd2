"""What a person sees while ``optimizer run`` works: a live table of candidates in a terminal
(plain lines elsewhere, e.g. in CI logs), and the ``--interactive`` review of each candidate.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from optimizer.search import UI, Graded, describe

#: Fields worth a line of their own in a log (step-by-step agent progress is not).
_LOGGED = ("stage", "status", "speedup")


class LiveUI(UI):
    """A rich live table on a terminal; one line per change of stage or status otherwise."""

    def __init__(self, console: Console, *, live: bool | None = None) -> None:
        self.console = console
        self.rows: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.live: Live | None = None
        if console.is_terminal if live is None else live:
            self.live = Live(self._table(), console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveUI:
        if self.live:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.live.update(self._table())
            self.live.stop()

    def say(self, text: str) -> None:
        self.console.print(escape(text), soft_wrap=True)

    def update(self, cid: str, **fields: Any) -> None:
        with self.lock:
            row = self.rows.setdefault(cid, {"id": cid})
            changed = {k: v for k, v in fields.items() if row.get(k) != v}
            row.update(fields)
        if self.live:
            self.live.update(self._table())
        elif any(k in changed for k in _LOGGED) and not str(row.get("status", "")).startswith(
            "step "
        ):
            self.console.print(escape(_line(row)), soft_wrap=True)

    def _table(self) -> Table:
        table = Table(title="candidates", expand=False)
        for col in ("id", "idea", "stage", "status", "speedup", "95% CI"):
            table.add_column(col, overflow="fold", max_width=48 if col == "idea" else None)
        for row in list(self.rows.values()):
            ci = row.get("ci")
            table.add_row(
                row["id"],
                escape(str(row.get("idea") or ""))[:120],
                str(row.get("stage", "")),
                escape(str(row.get("status", ""))),
                _x(row.get("speedup")),
                f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else "",
            )
        return table

    def review(self, cand: Graded) -> tuple[str, str]:
        """Show the candidate (diff, tests, speedup, hotspots); ask accept/reject/hint."""
        if self.live:
            self.live.stop()
        self.console.rule(f"candidate {cand.id}")
        self.console.print(escape(cand.patch[:4000] or "(no change)"), highlight=False)
        self.console.print(escape(describe(cand)))
        hot = (cand.grade.get("artifacts") or {}).get("hotspots")
        if hot:
            self.console.print(escape(hot[:1500]))
        hints: list[str] = []
        while True:
            self.console.print(
                "[a]ccept as the winner, [r]eject, [h]int for the next prompt, [enter] continue: ",
                end="",
                markup=False,
            )
            answer = sys.stdin.readline().strip().lower()
            if not answer.startswith("h"):
                break
            self.console.print("hint: ", end="")
            hints.append(sys.stdin.readline().strip())
        if self.live:
            self.live.start()
        choice = {"a": "accept", "r": "reject"}.get(answer[:1], "continue")
        return choice, "\n".join(h for h in hints if h)


def _x(value: Any) -> str:
    return f"{value:.3f}x" if isinstance(value, int | float) else ""


def _line(row: dict[str, Any]) -> str:
    parts = [f"{row['id']}: {row.get('stage', '')} {row.get('status', '')}"]
    if row.get("speedup") is not None:
        parts.append(f"{_x(row['speedup'])} ({row.get('verdict') or '-'})")
    return "  " + " ".join(parts)
