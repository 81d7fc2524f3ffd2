"""The winner of a run: confirmed in fresh runs, minimized, compared with the expert, committed.

Nothing is committed unless the best candidate is *significantly* faster twice: in the
search's full measurement and again in a confirming measurement of fresh sandboxes. Hunks
that do not earn their keep are then dropped for as long as the reduced patch stays correct,
significantly faster, and statistically as fast: its 95% interval reaches the confirmed
interval's lower bound (within 1%, for instruction counts, whose intervals are points), so
the committed diff is the smallest one that keeps the gain. The commit goes on a new branch
made in a separate worktree; the user's checkout is never touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimizer import rundir as rd
from optimizer.minimize import minimize
from optimizer.patches import diff_stats, split_hunks
from optimizer.scoring.speed import speedup_ratio
from optimizer.search import Graded, Search
from optimizer.vcs import commit_message, commit_patch
from tasks.source import expert_patch

#: Instruction counts give point intervals: a reduced patch whose count moves by less than
#: this share (a shorter module compiles faster or slower) still holds the gain.
_SLACK = 0.01


@dataclass
class Winner:
    id: str
    patch: str
    grade: dict[str, Any]
    hunks_before: int
    hunks_after: int
    sr: float | None = None
    expert_speedup: float | None = None


def choose(cands: list[Graded], accepted: str | None = None) -> Graded | None:
    """The fastest significant winner (the person's accepted one first, if it is one)."""
    wins = [c for c in cands if c.faster and not c.rejected]
    if accepted:
        wins = [c for c in wins if c.id == accepted] or wins
    return max(wins, key=lambda c: c.speedup, default=None)


def _measured(g: dict[str, Any]) -> dict[str, Any]:
    return g.get("measurement") or {}


def _faster(g: dict[str, Any]) -> bool:
    return bool(g.get("correct")) and _measured(g).get("verdict") == "faster"


def settle(
    search: Search, best: Graded, *, do_minimize: bool = True, say: Callable[[str], None] = print
) -> Winner | None:
    """Confirm ``best`` in fresh runs, minimize it, and score it against the expert."""
    confirm = _stage(search, best.id, "confirm", best.patch)
    if not _faster(confirm):
        m = _measured(confirm)
        say(
            f"{best.id} was not confirmed: {confirm['status']}, {m.get('verdict', '-')} "
            f"on re-measurement; nothing to commit"
        )
        return None
    lower = float(_measured(confirm)["ci"][0])
    patch, evidence = best.patch, confirm
    before = len(split_hunks(best.patch))
    if do_minimize and before > 1:
        tried: dict[str, dict[str, Any]] = {}

        def keeps(reduced: str) -> bool:
            n = len(tried) + 1
            g = _stage(search, best.id, "minimize", reduced, key=f"{best.id}/m{n}")
            tried[reduced] = g
            return _faster(g) and float(_measured(g)["ci"][1]) >= lower * (1 - _SLACK)

        result = minimize(best.patch, keeps, log=say)
        if result.patch != best.patch:
            patch, evidence = result.patch, tried[result.patch]
            say(f"minimized: {before} hunks -> {result.hunks_after}")
    winner = Winner(best.id, patch, evidence, before, len(split_hunks(patch)))
    _expert(search, winner, say)
    m = _measured(evidence)
    sr = (
        f"; SR {winner.sr:.3f} against the expert's {winner.expert_speedup:.3f}x"
        if winner.sr
        else ""
    )
    say(
        f"winner {best.id}: {m['speedup']:.3f}x [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}] "
        f"({m['metric']}, {m.get('protocol', 'cold')}, {m['verdict']}){sr}"
    )
    search.run_dir.append(
        rd.Winner(
            candidate=best.id,
            patch=patch,
            speedup=_measured(evidence)["speedup"],
            ci=list(_measured(evidence)["ci"]),
            metric=_measured(evidence)["metric"],
            protocol=_measured(evidence).get("protocol"),
            verdict=_measured(evidence)["verdict"],
            hunks_before=winner.hunks_before,
            hunks_after=winner.hunks_after,
            sr=winner.sr,
            expert_speedup=winner.expert_speedup,
        )
    )
    return winner


def _stage(search: Search, cid: str, stage: str, patch: str, key: str | None = None) -> dict:
    """A recorded grade of ``patch`` at ``stage`` (resumed), else a new one, recorded."""
    name = key or cid
    recorded = search.state.grades.get((name, stage))
    if recorded is not None:
        return recorded.grade
    search.ui.update(cid, stage=stage, status="grading")
    g = search._grade(patch, stage)
    data = g.model_dump(mode="json")
    search._record_grade(name, stage, data)
    return data


def _expert(search: Search, winner: Winner, say: Callable[[str], None]) -> None:
    """SR against the task's expert patch, measured in the same way (where there is one)."""
    patch = expert_patch(search.task)
    if not patch:
        return
    g = _stage(search, "expert", "expert", patch)
    if not _faster(g):
        say(f"the expert patch measured {g['status']} here; SR not computed")
        return
    winner.expert_speedup = float(_measured(g)["speedup"])
    winner.sr = speedup_ratio(
        float(_measured(winner.grade)["speedup"]), winner.expert_speedup, correct=True
    )


def message(search: Search, winner: Winner, model: str, cost: float) -> str:
    """The commit message: the speedup with its CI and metric, the tests, model, cost, run."""
    m = _measured(winner.grade)
    lo, hi = m["ci"]
    files, added, removed = diff_stats(winner.patch)
    first = search.state.grades.get((winner.id, "correctness"))
    tests = winner.grade.get("tests") or (first.grade.get("tests") if first else None) or {}
    title = f"optimizer: {m['speedup']:.2f}x faster on {search.task.title or search.task.id}"
    fields = {
        "Optimizer-Speedup": f"{m['speedup']:.3f}x [{lo:.3f}, {hi:.3f}] 95% CI "
        f"({m['metric']}, {m['pairs']} pairs, p={m['p_value']:.2g})",
        "Optimizer-Protocol": m.get("protocol_label") or m.get("protocol") or "cold",
        "Optimizer-Verdict": f"{m['verdict']} over {len(m.get('workloads') or [])} workload(s)",
        "Optimizer-Tests": (
            f"{_tests_line(tests)} passed, {tests.get('contract', 0)} in the contract"
            if tests
            else "none"
        ),
        "Optimizer-Diff": f"{files} file(s), +{added} -{removed}, {winner.hunks_after} of "
        f"{winner.hunks_before} hunk(s) kept",
        "Optimizer-Model": model,
        "Optimizer-Cost": f"${cost:.4f}",
        "Optimizer-Run": search.run_dir.run_id,
    }
    if winner.sr is not None:
        fields["Optimizer-SR"] = f"{winner.sr:.3f} (expert {winner.expert_speedup:.3f}x)"
    body = (
        f"Candidate {winner.id}, graded by the optimizer judge: the tests pass, outputs match "
        f"the base's, and it is faster in a confirming measurement of fresh sandboxes. "
        f"{m.get('rule', '')}."
    )
    return commit_message(title, fields, body)


def _tests_line(tests: dict[str, Any]) -> str:
    total = tests.get("total", 0)
    bad = tests.get("failures", 0) + tests.get("errors", 0) + tests.get("skipped", 0)
    return f"{total - bad}/{total}"


def commit(
    search: Search, winner: Winner, repo: Path, base_sha: str, branch: str, text: str
) -> str:
    """Commit the winner on ``branch`` (a new branch, in a separate worktree); its sha."""
    sha = commit_patch(repo, base_sha, winner.patch, branch=branch, message=text)
    search.run_dir.append(rd.Commit(branch=branch, sha=sha, repo=str(repo), message=text))
    return sha


__all__ = ["Winner", "choose", "commit", "message", "settle"]
