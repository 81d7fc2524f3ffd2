"""User-facing errors: one line that names the problem and the fix, never a traceback.

The type lives at the bottom of the house (``sandbox.errors``) so every layer raises the
same one; the CLI prints ``error: <problem>. Fix: <fix>`` and exits with its documented code.
"""

from __future__ import annotations

from sandbox.errors import UserError

__all__ = ["UserError"]
