"""The search of ``optimizer run``: ideas, candidates, a grading cascade, refinement rounds.

In the style of ADRS/OpenEvolve and codeflash:

1. the base's workload is profiled once; the hotspots go into every first prompt;
2. an idea stage (PLANSEARCH) asks for several distinct optimization ideas, and each of the
   first ``candidates`` agents implements one of them on its own private copy;
3. each candidate is graded by the judge as a cascade from cheap to expensive: apply, guard,
   tests and checks (``correctness``), a quick timing of the visible workload (``quick``),
   then the full measurement over the visible and hidden workloads (``full``), so a broken
   candidate costs seconds;
4. the best candidates are refined for ``rounds`` rounds, with their grades, failures and
   hotspots fed back.

Everything is appended to the run directory as it happens; a resumed run replays the
recorded model calls and reuses the recorded grades, so finished work is never redone.
Budgets (``max_cost``, ``max_steps``, ``max_wall``) and Ctrl-C stop the search with a reason
and no commit; ``--resume`` continues it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from agents.agent import AgentConfig, ToolAgent
from agents.prompts import Prompts, render
from agents.protocols import (
    AgentResult,
    CostLimit,
    FormatErrorLimit,
    Model,
    ModelError,
    ModelReply,
    StepLimit,
    Submitted,
)
from agents.replay import reply_from_json, reply_to_json, request_sha
from agents.workspace import Workspace
from optimizer import rundir as rd
from profilers import ProfileError, install, profile_hotspots
from profilers.compare import MetricChoice
from profilers.models import ProtocolName
from sandbox import Backend, Limits, Source, open_sandbox
from sandbox.errors import UserError
from tasks import testrun
from tasks.grade import Candidate, Grade, GradeOptions, grade
from tasks.graders.source import RUN_ENV, task_image, workloads
from tasks.model import Task
from tasks.source import task_source

#: The cascade's stages, cheap to expensive.
STAGES = ("correctness", "quick", "full")


class SearchSettings(BaseModel):
    """The knobs of one run (recorded in ``run_started``; budgets may change on resume)."""

    candidates: int = Field(3, ge=1, description="First-round candidates (one idea each).")
    rounds: int = Field(1, ge=0, description="Refinement rounds after the first.")
    top: int = Field(2, ge=1, description="Candidates refined in each round.")
    parallel: int = Field(1, ge=1, description="Agents working at once.")
    agent_steps: int = Field(30, ge=1, description="Model steps per candidate.")
    ideas: bool = Field(True, description="Ask for distinct ideas first (PLANSEARCH).")
    max_cost: float = Field(0.0, ge=0, description="USD for the whole run; 0: no limit.")
    max_steps: int = Field(0, ge=0, description="Model steps for the whole run; 0: no limit.")
    max_wall: float = Field(0.0, ge=0, description="Seconds for the whole run; 0: no limit.")
    metric: MetricChoice | None = Field(None, description="None: the task's workload.metric.")
    protocol: ProtocolName | None = Field(None, description="None: the task's workload.protocol.")
    backend: Backend = "auto"
    repeats: int = Field(10, ge=2)
    budget_s: float = Field(60.0, gt=0, description="Measurement budget per workload.")


class Stop(Exception):
    """Ends the search early; the reason names the budget, Ctrl-C or the model's failure."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


@dataclass
class Graded:
    """One candidate and the furthest cascade stage it reached."""

    id: str
    patch: str
    idea: str = ""
    parent: str | None = None
    stage: str = ""
    grade: dict[str, Any] = field(default_factory=dict)
    rejected: bool = False

    @property
    def correct(self) -> bool:
        return bool(self.grade.get("correct"))

    @property
    def faster(self) -> bool:
        m = self.grade.get("measurement") or {}
        return self.stage == "full" and self.correct and m.get("verdict") == "faster"

    @property
    def speedup(self) -> float:
        m = self.grade.get("measurement") or {}
        return float(m.get("speedup") or 0.0)


class UI:
    """What the search tells the person watching (the CLI's live table implements it)."""

    def say(self, text: str) -> None:  # noqa: B027 - a no-op default
        pass

    def update(self, cid: str, **fields: Any) -> None:  # noqa: B027
        pass

    def review(self, cand: Graded) -> tuple[str, str]:
        """--interactive: ("accept"|"reject"|"continue", any hint for the next prompts)."""
        return "continue", ""


class Search:
    """One run's search over candidates; ``run()`` returns the candidates graded."""

    def __init__(
        self,
        task: Task,
        run: rd.RunDir,
        settings: SearchSettings,
        *,
        model: Model | None,
        prompts: Prompts,
        ui: UI | None = None,
        interactive: bool = False,
    ) -> None:
        self.task, self.run_dir, self.s = task, run, settings
        self.live_model, self.prompts = model, prompts
        self.ui = ui or UI()
        self.interactive = interactive
        self.state = rd.RunState.from_records(run.records())
        self.cost = self.state.total_cost
        self.steps = sum(map(len, self.state.model_calls.values()))
        self.started = time.monotonic()
        self.hints: list[str] = [n.text for n in self.state.notes if n.kind == "hint"]
        self.lock = threading.Lock()
        self.interrupted = threading.Event()
        self.accepted: str | None = None
        self.replay_calls: dict[str, list[rd.ModelCall]] = {}
        base = task_source(task)
        self.base_source = base
        self.image = task_image(task, settings.backend)
        self.env = task.run_env(RUN_ENV)
        self.workload = workloads(task, hidden=False)[0][2]
        self.workload_file = (
            task.file(task.workload.script).read_bytes() if task.workload.script else None
        )

    # ---- budgets ------------------------------------------------------------------------

    def stop_reason(self) -> str | None:
        """The budget that has run out, or Ctrl-C; None while the search may go on."""
        if self.interrupted.is_set():
            return "interrupted"
        if self.s.max_cost and self.cost >= self.s.max_cost:
            return "max-cost"
        if self.s.max_steps and self.steps >= self.s.max_steps:
            return "max-steps"
        if self.s.max_wall and time.monotonic() - self.started >= self.s.max_wall:
            return "max-wall"
        return None

    def _check(self) -> None:
        reason = self.stop_reason()
        if reason:
            raise Stop(reason)

    # ---- model calls, recorded and replayed ---------------------------------------------

    def _sink(self, record: dict[str, Any]) -> None:
        reply = record["reply"]
        usage = reply.get("usage") or {}
        with self.lock:
            self.cost += float(usage.get("cost_usd") or 0.0)
            self.steps += 1
        tokens = int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
        self.run_dir.append(
            rd.ModelCall(
                thread=record["thread"],
                step=record["step"],
                request_sha=record["request_sha"],
                reply=reply,
                cost_usd=float(usage.get("cost_usd") or 0.0),
                tokens=tokens,
            )
        )
        if reply.get("mode") not in ("tools", None):
            self._note_mode(reply["mode"])

    _mode_noted: str | None = None

    def _note_mode(self, mode: str) -> None:
        if self._mode_noted != mode:
            self._mode_noted = mode
            text = f"the model's tool calls came as {mode} (not native tool_calls)"
            self.run_dir.append(rd.Note(kind="mode", text=text))
            self.ui.say(text)

    def model_for(self, thread: str) -> Model:
        """This thread's model: its recorded calls first (resume), then the ``--replay``
        session's, then the live model; every call not already in the run dir is recorded."""
        return ThreadModel(
            thread,
            own=self.state.model_calls.get(thread, []),
            replay=self.replay_calls.get(thread, []),
            live=self.live_model,
            sink=self._sink,
        )

    # ---- the stages ---------------------------------------------------------------------

    def hotspots(self) -> str:
        """The base's hotspot profile (cProfile), for the first prompts; '' if unavailable."""
        cached = self.run_dir.path / "hotspots.txt"
        if cached.exists():
            return cached.read_text()
        text = ""
        if self.workload.kind == "file":
            self.ui.say("profiling the base's workload")
            try:
                with open_sandbox(
                    self.base_source, self.s.backend, limits=self._limits(), image=self.image
                ) as sb:
                    install(sb, self.workload, self.workload_file)
                    for command in self.task.install_commands():
                        if not (run := sb.run(command, env=self.env)).ok:
                            raise UserError(f"`{command}` failed on the base: {run.reason}")
                    report = profile_hotspots(
                        sb, self.workload, limits=self._limits(), env=self.env
                    )
                text = report.text()
            except (ProfileError, UserError) as exc:
                self.ui.say(f"no hotspot profile: {getattr(exc, 'cause', exc)}")
        self.run_dir.write_text("hotspots.txt", text)
        return text

    def ideas(self, hotspots: str) -> list[str]:
        """PLANSEARCH: ``candidates`` distinct ideas from one model call ('' when none)."""
        n = self.s.candidates
        if not self.s.ideas or n < 2:
            return [""] * n
        self._check()
        prompt = render(self.prompts.ideas, task=self.task.prompt, hotspots=hotspots, n=n)
        model = self.model_for("ideas")
        reply = model.query([{"role": "user", "content": prompt}], [])
        ideas = parse_ideas(reply)
        if not ideas:
            self.run_dir.append(rd.Note(kind="warning", text="the model gave no usable ideas"))
            ideas = [""]
        return [ideas[i % len(ideas)] for i in range(n)]

    def candidate(
        self, cid: str, *, idea: str, hotspots: str, parent: Graded | None = None
    ) -> Graded:
        """Make (or reuse) one candidate and grade it through the cascade."""
        made = self.state.candidates.get(cid)
        if made is None or made.agent_exit not in _FINISHED:
            made = self._make(cid, self._thread(cid, made), idea, hotspots, parent)
        cand = Graded(id=cid, patch=made.patch, idea=idea, parent=made.parent)
        if not cand.patch.strip():
            self.ui.update(cid, stage="-", status="no change")
            return cand
        return self.cascade(cand)

    def _thread(self, cid: str, failed: rd.CandidateRecord | None) -> str:
        """The conversation to (re)start for ``cid``: the last attempt, continued from its
        recorded calls after Ctrl-C or a budget; a new attempt after the model failed it."""
        attempts = [t for t in self.state.model_calls if t == cid or t.startswith(f"{cid}~")]
        if not attempts:
            return cid
        if failed is None:
            return max(attempts, key=_attempt)
        return f"{cid}~{max(_attempt(t) for t in attempts) + 1}"

    def _make(
        self, cid: str, thread: str, idea: str, hotspots: str, parent: Graded | None
    ) -> rd.CandidateRecord:
        self._check()
        self.ui.update(cid, stage="agent", status="working", idea=idea)
        base = self.base_source
        source = Source(repo=base.repo, rev=base.rev, patch=parent.patch if parent else None)
        started_steps = len(self.state.model_calls.get(thread, []))
        kernel = self.task.kernel
        protected = self.task.protected_paths() + ([kernel.reference] if kernel else [])
        prompts = self.prompts
        if kernel:
            prompts = prompts.model_copy(update={"system": prompts.kernel_system})
        with Workspace(
            source,
            tests_command=testrun.command_for(self.task.tests) if self.task.tests else None,
            tests_env=testrun.plugin_env(self.env),
            files=testrun.PLUGIN_FILES,
            workload=self.workload,
            env=self.env,
            protected=protected,
            backend=self.s.backend,
            image=self.image,
            limits=self._limits(),
            workload_file=self.workload_file,
            install=self.task.install_commands(),
            checker=self.check_kernel if kernel else None,
        ) as ws:
            agent = ToolAgent(
                self.model_for(thread),
                ws,
                prompts,
                AgentConfig(step_limit=self.s.agent_steps),
                on_event=lambda ev: self._tool_event(thread, cid, ev),
                should_stop=self.stop_reason,
            )
            hints = "\n\n".join(f"A hint from the person running this: {h}" for h in self.hints)
            if parent is None:
                task, extra = self.task.prompt, {"hotspots": hotspots, "idea": idea}
            else:  # refine: the working copy already holds the parent's patch
                hot = (parent.grade.get("artifacts") or {}).get("hotspots") or hotspots
                task = render(
                    self.prompts.refine, task=self.task.prompt, hotspots=hot,
                    parent_diff=parent.patch, feedback=describe(parent),
                )  # fmt: skip
                extra = {"hotspots": "", "idea": ""}
            result: AgentResult = agent.run(task, feedback=hints, protected=protected, **extra)
        if result.exit in ("interrupted", "max-cost", "max-steps", "max-wall"):
            raise Stop(result.exit)
        made = rd.CandidateRecord(
            id=cid,
            parent=parent.id if parent else None,
            idea=idea,
            patch=result.patch,
            agent_exit=result.exit,
            steps=result.steps + started_steps,
            cost_usd=result.cost_usd,
        )
        self.run_dir.append(made)
        self.state.candidates[cid] = made
        if result.exit == FormatErrorExit:
            raise Stop("model error", f"{cid}: {result.exit} ({result.message})")
        return made

    def check_kernel(self, patch: str) -> str:
        """The ``check_kernel`` tool: the judge's correctness check, unmeasured, as text."""
        opts = GradeOptions(backend=self.s.backend, measure=False, image=self.image)
        g = grade(self.task, Candidate(patch=patch, agent="check_kernel"), opts)
        k = g.kernel
        if not g.correct:
            error = g.artifacts.get("error", "")
            return f"not correct ({g.status.value}): {g.reason}" + (f"\n{error}" if error else "")
        assert k is not None
        note = "; timing needs a GPU (this ran in Triton's CPU interpreter)"
        return f"correct: {k.summary()}" + (note if k.interpreted else "")

    def _tool_event(self, thread: str, cid: str, ev: dict[str, Any]) -> None:
        if ev.get("type") != "tool_call":
            return
        self.run_dir.append(
            rd.ToolCall(
                thread=thread,
                step=ev["step"],
                name=ev["name"],
                arguments=ev["arguments"],
                observation=ev["observation"],
                error=ev["error"],
            )
        )
        self.ui.update(cid, status=f"step {ev['step']}: {ev['name']}")

    def cascade(self, cand: Graded) -> Graded:
        """Grade from cheap to expensive; stop at the first stage that fails."""
        for stage in STAGES:
            recorded = self.state.grades.get((cand.id, stage))
            if recorded is not None:
                g = recorded.grade
            else:
                self._check()
                self.ui.update(cand.id, stage=stage, status="grading")
                g = self._grade(cand.patch, stage).model_dump(mode="json")
                self._record_grade(cand.id, stage, g)
            cand.stage, cand.grade = stage, g
            m = g.get("measurement") or {}
            self.ui.update(
                cand.id,
                stage=stage,
                status=g["status"],
                speedup=m.get("speedup"),
                ci=m.get("ci"),
                verdict=m.get("verdict"),
            )
            if not g["correct"] or (stage == "quick" and m.get("verdict") == "slower"):
                break
            if (g.get("kernel") or {}).get("interpreted"):
                break  # Triton's CPU interpreter: correct, but nothing to time
        if self.interactive:
            self._review(cand)
        return cand

    def _grade(self, patch: str, stage: str) -> Grade:
        opts = self.grade_options(stage)
        return grade(self.task, Candidate(patch=patch, agent="optimizer run"), opts)

    def grade_options(self, stage: str) -> GradeOptions:
        s = self.s
        common = {"backend": s.backend, "metric": s.metric, "image": self.image,
                  "protocol": s.protocol}  # fmt: skip
        if stage == "correctness":
            return GradeOptions(measure=False, **common)
        if stage in ("quick", "full", "confirm"):
            common["tests"] = False  # the same patch passed them at the correctness stage
        if stage == "quick":
            return GradeOptions(
                hidden=False, repeats=3, max_repeats=6, budget_s=min(15.0, s.budget_s), **common
            )
        return GradeOptions(
            repeats=s.repeats,
            max_repeats=max(s.repeats, 4 * s.repeats),
            budget_s=s.budget_s,
            hotspots=stage == "full",
            **common,
        )

    def _record_grade(self, cid: str, stage: str, g: dict[str, Any]) -> None:
        m = g.get("measurement") or {}
        rec = rd.GradeRecord(
            candidate=cid,
            stage=stage,
            status=g["status"],
            correct=g["correct"],
            speedup=m.get("speedup"),
            ci=list(m["ci"]) if m.get("ci") else None,
            metric=m.get("metric"),
            protocol=m.get("protocol"),
            verdict=m.get("verdict"),
            reason=g.get("reason", ""),
            grade=g,
            elapsed_s=g.get("elapsed_s", 0.0),
        )
        self.run_dir.append(rec)
        self.state.grades[(cid, stage)] = rec

    def _review(self, cand: Graded) -> None:
        decision, hint = self.ui.review(cand)
        if hint:
            self.hints.append(hint)
            self.run_dir.append(rd.Note(kind="hint", text=hint))
        if decision in ("accept", "reject"):
            self.run_dir.append(rd.Note(kind="decision", text=f"{decision} {cand.id}"))
            if decision == "reject":
                cand.rejected = True
            else:
                self.accepted = cand.id

    def _limits(self) -> Limits:
        return Limits(
            memory_mb=self.task.limits.memory_mb,
            pids=self.task.limits.pids,
            wall_s=self.task.limits.workload_s,
        )

    # ---- the whole search ---------------------------------------------------------------

    def run(self) -> list[Graded]:
        """Every candidate graded, in order. Raises Stop on a budget, Ctrl-C or the model."""
        hotspots = self.hotspots()
        try:
            ideas = self.ideas(hotspots)
        except ModelError as exc:
            raise Stop("model error", str(exc)) from None
        done: list[Graded] = []
        first = [(f"c{i + 1}", idea, None) for i, idea in enumerate(ideas)]
        done += self._batch(first, hotspots)
        for r in range(1, self.s.rounds + 1):
            if self.accepted:
                break
            parents = best(done, self.s.top)
            if not parents:
                break
            batch = [(f"r{r}-c{j + 1}", p.idea, p) for j, p in enumerate(parents)]
            done += self._batch(batch, hotspots)
        return done

    def _batch(self, batch: list[tuple[str, str, Graded | None]], hotspots: str) -> list[Graded]:
        def one(item: tuple[str, str, Graded | None]) -> Graded:
            cid, idea, parent = item
            try:
                return self.candidate(cid, idea=idea, hotspots=hotspots, parent=parent)
            except ModelError as exc:
                raise Stop("model error", f"{cid}: {exc}") from None

        if self.s.parallel == 1:
            out = []
            for item in batch:
                if self.accepted:
                    break
                out.append(one(item))
            return out
        pool = ThreadPoolExecutor(self.s.parallel, thread_name_prefix="candidate")
        futures = [pool.submit(one, item) for item in batch]
        try:
            return [f.result() for f in futures]
        except BaseException:
            self.interrupted.set()  # the other agents stop at their next step
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def manual(self, patch: str) -> list[Graded]:
        """--candidate: the person's own patch, graded by the same cascade."""
        made = self.state.candidates.get("manual")
        if made is None:
            made = rd.CandidateRecord(
                id="manual",
                parent=None,
                idea="the given patch",
                patch=patch,
                agent_exit="manual",
                steps=0,
                cost_usd=0.0,
            )
            self.run_dir.append(made)
            self.state.candidates["manual"] = made
        return [self.cascade(Graded(id="manual", patch=made.patch, idea=made.idea))]


class ThreadModel:
    """One conversation's model: replays, then asks; the Model protocol."""

    def __init__(
        self,
        thread: str,
        *,
        own: list[rd.ModelCall],
        replay: list[rd.ModelCall],
        live: Model | None,
        sink: Callable[[dict[str, Any]], None],
    ) -> None:
        self.thread, self.own, self.replay, self.live, self.sink = thread, own, replay, live, sink
        self.name = live.name if live is not None else "replay"
        self.step = 0

    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        step, self.step = self.step, self.step + 1
        if step < len(self.own):
            return reply_from_json(self.own[step].reply)
        if step < len(self.replay):
            reply = reply_from_json(self.replay[step].reply)
        elif self.live is not None:
            reply = self.live.query(messages, tools)
        else:
            raise ModelError(
                f"the recorded session has no reply for step {step} of {self.thread}",
                "run with a model (--model/--base-url) to continue past the recording",
            )
        self.sink(
            {
                "thread": self.thread,
                "step": step,
                "request_sha": request_sha(messages, tools),
                "reply": reply_to_json(reply),
            }
        )
        return reply


#: A candidate made by an agent that ran out of format retries: the model, not the code.
FormatErrorExit = FormatErrorLimit.reason
#: Agent exits that finish a candidate (its patch is graded as it is).
_FINISHED = (Submitted.reason, StepLimit.reason, CostLimit.reason, "manual")


def _attempt(thread: str) -> int:
    """``c1`` -> 0, ``c1~2`` -> 2."""
    return int(thread.partition("~")[2] or 0)


def best(cands: list[Graded], n: int) -> list[Graded]:
    """The ``n`` fastest significant winners, else the fastest correct ones, for refining."""
    pool = [c for c in cands if not c.rejected and c.correct and c.stage in ("quick", "full")]
    return sorted(pool, key=lambda c: (c.faster, c.speedup), reverse=True)[:n]


def describe(c: Graded) -> str:
    """One candidate's outcome in words, for the next prompt and the summary."""
    g = c.grade
    head = f"Candidate {c.id}" + (f" (idea: {c.idea})" if c.idea else "")
    if not g:
        return f"{head}: made no change."
    if not g.get("correct"):
        err = (g.get("artifacts") or {}).get("error", "")
        detail = f"\n{err[-1500:]}" if err else ""
        return f"{head}: {g['status']} at the {c.stage} stage: {g.get('reason', '')}{detail}"
    m = g.get("measurement") or {}
    if not m:
        return f"{head}: correct (tests and checks pass)."
    lo, hi = m["ci"]
    return (
        f"{head}: correct, {m['speedup']:.3f}x [{lo:.3f}, {hi:.3f}] on {m['metric']} "
        f"({m['verdict']}, {c.stage} measurement, {m.get('protocol', 'cold')})."
        + (f" Not credited warm: {m['caching']}" if m.get("caching") else "")
    )


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_ideas(reply: ModelReply) -> list[str]:
    """The idea stage's reply as idea strings: a JSON list of objects or strings."""
    text = reply.content or ""
    for chunk in [*_FENCE.findall(text), text]:
        start, end = chunk.find("["), chunk.rfind("]")
        if start < 0 or end <= start:
            continue
        try:
            items = json.loads(chunk[start : end + 1])
        except json.JSONDecodeError:
            continue
        out = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, str) and item.strip():
                out.append(item.strip())
            elif isinstance(item, dict):
                parts = [str(item.get(k, "")).strip() for k in ("title", "rationale", "where")]
                joined = ". ".join(p for p in parts if p)
                if joined:
                    out.append(joined)
        if out:
            return out
    return []


__all__ = ["Graded", "Search", "SearchSettings", "Stop", "UI", "best", "describe"]
