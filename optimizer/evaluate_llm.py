"""The ``llm`` agent of `optimizer evaluate`: the agent loop of `optimizer run`, per sample.

Each sample is one `optimizer run --task SUITE/ID --no-commit` with the evaluation's budgets,
in ``OUT/runs/<task>-s<sample>``; its proposal is the run's winner patch (none when no
candidate was a significant winner: then the sample is the base, as a real run would leave
it). A sample whose run was killed resumes that run. Cost and tokens are summed from the
run's model calls.
"""

from __future__ import annotations

from pathlib import Path

from agents.config import require_endpoint, resolve_model_config
from agents.fixed import Proposal
from agents.model import OpenAIModel
from optimizer import optimize
from optimizer import rundir as rd
from optimizer.evaluate import EvalSpec
from optimizer.search import UI, FormatErrorExit, SearchSettings
from tasks.model import Task


class LLMProposer:
    name = "llm"

    def __init__(self, spec: EvalSpec) -> None:
        self.spec = spec
        flags = {"model": spec.model, "base_url": spec.base_url, "api_key": spec.api_key,
                 "max_retries": spec.retries}  # fmt: skip
        self.cfg = require_endpoint(resolve_model_config(None, **flags))
        self.model: str | None = self.cfg.model

    def samples(self, task: Task, k: int) -> int:
        return k

    def propose(self, task: Task, sample: int) -> Proposal:
        s = self.spec
        runs = Path(s.out) / "runs"
        run_id = f"{task.id}-s{sample}"
        settings = SearchSettings(
            candidates=s.candidates, rounds=0, agent_steps=s.agent_steps, ideas=s.candidates > 1,
            metric=s.metric, backend=s.sandbox, repeats=s.repeats, budget_s=s.budget_s,
            max_cost=s.max_cost, max_steps=s.max_steps, max_wall=s.max_wall,
        )  # fmt: skip
        spec = optimize.RunSpec(
            target=f"{s.suite}/{task.id}", model=self.cfg.model, base_url=self.cfg.base_url,
            commit=False, settings=settings,
        )  # fmt: skip
        model = OpenAIModel(self.cfg, warn=lambda _m: None)
        if (runs / run_id / rd.EVENTS).is_file():
            outcome = optimize.resume(runs / run_id, model, {}, UI())
        else:
            outcome = optimize.start(spec, model, runs, ["evaluate"], UI(), run_id=run_id)
        return _proposal(outcome)


def _proposal(outcome: optimize.Outcome) -> Proposal:
    records = rd.RunDir.open(outcome.run_dir).records()
    calls = rd.select(records, rd.ModelCall)
    usage = [c.reply.get("usage") or {} for c in calls]
    prop = Proposal(
        patch="",
        cost_usd=sum(c.cost_usd for c in calls),
        prompt_tokens=sum(int(u.get("prompt_tokens") or 0) for u in usage),
        completion_tokens=sum(int(u.get("completion_tokens") or 0) for u in usage),
        steps=len(calls),
        exit=outcome.reason,
        run_dir=str(outcome.run_dir),
    )
    if outcome.code == optimize.EXIT_COMMITTED and outcome.patch_path is not None:
        prop.patch = outcome.patch_path.read_text()
    elif outcome.code == optimize.EXIT_COMMITTED:  # a resumed run that had already finished
        winner = outcome.run_dir / "winner.patch"
        prop.patch = winner.read_text() if winner.is_file() else ""
    elif outcome.code == optimize.EXIT_STOPPED and outcome.reason.startswith("model error"):
        # replies that never named a usable action are the agent's; a server that did not
        # answer is the infrastructure's (a --retry-failed redoes it)
        agents_own = FormatErrorExit in outcome.reason
        prop.failed, prop.harness = outcome.reason, not agents_own
    elif outcome.code == optimize.EXIT_INTERRUPTED:
        raise KeyboardInterrupt
    return prop
