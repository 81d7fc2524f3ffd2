"""The sandbox layer's user-facing error."""


class SandboxError(Exception):
    """A problem the user can fix (bad repo, unknown revision, no engine...).

    Its message is one line: the problem, then ``Fix: ...``.
    """


class PatchError(SandboxError):
    """A patch that does not apply to its revision."""
