"""Shrink a winning patch to the hunks its speed-up needs.

Agents leave incidental edits in a winning patch (reformatting, comments, debug prints,
abandoned attempts). They make the commit harder to review and may carry risk for no gain, so
before committing, hunks are dropped one at a time for as long as the caller's judge still
says "correct and still faster". Each judgement is a full test-and-benchmark run, so the
number of tries is capped and no reduced patch is ever judged twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from optimizer.patches import Hunk, join_hunks, split_hunks


@dataclass(frozen=True)
class MinimizeResult:
    """What :func:`minimize` kept and what it cost.

    ``patch`` is the reduced patch (the input itself, byte for byte, when nothing was dropped);
    ``tried`` counts calls of the judge; ``dropped`` describes each removed hunk.
    """

    patch: str
    hunks_before: int
    hunks_after: int
    tried: int
    dropped: list[str] = field(default_factory=list)


def minimize(
    patch: str,
    keeps: Callable[[str], bool],
    *,
    max_tries: int = 12,
    log: Callable[[str], None] = lambda m: None,
) -> MinimizeResult:
    """Greedily drop hunks of ``patch`` while ``keeps(reduced)`` stays True.

    Each pass tries removing one hunk at a time, smallest first (fewest changed lines, ties in
    patch order). Small hunks go first because incidental edits are usually small while the
    real optimization is usually the big change, so under a tight ``max_tries`` budget the
    tries most likely to succeed come first; it also means a success shrinks the patch by a
    hunk whose purpose is least obvious to a reviewer. A removal is kept as soon as the judge
    accepts it. Passes repeat until one drops nothing (hunks can depend on each other, so a
    hunk needed in one pass may be droppable after another went) or ``max_tries`` calls of
    ``keeps`` are spent. A candidate already judged is never judged again, the last hunk is
    never dropped (``keeps`` never sees an empty patch), and a patch of one hunk or less is
    returned unchanged with ``tried=0``.

    ``keeps`` is the caller's judge; a reduced patch that does not apply should make it return
    False, and minimize treats any False the same way.
    """
    hunks = split_hunks(patch)
    kept = list(hunks)
    judged: set[frozenset[int]] = set()
    dropped: list[str] = []
    tried = 0
    changed = len(kept) > 1
    while changed and tried < max_tries:
        changed = False
        for hunk in _by_size(kept):
            if len(kept) == 1 or tried >= max_tries:
                break
            candidate = [h for h in kept if h is not hunk]
            key = frozenset(h.index for h in candidate)
            if key in judged:
                continue
            judged.add(key)
            tried += 1
            ok = keeps(join_hunks(candidate))
            log(f"try {tried}/{max_tries}: without {hunk.describe()}: {_verdict(ok)}")
            if ok:
                kept = candidate
                dropped.append(hunk.describe())
                changed = True
    reduced = patch if len(kept) == len(hunks) else join_hunks(kept)
    return MinimizeResult(reduced, len(hunks), len(kept), tried, dropped)


def _by_size(hunks: list[Hunk]) -> list[Hunk]:
    """Hunks ordered by changed lines, smallest first, ties in patch order."""
    return sorted(hunks, key=lambda h: (h.added + h.removed, h.index))


def _verdict(ok: bool) -> str:
    """The log word for one judgement."""
    return "dropped (still correct and faster)" if ok else "needed"
