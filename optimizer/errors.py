"""User-facing errors: one line that names the problem and the fix, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (a file, a flag, a path) or environment.

    The CLI prints ``error: <problem>. Fix: <fix>`` on one line and exits with code 2.
    """

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        text = self.problem.rstrip(".")
        return f"{text}. Fix: {self.fix}" if self.fix else text
