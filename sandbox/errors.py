"""The one user-facing error type, at the bottom of the house.

Every mistake a user can fix (a bad path, an unknown revision, a malformed task file, a
patch that does not apply, no Docker engine) raises a :class:`UserError` carrying the problem
and the fix as two fields. The CLI catches it once and prints
``error: <problem>. Fix: <fix>`` on one line; nobody parses the message back apart.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input or environment: ``problem`` and ``fix``, one line."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem.rstrip(". ")
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.problem}. Fix: {self.fix}" if self.fix else self.problem


class SandboxError(UserError):
    """A sandbox problem the user can fix (bad repo, unknown revision, no engine...)."""


class PatchError(SandboxError):
    """A patch that does not apply to its revision."""
