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


#: Closing lines of a failed tool's output that point elsewhere ("See above for output.").
_POINTERS = ("see above", "note: this error originates", "[end of output]", "for more information")


def telling_line(text: str) -> str:
    """The line of a failed command's output that says what went wrong: the last one, unless
    it only points above (pip's ``See above for output.``); then the last line before it
    that names an error (``error: invalid command 'bdist_wheel'``), else the last line."""
    lines = [ln.strip(" │╰─>\t") for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        return ""
    if not any(p in lines[-1].lower() for p in _POINTERS):
        return lines[-1][:300]
    for line in reversed(lines):
        low = line.lower()
        generic = low.strip(": ") in ("error", "error: subprocess-exited-with-error")
        if "error" in low and not generic and not any(p in low for p in _POINTERS):
            return line[:300]
    return lines[-1][:300]
