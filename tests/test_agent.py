"""Tests for agents/: the prompts, the Workspace (a real git repo, the local sandbox, real
test and workload runs) and the tool loop with a scripted in-test Model."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest

from agents.agent import AgentConfig, ToolAgent
from agents.model import tool_result_message
from agents.prompts import Prompts, load_prompts, render
from agents.protocols import ModelReply, Submitted, ToolCall, ToolError, Usage
from agents.workspace import TOOLS, Workspace, cut, truncate
from profilers import Workload
from sandbox import Limits, Source, UserError
from sandbox.errors import PatchError
from tests.conftest import git

CORE = "def total(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s\n"
FAST = "def total(n):\n    return n * (n - 1) // 2\n"
FILES = {
    "pkg/__init__.py": "",
    "pkg/core.py": CORE,
    "pkg/util.py": "X = 1\nY = 1\n",
    "tests/test_core.py": "from pkg.core import total\n\ndef test_total():\n"
    "    assert total(10) == 45\n",
    "bench.py": "from pkg.core import total\n\ndef setup():\n    pass\n\n"
    "def workload():\n    total(20000)\n",
    ".gitignore": "*.log\n",
}
TESTS = "python -m pytest -q -p no:cacheprovider --junitxml={junit} tests"


# ---- prompts --------------------------------------------------------------------------------


def test_bundled_prompts_load_and_render() -> None:
    p = load_prompts()
    text = render(
        p.instance, task="Make it fast.", hotspots="", idea="vectorize", feedback="",
        protected=["tests/"],
    )  # fmt: skip
    assert "Make it fast." in text and "vectorize" in text and "tests/" in text
    assert "cProfile" not in text  # the empty hotspots section is left out
    ideas = render(p.ideas, task="T", hotspots="h", n=4)
    assert "4 DISTINCT" in ideas and '"title"' in ideas
    assert "DIFF" in render(p.refine, task="T", hotspots="", parent_diff="DIFF", feedback="f")
    assert "a, b" in render(p.format_error, error="none", tools=["a", "b"])
    assert "elided" not in render(p.observation, output="x", elided=0)
    assert "7 characters" in render(p.observation, output="x", elided=7)


def test_render_refuses_a_missing_variable() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render("{{ task }} {{ nope }}", task="t")


def test_user_prompts_override_a_subset(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("system: |\n  Be {{ 'brief' }}.\n")
    p = load_prompts(f)
    assert render(p.system) == "Be brief."
    assert p.instance == load_prompts().instance


def test_unknown_prompt_key_is_a_user_error(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("sytem: hi\n")
    with pytest.raises(UserError) as info:
        load_prompts(f)
    assert "sytem" in info.value.problem and "system" in info.value.fix


def test_bad_jinja_is_a_user_error(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("instance: '{% if task %}no end'\n")
    with pytest.raises(UserError) as info:
        load_prompts(f)
    assert "instance" in info.value.problem and "Jinja" in info.value.problem
    assert info.value.fix


def test_prompts_file_that_is_not_a_mapping_is_a_user_error(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("- a\n- b\n")
    with pytest.raises(UserError):
        load_prompts(f)


# ---- truncate -------------------------------------------------------------------------------


def test_truncate_keeps_head_and_tail_and_counts_what_it_elides() -> None:
    text = "H" * 5000 + "T" * 5000
    out, elided = cut(text, 1000)
    assert len(out) <= 1000 and out.startswith("H") and out.endswith("T")
    assert f"[{elided} characters elided]" in out
    assert len(out) - len(f"\n... [{elided} characters elided] ...\n") + elided == len(text)
    assert truncate("short", 1000) == "short"
    assert truncate(out, 1000) == out  # idempotent: a second cut changes nothing


# ---- workspace ------------------------------------------------------------------------------


@pytest.fixture
def repo(make_repo: Callable[..., Path]) -> Path:
    path = make_repo(FILES)
    (path / "pkg/core.py").write_text(CORE + "# the user's uncommitted work\n")
    (path / "notes.txt").write_text("untracked\n")
    return path


@pytest.fixture
def ws(repo: Path) -> Iterator[Workspace]:
    with Workspace(
        Source(repo=repo),
        tests_command=TESTS,
        workload=Workload(kind="file", target="bench.py"),
        protected=["tests/", "conftest.py"],
        backend="local",
        limits=Limits(wall_s=120),
    ) as w:
        yield w


def call(ws: Workspace, name: str, **arguments: Any) -> str:
    return ws.execute(ToolCall(name=name, arguments=arguments))


def test_tools_have_openai_schemas(ws: Workspace) -> None:
    names = [t["function"]["name"] for t in ws.tools()]
    assert names == [t["function"]["name"] for t in TOOLS]
    assert {"list_files", "read_file", "search", "edit", "create_file", "run_tests"} <= set(names)
    assert all(t["type"] == "function" and "parameters" in t["function"] for t in TOOLS)


def test_workspace_is_a_clean_checkout_of_the_base(ws: Workspace) -> None:
    assert (ws.root / "pkg/core.py").read_text() == CORE  # not the user's dirty file
    assert not (ws.root / "notes.txt").exists()
    assert ws.diff() == ""
    listing = call(ws, "list_files")
    assert "pkg/core.py" in listing and "tests/test_core.py" in listing
    assert ".git/" not in listing


def test_read_file_numbers_lines_and_search_finds_them(ws: Workspace) -> None:
    out = call(ws, "read_file", path="pkg/core.py", start_line=2, end_line=3)
    assert "2|     s = 0" in out and "3|     for i in range(n):" in out and "return" not in out
    assert "pkg/core.py:4:" in call(ws, "search", pattern=r"s \+= i")
    assert "no matches" in call(ws, "search", pattern="zzz", path="pkg")
    with pytest.raises(ToolError, match="regular expression"):
        call(ws, "search", pattern="(")
    with pytest.raises(ToolError, match="no such file"):
        call(ws, "read_file", path="pkg/missing.py")


def test_edit_refuses_missing_and_ambiguous_search_text(ws: Workspace) -> None:
    with pytest.raises(ToolError, match="not found"):
        call(ws, "edit", path="pkg/core.py", search="s = 1", replace="s = 2")
    with pytest.raises(ToolError, match="indentation"):
        call(ws, "edit", path="pkg/core.py", search="s = 0\nfor i in range(n):", replace="")
    with pytest.raises(ToolError, match="found 2 times; include more surrounding lines"):
        call(ws, "edit", path="pkg/util.py", search="= 1", replace="= 2")
    assert ws.diff() == ""


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("tests/test_core.py", "protected"),
        ("bench.py", "protected"),  # the workload file is always protected
        ("pkg/conftest.py", "protected"),
        (".git/config", ".git"),
        (".optimizer/x.py", "reserved"),
        ("../outside.py", "leaves the repository"),
        ("/etc/passwd", "leaves the repository"),
    ],
)
def test_writes_to_protected_or_outside_paths_are_refused(
    ws: Workspace, path: str, why: str
) -> None:
    with pytest.raises(ToolError, match=why):
        call(ws, "create_file", path=path, content="x = 1\n")
    with pytest.raises(ToolError, match=why):
        call(ws, "edit", path=path, search="a", replace="b")


def test_a_symlink_pointing_outside_is_refused(ws: Workspace, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret\n")
    (ws.root / "link.txt").symlink_to(secret)
    with pytest.raises(ToolError, match="outside"):
        call(ws, "read_file", path="link.txt")
    with pytest.raises(ToolError, match="outside"):
        call(ws, "edit", path="link.txt", search="host", replace="x")
    assert secret.read_text() == "host secret\n"


def test_create_file_and_edit_show_in_the_diff_against_the_base(ws: Workspace, repo: Path) -> None:
    status = git(repo, "status", "--porcelain")
    assert "created" in call(ws, "create_file", path="pkg/fast.py", content="Z = 3\n")
    with pytest.raises(ToolError, match="already exists"):
        call(ws, "create_file", path="pkg/fast.py", content="")
    with pytest.raises(ToolError, match="ignored"):
        call(ws, "create_file", path="debug.log", content="x")
    call(ws, "edit", path="pkg/core.py", search=CORE, replace=FAST)
    diff = ws.diff()
    assert "+++ b/pkg/fast.py" in diff and "new file mode" in diff
    assert "-    for i in range(n):" in diff and "+    return n * (n - 1) // 2" in diff
    # the user's tree is untouched: same status, same dirty file, same untracked file
    assert git(repo, "status", "--porcelain") == status
    assert (repo / "pkg/core.py").read_text() == CORE + "# the user's uncommitted work\n"
    assert not (repo / "pkg/fast.py").exists()


def test_a_start_patch_is_applied_and_stays_in_the_diff(repo: Path) -> None:
    parent = "--- a/pkg/util.py\n+++ b/pkg/util.py\n@@ -1,2 +1,2 @@\n-X = 1\n+X = 5\n Y = 1\n"
    with Workspace(
        Source(repo=repo, patch=parent), tests_command=None,
        workload=Workload(kind="file", target="bench.py"), backend="local",
    ) as w:  # fmt: skip
        call(w, "edit", path="pkg/util.py", search="Y = 1", replace="Y = 6")
        diff = w.diff()
    assert "+X = 5" in diff and "+Y = 6" in diff


def test_a_start_patch_that_does_not_apply_is_a_patch_error(repo: Path) -> None:
    bad = "--- a/pkg/util.py\n+++ b/pkg/util.py\n@@ -1,1 +1,1 @@\n-Q = 1\n+Q = 5\n"
    with pytest.raises(PatchError, match="does not apply"):
        Workspace(
            Source(repo=repo, patch=bad), tests_command=None,
            workload=Workload(kind="file", target="bench.py"), backend="local",
        )  # fmt: skip


def test_bad_calls_raise_tool_errors(ws: Workspace) -> None:
    with pytest.raises(ToolError, match="unknown tool"):
        call(ws, "rm_rf")
    with pytest.raises(ToolError, match="bad arguments for read_file"):
        call(ws, "read_file", file="pkg/core.py")
    with pytest.raises(Submitted, match="done"):
        call(ws, "submit", summary="done")


def test_run_tests_pass_then_fail(ws: Workspace) -> None:
    out = call(ws, "run_tests")
    assert out.startswith("tests PASSED, exit code 0, 1 tests: 0 failed")
    call(ws, "edit", path="pkg/core.py", search="return s", replace="return s + 1")
    out = call(ws, "run_tests")
    assert out.startswith("tests FAILED") and "1 tests: 1 failed" in out
    assert "assert 46 == 45" in out


def test_run_tests_without_a_test_command(repo: Path) -> None:
    with Workspace(
        Source(repo=repo), tests_command=None,
        workload=Workload(kind="file", target="bench.py"), backend="local",
    ) as w:  # fmt: skip
        assert "no tests" in call(w, "run_tests")


def test_time_workload_and_profile_report_text(ws: Workspace) -> None:
    call(ws, "edit", path="pkg/core.py", search=CORE, replace=FAST)
    timing = call(ws, "time_workload", repeats=1)
    assert "current code:" in timing and "base:" in timing and "ratio:" in timing
    assert "rough" in timing
    profile = call(ws, "profile")
    assert "own s" in profile and "bench.py" in profile


def test_a_crashing_workload_is_an_observation_not_an_exception(ws: Workspace) -> None:
    call(ws, "edit", path="pkg/core.py", search=CORE, replace="def total(n):\n    1 / 0\n")
    assert "crashed" in call(ws, "time_workload", repeats=1)
    assert "ZeroDivisionError" in call(ws, "profile")


# ---- the loop -------------------------------------------------------------------------------


class ScriptedModel:
    """A Model that replies from a list (a protocol implementation for unit tests)."""

    name = "scripted"

    def __init__(self, replies: list[ModelReply]) -> None:
        self.replies = list(replies)
        self.seen: list[list[dict[str, Any]]] = []

    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        self.seen.append(list(messages))
        return self.replies.pop(0) if self.replies else reply("thinking", ("list_files", {}))


def reply(content: str, *calls: tuple[str, dict[str, Any]], cost: float = 0.01) -> ModelReply:
    tool_calls = [ToolCall(name=n, arguments=a, id=f"c{i}") for i, (n, a) in enumerate(calls)]
    message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [{"id": c.id, "name": c.name} for c in tool_calls]
    return ModelReply(content=content, tool_calls=tool_calls, usage=Usage(cost_usd=cost),
                      message=message)  # fmt: skip


def agent(
    ws: Workspace, replies: list[ModelReply], events: list[dict[str, Any]] | None = None, **kw: Any
) -> tuple[ToolAgent, ScriptedModel]:
    model = ScriptedModel(replies)
    stop = kw.pop("should_stop", None)
    sink = events.append if events is not None else None
    a = ToolAgent(model, ws, load_prompts(), AgentConfig(**kw), on_event=sink, should_stop=stop)
    return a, model


def test_the_loop_edits_and_submits_a_patch(ws: Workspace) -> None:
    events: list[dict[str, Any]] = []
    edit = {"path": "pkg/core.py", "search": CORE, "replace": FAST}
    a, model = agent(
        ws,
        [
            reply("look", ("read_file", {"path": "pkg/core.py"})),
            reply("fix", ("edit", edit)),
            reply("done", ("submit", {"summary": "closed form"})),
        ],
        events,
    )
    result = a.run("Make total() fast.", protected=["tests/"])
    assert result.exit == "submitted" and result.message == "closed form"
    assert result.steps == 3 and result.cost_usd == pytest.approx(0.03)
    assert "+    return n * (n - 1) // 2" in result.patch
    first = model.seen[0]
    assert first[0]["role"] == "system" and "Make total() fast." in first[1]["content"]
    tool_msg = model.seen[1][-1]
    assert tool_msg["role"] == "tool" and tool_msg["tool_call_id"] == "c0"
    assert "1| def total(n):" in tool_msg["content"]
    kinds = [(e["type"], e.get("name")) for e in events]
    assert kinds[:2] == [("model_reply", None), ("tool_call", "read_file")]
    assert events[-1] == {
        "type": "tool_call", "step": 3, "name": "submit", "arguments": {"summary": "closed form"},
        "observation": "submitted", "error": False,
    }  # fmt: skip


def test_the_step_limit_ends_the_loop_with_the_work_so_far(ws: Workspace) -> None:
    edit = {"path": "pkg/util.py", "search": "X = 1", "replace": "X = 2"}
    a, _ = agent(ws, [reply("edit", ("edit", edit))], step_limit=3)
    result = a.run("t")
    assert result.exit == "step limit" and result.steps == 3
    assert "+X = 2" in result.patch


def test_the_cost_limit_ends_the_loop(ws: Workspace) -> None:
    a, _ = agent(ws, [reply("a", ("list_files", {}), cost=0.6)] * 5, cost_limit_usd=1.0)
    result = a.run("t")
    assert result.exit == "cost limit" and result.steps == 2


def test_replies_without_a_tool_call_hit_the_format_error_limit(ws: Workspace) -> None:
    a, model = agent(ws, [reply("just talk")] * 5, format_error_limit=3)
    result = a.run("t")
    assert result.exit == "too many malformed replies" and result.steps == 3
    nudge = model.seen[1][-1]
    assert nudge["role"] == "user" and "no tool call" in nudge["content"]
    assert "submit" in nudge["content"]


def test_malformed_arguments_go_back_as_the_observation_and_count(ws: Workspace) -> None:
    bad = reply("x", ("edit", {"__error__": "invalid JSON at line 1"}))
    a, model = agent(ws, [bad, bad], format_error_limit=2)
    result = a.run("t")
    assert result.exit == "too many malformed replies"
    obs = model.seen[1][-1]
    assert obs["role"] == "tool" and "invalid JSON" in obs["content"]


def test_a_tool_error_is_fed_back_and_the_loop_goes_on(ws: Workspace) -> None:
    events: list[dict[str, Any]] = []
    missing = {"path": "pkg/core.py", "search": "nope", "replace": "x"}
    a, model = agent(
        ws, [reply("try", ("edit", missing)), reply("ok", ("submit", {}))], events,
        format_error_limit=1,
    )  # fmt: skip
    result = a.run("t")
    assert result.exit == "submitted" and result.patch == ""
    assert "error: the search text was not found" in model.seen[1][-1]["content"]
    assert [e["error"] for e in events if e["type"] == "tool_call"] == [True, False]


def test_should_stop_ends_the_loop_with_the_callers_reason(ws: Workspace) -> None:
    calls = iter([None, None, "max-wall"])
    a, _ = agent(ws, [], should_stop=lambda: next(calls))
    result = a.run("t")
    assert result.exit == "max-wall" and result.steps == 2


def test_text_mode_observations_are_user_messages() -> None:
    c = ToolCall(name="read_file", arguments={}, id="x")
    native = {"role": "tool", "tool_call_id": "x", "content": "out"}
    assert tool_result_message(c, "out", "tools") == native
    msg = tool_result_message(c, "out", "text")
    assert msg == {"role": "user", "content": "Observation of read_file:\nout"}


def test_prompts_model_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError):
        Prompts(**load_prompts().model_dump(), extra="x")


def test_user_repo_is_never_written_by_host_git(repo: Path) -> None:
    before = subprocess.run(
        ["git", "-C", str(repo), "stash", "list"], capture_output=True, text=True
    ).stdout
    with Workspace(
        Source(repo=repo), tests_command=None,
        workload=Workload(kind="file", target="bench.py"), backend="local",
    ) as w:  # fmt: skip
        call(w, "create_file", path="new.py", content="x = 1\n")
        w.diff()
        root = w.root
    assert not root.exists()  # close() removed the clone
    assert git(repo, "stash", "list") == before.strip()
    assert "new.py" not in git(repo, "status", "--porcelain")
