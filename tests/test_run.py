"""`optimizer run` end to end: the real CLI in a subprocess, the real `openai` client over HTTP
against a scripted chat-completions server on 127.0.0.1, real git repositories, the real
judge in the local sandbox (one test in Docker), and the run directory on disk.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optimizer.demo import make_repo
from optimizer.patches import split_hunks
from tests.chat_server import ScriptedServer, call, raw_call, reply
from tests.conftest import assert_wall_reads, sigint_default
from tests.demo_session import NEW_COUNTS, NEW_UNIQUE, OLD_COUNTS, OLD_UNIQUE

CORE = "textstats/core.py"
BROKEN = call("edit", path=CORE, search="    return word.lower().strip(PUNCTUATION)",
              replace="    return word.strip(PUNCTUATION)")  # fmt: skip
FAST = call("edit", path=CORE, search=OLD_COUNTS, replace=NEW_COUNTS)
USELESS_UNIQUE = call("edit", path=CORE, search=OLD_UNIQUE, replace=NEW_UNIQUE)
USELESS_DOC = call("edit", path=CORE, search='"""Word statistics: written plainly, and slowly."""',
                   replace='"""Word statistics, written plainly (and slowly)."""')  # fmt: skip
SLOWER = call(
    "edit", path=CORE, search="    return word.lower().strip(PUNCTUATION)",
    replace="    return ''.join(ch for ch in word.lower()).strip(PUNCTUATION)",
)  # fmt: skip
SUBMIT = call("submit", summary="done")


def agent(*edits: dict) -> list[dict]:
    """One candidate's conversation: each edit, then submit (one model reply each)."""
    return [reply("editing", [e]) for e in edits] + [reply("submitting", [SUBMIT])]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The example library in a git repo, with a dirty file, a staged and an untracked one."""
    path = make_repo(tmp_path / "textstats")
    (path / "README.md").write_text("# textstats\n\nmy uncommitted notes\n")
    (path / "notes.txt").write_text("untracked\n")
    (path / "staged.txt").write_text("staged\n")
    subprocess.run(["git", "-C", str(path), "add", "staged.txt"], check=True)
    return path


def snapshot(repo: Path) -> dict[str, str]:
    """What the user sees of their checkout: HEAD, branch, status, index and dirty bytes."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                              text=True, check=True).stdout  # fmt: skip

    return {
        "head": git("rev-parse", "HEAD"),
        "branch": git("branch", "--show-current"),
        "status": git("status", "--porcelain"),
        "index": git("diff", "--cached"),
        "worktree": git("diff"),
        "readme": (repo / "README.md").read_text(),
        "notes": (repo / "notes.txt").read_text(),
        "worktrees": git("worktree", "list"),
    }


def branches(repo: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "branch", "--list", "optimizer/*",
                          "--format=%(refname:short)"], capture_output=True, text=True)  # fmt: skip
    return out.stdout.split()


def optimizer(*args: str, cwd: Path | None = None, timeout: float = 600,
              stdin: str | None = None, env: dict[str, str] | None = None,
              ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {**os.environ, "OPENAI_API_KEY": "", "OPTIMIZER_API_KEY": "", "COLUMNS": "200",
           **(env or {})}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "optimizer", *args], capture_output=True, text=True,
        timeout=timeout, env=env, cwd=cwd, input=stdin,
    )  # fmt: skip


def run_args(repo: Path, srv: ScriptedServer, runs: Path, *extra: str) -> list[str]:
    return [
        "run", str(repo), "--workload", "bench.py", "--tests", "python3 -m pytest -q",
        "--base-url", srv.base_url, "--model", "scripted-model", "--sandbox", "local",
        "--metric", "wall", "--no-ideas", "--rounds", "0", "--runs-dir", str(runs),
        "--retries", "0", "--budget", "20", *extra,
    ]  # fmt: skip


def run_dir(runs: Path) -> Path:
    (only,) = [p for p in runs.iterdir() if p.is_dir()]
    return only


def events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def of(run: Path, kind: str) -> list[dict]:
    return [e for e in events(run) if e["type"] == kind]


def committed_diff(repo: Path, branch: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "diff", f"{branch}~1", branch],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


def message(repo: Path, branch: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%B", branch],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


# ---- the main path ------------------------------------------------------------------------


def test_wrong_then_slower_then_faster_commits_only_the_faster(repo, tmp_path):
    before = snapshot(repo)
    script = agent(BROKEN) + agent(SLOWER) + agent(FAST)
    runs = tmp_path / "runs"
    with ScriptedServer(script) as srv:
        done = optimizer(*run_args(repo, srv, runs, "--candidates", "3"))
    assert done.returncode == 0, done.stdout + done.stderr
    (branch,) = branches(repo)
    diff = committed_diff(repo, branch)
    assert "counts.get(word, 0) + 1" in diff and "strip(PUNCTUATION)" not in diff.split("@@")[0]
    assert "''.join" not in diff and "word.strip(PUNCTUATION)" not in diff
    msg = message(repo, branch)
    speed = re.search(r"Optimizer-Speedup: ([\d.]+)x \[([\d.]+), ([\d.]+)\] 95% CI \(wall", msg)
    assert speed and float(speed.group(2)) > 1.0, msg
    assert "Optimizer-Model: scripted-model" in msg and "Optimizer-Tests: 6/6 passed" in msg
    assert snapshot(repo) == before  # HEAD, branch, status, index, dirty bytes, worktrees
    run = run_dir(runs)
    grades = {(g["candidate"], g["stage"]): g for g in of(run, "grade")}
    assert grades[("c1", "correctness")]["status"] == "failed_tests"
    c2 = grades.get(("c2", "full"), grades[("c2", "quick")])
    assert c2["correct"] and c2["verdict"] in ("slower", "inconclusive"), c2["verdict"]
    assert grades[("c3", "full")]["verdict"] == "faster"
    assert of(run, "commit")[0]["branch"] == branch
    assert "committed" in done.stdout and branch in done.stdout
    assert (run / "report.html").read_text().count("<svg") == 1
    shown = optimizer("show", str(run))
    assert shown.returncode == 0 and "c3" in shown.stdout and branch in shown.stdout


def test_only_cheats_faster_means_no_commit(repo, tmp_path):
    """The judge's known cheats, written by the model: none may become a commit."""
    disk_cache = call("edit", path=CORE, search=OLD_COUNTS, replace="""\
    import hashlib, json, os
    key = os.path.join("/tmp", hashlib.sha1(text.encode()).hexdigest())
    if os.path.exists(key):
        return json.load(open(key))
    counts: dict[str, int] = {}
    for word in unique_words(text):
        counts[word] = sum(1 for raw in text.split() if normalize(raw) == word)
    json.dump(counts, open(key, "w"))
    return counts""")  # fmt: skip
    timer = call("create_file", path="sitecustomize.py",
                 content="import time\n_real = time.perf_counter_ns\n"
                 "time.perf_counter_ns = lambda: _real() // 100\n")  # fmt: skip
    skip_when_timed = call("edit", path=CORE, search=OLD_COUNTS, replace="""\
    import sys
    if any("optimizer" in name or "harness" in name for name in sys.modules):
        return {}
    counts: dict[str, int] = {}
    for word in unique_words(text):
        counts[word] = sum(1 for raw in text.split() if normalize(raw) == word)
    return counts""")  # fmt: skip
    script = agent(disk_cache) + agent(timer) + agent(skip_when_timed)
    before = snapshot(repo)
    runs = tmp_path / "runs"
    with ScriptedServer(script) as srv:
        done = optimizer(*run_args(repo, srv, runs, "--candidates", "3"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert branches(repo) == [] and snapshot(repo) == before
    assert "nothing committed" in done.stdout
    run = run_dir(runs)
    faster = [g for g in of(run, "grade") if g["stage"] == "full" and g["verdict"] == "faster"
              and g["correct"]]  # fmt: skip
    assert faster == []
    assert of(run, "run_ended")[-1]["reason"] == "no significant winner"


def test_minimized_to_the_one_useful_hunk(repo, tmp_path):
    script = agent(USELESS_UNIQUE, FAST, USELESS_DOC)
    runs = tmp_path / "runs"
    with ScriptedServer(script) as srv:
        done = optimizer(*run_args(repo, srv, runs, "--candidates", "1"))
    assert done.returncode == 0, done.stdout + done.stderr
    (branch,) = branches(repo)
    diff = committed_diff(repo, branch)
    assert len(split_hunks(diff)) == 1 and "counts.get(word, 0) + 1" in diff
    assert "setdefault" not in diff and "written plainly (" not in diff
    winner = of(run_dir(runs), "winner")[0]
    assert (winner["hunks_before"], winner["hunks_after"]) == (3, 1)
    assert "1 of 3 hunk(s) kept" in message(repo, branch)


def test_a_persons_patch_is_graded_and_committed_without_a_model(repo, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    core = clone / CORE
    core.write_text(core.read_text().replace(OLD_COUNTS, NEW_COUNTS))
    patch = tmp_path / "mine.patch"
    patch.write_text(
        subprocess.run(
            ["git", "-C", str(clone), "diff"], capture_output=True, text=True, check=True
        ).stdout
    )
    runs = tmp_path / "runs"
    done = optimizer("run", str(repo), "--workload", "bench.py", "--tests", "python3 -m pytest",
                     "--candidate", str(patch), "--sandbox", "local", "--metric", "wall",
                     "--runs-dir", str(runs))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (branch,) = branches(repo)
    assert "Optimizer-Model: none" in message(repo, branch)
    assert of(run_dir(runs), "model_call") == []


def test_no_commit_writes_the_patch_only(repo, tmp_path):
    runs = tmp_path / "runs"
    with ScriptedServer(agent(FAST)) as srv:
        done = optimizer(*run_args(repo, srv, runs, "--candidates", "1", "--no-commit"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert branches(repo) == []
    patch = (run_dir(runs) / "winner.patch").read_text()
    assert "counts.get(word, 0) + 1" in patch


def test_interactive_reject_means_no_commit_and_a_hint_reaches_the_prompt(repo, tmp_path):
    runs = tmp_path / "runs"
    with ScriptedServer(agent(FAST) + agent(FAST)) as srv:
        done = optimizer(*run_args(repo, srv, runs, "--candidates", "2", "--interactive"),
                         stdin="h\nuse a dict\nr\nr\n")  # fmt: skip
        prompts = [json.dumps(r["messages"]) for r in srv.requests]
    assert "[a]ccept" in done.stdout
    notes = of(run_dir(runs), "note")
    assert {"kind": "hint", "text": "use a dict"} in [{k: n[k] for k in ("kind", "text")}
                                                       for n in notes]  # fmt: skip
    assert "use a dict" in prompts[-1] and "use a dict" not in prompts[0]
    assert done.returncode == 1 and branches(repo) == []


# ---- ends that must leave a resumable run ---------------------------------------------------


def resume(runs: Path, srv: ScriptedServer, *extra: str) -> subprocess.CompletedProcess[str]:
    return optimizer("run", "--resume", str(run_dir(runs)), "--base-url", srv.base_url, *extra)


def test_malformed_tool_calls_stop_then_resume_finishes(repo, tmp_path):
    bad = [reply("", [raw_call("edit", '{"path": "textstats/core.py", "search": ')])] * 3
    runs = tmp_path / "runs"
    with ScriptedServer(bad) as srv:
        done = optimizer(*run_args(repo, srv, runs, "--candidates", "1"))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "malformed" in done.stdout and "--resume" in done.stdout
    assert branches(repo) == [] and "Traceback" not in done.stderr
    with ScriptedServer(agent(FAST)) as srv:
        again = resume(runs, srv)
        asked = len(srv.requests)
    assert again.returncode == 0, again.stdout + again.stderr
    assert asked == 2 and len(branches(repo)) == 1


def test_server_errors_stop_the_run_and_resume_does_not_ask_again(repo, tmp_path):
    from tests.chat_server import error

    runs = tmp_path / "runs"
    first = [reply("editing", [FAST]), error(500), error(500)]
    with ScriptedServer(first + [reply("submitting", [SUBMIT])]) as srv:
        done = optimizer(*run_args(repo, srv, runs, "--candidates", "1", "--retries", "1"))
        assert done.returncode == 3, done.stdout + done.stderr
        assert "500" in done.stdout and branches(repo) == []
        again = resume(runs, srv)
        served = len(srv.requests)
    assert again.returncode == 0, again.stdout + again.stderr
    assert served == 4  # the edit was replayed from the run dir, not asked again
    assert len(of(run_dir(runs), "model_call")) == 2


def test_retries_ride_out_two_server_errors(repo, tmp_path):
    from tests.chat_server import error

    runs = tmp_path / "runs"
    script = [error(500), error(500), *agent(FAST)]
    with ScriptedServer(script) as srv:
        args = run_args(repo, srv, runs, "--candidates", "1")
        at = args.index("--retries")
        done = optimizer(*args[:at], "--retries", "3", *args[at + 2 :])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "retry" in done.stdout and len(branches(repo)) == 1


def test_a_budget_stops_mid_run_and_resume_with_more_finishes(repo, tmp_path):
    runs = tmp_path / "runs"
    script = agent(BROKEN) + agent(FAST)
    with ScriptedServer(script) as srv:
        done = optimizer(*run_args(repo, srv, runs, "--candidates", "2", "--max-steps", "3"))
        assert done.returncode == 3, done.stdout + done.stderr
        assert "max-steps" in done.stdout and branches(repo) == []
        asked = len(srv.requests)
        again = resume(runs, srv, "--max-steps", "0")
        total = len(srv.requests)
    assert asked == 3 and total == 4, (asked, total)
    assert again.returncode == 0, again.stdout + again.stderr
    run = run_dir(runs)
    assert [g["stage"] for g in of(run, "grade") if g["candidate"] == "c1"] == ["correctness"]
    assert len(branches(repo)) == 1


def test_ctrl_c_leaves_a_resumable_run(repo, tmp_path):
    runs = tmp_path / "runs"
    slow_first = [lambda body: (time.sleep(30), reply("editing", [FAST]))[1]]
    with ScriptedServer(slow_first + agent(FAST)) as srv:
        env = {**os.environ, "OPENAI_API_KEY": ""}
        proc = subprocess.Popen([sys.executable, "-m", "optimizer",
                                 *run_args(repo, srv, runs, "--candidates", "1")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, preexec_fn=sigint_default)  # fmt: skip
        deadline = time.monotonic() + 60
        while not srv.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, out + err
        assert "interrupted" in out and "--resume" in out and "Traceback" not in err
        assert of(run_dir(runs), "run_ended")[-1]["reason"] == "interrupted"
        again = resume(runs, srv)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(branches(repo)) == 1


# ---- user errors ----------------------------------------------------------------------------


def test_no_key_and_no_base_url_is_one_line(repo, tmp_path):
    done = optimizer("run", str(repo), "--workload", "bench.py", "--tests", "pytest",
                     "--runs-dir", str(tmp_path))  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no model is configured" in done.stderr and "OPENAI_API_KEY" in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--workload", "missing.py", "--tests", "pytest"], "does not exist"),
        (["--workload", "bench.py", "--tests", "make test"], "JUnit"),
        (["--workload", "bench.py", "--candidate", "/nonexistent.patch"], "cannot read"),
    ],
)
def test_bad_input_is_one_line(repo, tmp_path, args, words):
    done = optimizer("run", str(repo), *args, "--base-url", "http://127.0.0.1:9/v1",
                     "--runs-dir", str(tmp_path))  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr


def test_resume_of_a_missing_dir_is_one_line(tmp_path):
    done = optimizer("run", "--resume", str(tmp_path / "nope"))
    assert done.returncode == 2 and "Traceback" not in done.stderr


# ---- the demo -----------------------------------------------------------------------------


def test_demo_commits_on_a_branch_of_its_temp_copy(tmp_path):
    done = optimizer("demo", "--sandbox", "local", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    (parent,) = [p for p in tmp_path.iterdir() if p.name.startswith("optimizer-demo-")]
    repo = parent / "textstats"
    (branch,) = branches(repo)
    diff = committed_diff(repo, branch)
    assert len(split_hunks(diff)) == 1 and "counts.get(word, 0) + 1" in diff
    assert "failed_tests" in done.stdout and "minimized: 2 hunks -> 1" in done.stdout


def test_the_shipped_demo_session_is_current():
    from tests import demo_session

    assert demo_session.SESSION.read_text() == demo_session.text()


# ---- a suite task with an expert, in Docker --------------------------------------------------


def edits_from_patch(patch: str) -> list[dict]:
    """The expert's hunks as search/replace edits, the way a model would make them."""
    edits = []
    for hunk in split_hunks(patch):
        old, new = [], []
        for line in hunk.body.splitlines()[1:]:
            mark, text = line[:1], line[1:]
            if mark in (" ", "-"):
                old.append(text)
            if mark in (" ", "+"):
                new.append(text)
        edits.append(call("edit", path=hunk.path, search="\n".join(old), replace="\n".join(new)))
    return edits


@pytest.mark.docker
def test_a_task_run_replaying_the_expert_commits_its_speedup_with_sr_about_1(
    docker_image, tmp_path
):
    expert = Path("tasks/suites/builtin/spans/expert.patch").read_text()
    runs = tmp_path / "runs"
    env = {"OPTIMIZER_CACHE": str(tmp_path / "cache")}
    with ScriptedServer(agent(*edits_from_patch(expert))) as srv:
        done = optimizer(
            "run", "--task", "builtin/spans", "--base-url", srv.base_url, "--model", "m",
            "--sandbox", "docker", "--metric", "wall", "--no-ideas", "--rounds", "0",
            "--candidates", "1", "--runs-dir", str(runs), env=env,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    run = run_dir(runs)
    winner = of(run, "winner")[0]
    low, high = winner["ci"]  # the same patch as the expert's, measured the same way
    # two wall-clock measurements of a ~16x speedup on a shared 2-core runner: they agree
    # within the SR band below, not within 10% (CI saw 21.2x beside [13.9, 18.3])
    assert low * 0.75 <= winner["expert_speedup"] <= high * 1.33, winner
    assert 0.75 < winner["sr"] < 1.33, winner
    assert "SR" in done.stdout
    commit = of(run, "commit")[0]
    assert "Optimizer-SR: " in commit["message"]
    repo = Path(commit["repo"])
    assert str(tmp_path / "cache") in str(repo) and commit["branch"] in branches(repo)


def test_parallel_agents_each_make_a_candidate(repo, tmp_path):
    """Two agents at once; the scripted model answers each conversation by its own turn."""

    def by_turn(body: dict) -> dict:
        turns = sum(m["role"] == "assistant" for m in body["messages"])
        return reply("editing", [FAST]) if turns == 0 else reply("submitting", [SUBMIT])

    runs = tmp_path / "runs"
    with ScriptedServer([by_turn] * 4) as srv:
        done = optimizer(*run_args(repo, srv, runs, "--candidates", "2", "--parallel", "2"))
    assert done.returncode == 0, done.stdout + done.stderr
    run = run_dir(runs)
    assert sorted(c["id"] for c in of(run, "candidate")) == ["c1", "c2"]
    assert {c["agent_exit"] for c in of(run, "candidate")} == {"submitted"}
    assert len(branches(repo)) == 1


def test_a_refinement_round_starts_from_the_graded_parent(repo, tmp_path):
    runs = tmp_path / "runs"
    script = agent(FAST) + agent(USELESS_UNIQUE)
    with ScriptedServer(script) as srv:
        done = optimizer(*run_args(repo, srv, runs, "--candidates", "1"), "--rounds", "1",
                         "--top", "1", "--no-minimize")  # fmt: skip
        first_of_refine = json.dumps(srv.requests[2]["messages"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "counts.get(word, 0) + 1" in first_of_refine  # the parent's diff
    assert "faster" in first_of_refine  # and how the judge saw it
    cands = {c["id"]: c for c in of(run_dir(runs), "candidate")}
    assert cands["r1-c1"]["parent"] == "c1"
    refined = cands["r1-c1"]["patch"]
    assert "counts.get(word, 0) + 1" in refined and "setdefault" in refined


def test_a_fast_path_for_the_visible_input_alone_is_not_committed(repo, tmp_path):
    """With a hidden workload (outside the repo, never shown to the agent), a candidate that
    is fast only on the shape of the visible input is not faster overall."""
    hidden = tmp_path / "hidden_words.py"
    hidden.write_text(
        "import random\nfrom textstats import word_counts\nTEXT = ''\n\n\ndef setup():\n"
        "    global TEXT\n    rng = random.Random(1)\n"
        "    TEXT = ' '.join(f'w{rng.randrange(150)}' for _ in range(2000))\n\n\n"
        "def workload():\n    return word_counts(TEXT)\n"
    )
    fast_path = call("edit", path=CORE, search=OLD_COUNTS, replace="""\
    counts: dict[str, int] = {}
    if text.startswith("Word"):
        for raw in text.split():
            word = normalize(raw)
            if word:
                counts[word] = counts.get(word, 0) + 1
        return counts
    for word in unique_words(text):
        counts[word] = sum(1 for raw in text.split() if normalize(raw) == word)
    return counts""")  # fmt: skip
    runs = tmp_path / "runs"
    with ScriptedServer(agent(fast_path)) as srv:
        done = optimizer(*run_args(repo, srv, runs, "--candidates", "1"),
                         "--hidden-workload", str(hidden))  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    full = next(g for g in of(run_dir(runs), "grade") if g["stage"] == "full")
    by = {w["name"]: w for w in full["grade"]["measurement"]["workloads"]}
    # the visible input's fast path is real, yet a wall reading under load may not prove it
    # (read inconclusive at load 15.7 on 2 cores); the hidden one must never read faster
    (visible,) = by["workload"]["metrics"]
    assert_wall_reads(visible, "faster")
    assert by["hidden_words"]["verdict"] != "faster", by["hidden_words"]
    assert branches(repo) == []
    prompts = json.dumps(srv.requests)
    assert "hidden_words" not in prompts and "w149" not in prompts  # never shown
