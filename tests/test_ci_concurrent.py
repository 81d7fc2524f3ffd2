"""Two `optimizer ci` processes at once on one Docker engine: each finishes with its own
exit code, neither's cleanup touches the other's containers, and nothing of either is left.
Also: a benchmark that hangs under valgrind is stopped and named, and the others still
count. Real CLI subprocesses, the real engine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from sandbox.engine import BUILD_LABEL, LABEL, client
from tests.test_ci import _files


def _start(repo: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "optimizer", "ci", str(repo), "--base", "HEAD~1", *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )


def _left_by(pid: int) -> list[str]:
    """Containers, images and volumes whose owner label names this host and ``pid``."""
    api = client().api
    owner = f"{socket.gethostname()}:{pid}"
    found = []
    for key in (f"{LABEL}.owner", BUILD_LABEL):
        for c in api.containers(all=True, filters={"label": f"{key}={owner}"}):
            found.append(f"container {c['Id'][:12]}")
        for i in api.images(all=True, filters={"label": f"{key}={owner}"}):
            found.append(f"image {i['Id'][:19]}")
    volumes = api.volumes(filters={"label": f"{LABEL}.owner={owner}"}).get("Volumes") or []
    return found + [f"volume {v['Name']}" for v in volumes]


def test_two_ci_runs_share_one_engine_and_each_gets_its_own_answer(
    make_repo, docker_image: str
) -> None:
    slowed = make_repo(_files(), _files(render=22000), name="slowed")
    same = make_repo(_files(), {**_files(), "NEWS": "docs only\n"}, name="same")
    args = ("--sandbox", "docker", "--metric", "instructions", "--no-confirm")
    runs = [_start(slowed, *args), _start(same, *args)]
    outs = [p.communicate(timeout=1200) for p in runs]
    for p, (_out, err) in zip(runs, outs, strict=True):
        assert "Traceback" not in err, err
        assert _left_by(p.pid) == [], f"{p.args}: left behind"
    assert runs[0].returncode == 1, outs[0]
    assert "| + |" in outs[0][0] and "render (instructions)" in outs[0][0]
    assert runs[1].returncode == 0, outs[1]
    assert "3 unchanged" in outs[1][0]


def test_a_benchmark_that_hangs_under_valgrind_is_named_and_the_others_count(
    make_repo, docker_image: str
) -> None:
    base = _files()
    base["lib.py"] += "\ndef hang():\n    while True:\n        pass\n"
    head = dict(
        base, **{"bench/render.py": "from lib import hang\n\ndef workload():\n    hang()\n"}
    )
    repo = make_repo(base, head)  # head's benchmark files run on both sides: both hang
    p = _start(repo, "--sandbox", "docker", "--metric", "instructions", "--timeout", "0.4")
    out, err = p.communicate(timeout=900)
    assert p.returncode == 3, (out, err)
    assert "Traceback" not in err
    # 0.4 s native is 12 s under valgrind; the message says so, and names the benchmark
    assert "measuring render took more than 1" in out
    assert "under valgrind (about 30x slower than native" in out
    assert "--timeout of 0.4 s" in out
    assert "2 unchanged" in out  # parse and sort, counted around the hang
