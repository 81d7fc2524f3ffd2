"""Many `optimizer` processes on one Docker engine at once: nobody crashes, nothing is left.

    python benchmarks/many_judges.py [--loops 3] [--calls 15] [--grades 3]
    python benchmarks/many_judges.py --kill
    python benchmarks/many_judges.py --race 30

Runs ``--loops`` concurrent loops of ``--calls`` `optimizer sandbox run REPO --sandbox docker
-- python3 -c "print(TOKEN)"` calls (each checks its own unique token in its stdout), and at
the same time ``--grades`` `optimizer grade builtin/pair-sum-count --sandbox docker
--no-measure` processes (a no-op candidate: exit 0 and an ``ok`` verdict). Each process's
sandbox start sweeps the others' leftovers, so this is the race the sweep must survive.
Prints one row per kind (calls, exit codes, own output correct, tracebacks in stderr,
seconds), then checks that no labelled container, instance image or volume is left.

``--race SECONDS`` instead hammers the race itself, in one process: threads create and remove
labelled containers and instance images (owned by this live process, so never swept) while
other threads call the engine's plain ``containers.list`` / ``images.list`` (what
``sweep_stale`` did before the fix) and ``sweep_stale()`` itself, over the same churn. It
counts how often the plain listing raises (the race is real) against how often the sweep does
(it must be never), and checks that a dead owner's planted container and image are swept
under the churn all the same.

``--kill`` instead starts one grade, SIGKILLs it while its containers exist, then runs one
more `optimizer sandbox run`, whose start must sweep everything the killed process left.

Leftovers are what ``docker ps -a``, ``docker images -a`` and ``docker volume ls`` list with
``--filter label=optimizer.sandbox`` (read through the same engine API). Env-layer images
carry ``optimizer.build`` (older ones ``optimizer.sandbox=build``) and a tag: a cache by
design, shown apart and not counted.
Items owned by live processes this script did not start (another user of the engine) are
shown apart too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import docker.errors
from rich.console import Console
from rich.table import Table

from sandbox.docker_sandbox import _alive  # the sweep's own test of an owner
from sandbox.engine import LABEL, available, client

OWNER = f"{LABEL}.owner"
GRADE_TARGET = "builtin/pair-sum-count"
console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)


def cli() -> list[str]:
    """The `optimizer` console script, or this interpreter's module when it is not on PATH."""
    exe = shutil.which("optimizer")
    return [exe] if exe else [sys.executable, "-m", "optimizer"]


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    (repo / "main.py").write_text("print('hi')\n")
    env = ["-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), *env, "commit", "-qm", "init"], check=True)
    return repo


@dataclass
class Call:
    kind: str
    code: int
    correct: bool
    traceback: bool
    seconds: float
    stderr: str = ""
    stdout: str = ""


@dataclass
class Record:
    """Every process this script started (their pids own labels) and how each call ended."""

    pids: set[int] = field(default_factory=set)
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, kind: str, args: list[str], check, cwd: Path, timeout: float) -> Call:
        started = time.perf_counter()
        proc = subprocess.Popen(
            args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        with self.lock:
            self.pids.add(proc.pid)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += f"\n[many_judges: killed after {timeout:.0f} s]"
        call = Call(
            kind=kind,
            code=proc.returncode,
            correct=check(out),
            traceback="Traceback" in err,
            seconds=time.perf_counter() - started,
            stderr=err,
            stdout=out,
        )
        with self.lock:
            self.calls.append(call)
        return call


def sandbox_call(rec: Record, repo: Path, timeout: float) -> Call:
    token = f"tok{uuid.uuid4().hex}"
    args = [*cli(), "sandbox", "run", str(repo), "--sandbox", "docker", "--"]
    args += ["python3", "-c", f"print('{token}')"]
    return rec.run("sandbox run", args, lambda out: token in out.split(), repo, timeout)


def graded_ok(out: str) -> bool:
    return any(line.split()[:1] == ["ok"] for line in out.splitlines())


def grade_call(rec: Record, cwd: Path, timeout: float) -> Call:
    args = [*cli(), "grade", GRADE_TARGET, "--sandbox", "docker", "--no-measure"]
    return rec.run("grade", args, graded_ok, cwd, timeout)


# -- what is left on the engine -------------------------------------------------------------
def labelled() -> list[dict]:
    """Every container, image (intermediate ones too) and volume with the sandbox label."""
    api = client().api
    flt = {"label": LABEL}
    items = []
    for c in api.containers(all=True, filters=flt):
        items.append({"kind": "container", "id": c["Id"][:12], "labels": c.get("Labels") or {}})
    for i in api.images(all=True, filters=flt):
        tags = [t for t in i.get("RepoTags") or [] if t != "<none>:<none>"]
        items.append(
            {"kind": "image", "id": i["Id"].split(":")[-1][:12], "labels": i.get("Labels") or {}}
            | {"tags": tags}
        )
    for v in api.volumes(filters=flt).get("Volumes") or []:
        items.append({"kind": "volume", "id": v["Name"][:12], "labels": v.get("Labels") or {}})
    return items


def owner_pid(item: dict) -> int | None:
    host, _, pid = item["labels"].get(OWNER, "").rpartition(":")
    return int(pid) if host == socket.gethostname() and pid.isdigit() else None


def classify(items: list[dict], ours: set[int], before: set[str]) -> dict[str, list[dict]]:
    """Split labelled items into leftovers (ours, or of a dead owner), cache and others'."""
    out: dict[str, list[dict]] = {"leftover": [], "cache": [], "foreign": []}
    for item in items:
        pid = owner_pid(item)
        if item["kind"] == "image" and item.get("tags") and item["labels"].get(LABEL) == "build":
            out["cache"].append(item)  # an env layer: tagged, kept on purpose
        elif pid is not None and pid in ours:
            out["leftover"].append(item)
        elif pid is not None and _alive(pid) or item["id"] in before:
            out["foreign"].append(item)  # a live process we did not start, or there before
        else:
            out["leftover"].append(item)  # dead owner, no owner, or another host's
    return out


def settle(ours: set[int], before: set[str], wait_s: float) -> dict[str, list[dict]]:
    """Poll for up to ``wait_s`` seconds until none of the leftovers remain."""
    deadline = time.monotonic() + wait_s
    while True:
        found = classify(labelled(), ours, before)
        if not found["leftover"] or time.monotonic() > deadline:
            return found
        time.sleep(1)


def describe(item: dict) -> str:
    owner = item["labels"].get(OWNER, "-")
    tag = f" {','.join(item['tags'])}" if item.get("tags") else ""
    return f"{item['kind']} {item['id']}{tag} ({LABEL}={item['labels'].get(LABEL)}, owner {owner})"


def report_leftovers(found: dict[str, list[dict]]) -> bool:
    if found["leftover"]:
        console.print(f"[red]leftovers: {len(found['leftover'])}[/]")
        for item in found["leftover"]:
            console.print(f"  {describe(item)}")
    else:
        console.print("[green]leftovers: none[/]")
    if found["cache"]:
        names = ", ".join(t for i in found["cache"] for t in i["tags"])
        console.print(f"[dim]not counted: {len(found['cache'])} env-layer cache image(s) {names}")
    for item in found["foreign"]:
        console.print(f"[dim]not counted (another live process, or there before): {describe(item)}")
    return not found["leftover"]


# -- the scenarios --------------------------------------------------------------------------
def concurrent(args: argparse.Namespace, repo: Path, rec: Record) -> float:
    threads = []

    def loop() -> None:
        for _ in range(args.calls):
            sandbox_call(rec, repo, args.timeout)

    for _ in range(args.loops):
        threads.append(threading.Thread(target=loop))
    for _ in range(args.grades):
        threads.append(threading.Thread(target=grade_call, args=(rec, repo.parent, args.timeout)))
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def table_of(rec: Record, title: str) -> Table:
    table = Table(title=title)
    for col in ("kind", "calls", "exit codes", "own output ok", "tracebacks", "median s", "max s"):
        table.add_column(col)
    for kind in ("sandbox run", "grade"):
        calls = [c for c in rec.calls if c.kind == kind]
        if not calls:
            continue
        codes = Counter(c.code for c in calls)
        secs = [c.seconds for c in calls]
        table.add_row(
            kind,
            str(len(calls)),
            ", ".join(f"{code}: {n}" for code, n in sorted(codes.items())),
            f"{sum(c.correct for c in calls)}/{len(calls)}",
            str(sum(c.traceback for c in calls)),
            f"{statistics.median(secs):.1f}",
            f"{max(secs):.1f}",
        )
    return table


def show_failures(rec: Record) -> None:
    for call in rec.calls:
        if call.code != 0 or not call.correct or call.traceback:
            console.print(f"[red]failed {call.kind}: exit {call.code}[/], stderr tail:")
            tail = (call.stderr.strip() or call.stdout.strip()).splitlines()[-25:]
            console.out("\n".join("    " + line for line in tail))


def race_scenario(seconds: float) -> tuple[Table, bool]:
    """Plain listings vs ``sweep_stale()`` while containers and images come and go."""
    from sandbox.docker_sandbox import sweep_stale
    from sandbox.images import base_tag

    c = client()
    base = base_tag()
    mine = {LABEL: f"race-{uuid.uuid4().hex[:8]}", OWNER: f"{socket.gethostname()}:{os.getpid()}"}
    dead = {
        LABEL: f"race-dead-{uuid.uuid4().hex[:8]}",
        OWNER: f"{socket.gethostname()}:{2**22 + 7}",
    }
    holder = c.containers.create(base, ["true"], labels=dead)
    dead_image = holder.commit(conf={"Labels": dead}).id
    holder.remove(force=True)
    dead_container = c.containers.create(dead_image, ["true"], labels=dead).id
    stop = threading.Event()
    calls: Counter[str] = Counter()
    errors: dict[str, Counter[str]] = {}
    flt = {"label": LABEL}

    def attempt(name: str, fn) -> None:
        calls[name] += 1
        try:
            fn()
        except Exception as exc:  # counted, not raised: that is the measurement
            errors.setdefault(name, Counter())[type(exc).__name__] += 1

    def churn_containers() -> None:
        while not stop.is_set():
            c.containers.create(base, ["true"], labels=mine).remove(force=True)
            calls["(churn: containers made and removed)"] += 1

    def churn_images() -> None:
        while not stop.is_set():
            holder = c.containers.create(base, ["true"], labels=mine)
            image = holder.commit(conf={"Labels": mine}).id
            holder.remove(force=True)
            c.images.remove(image, force=True)
            calls["(churn: images made and removed)"] += 1

    def plain() -> None:
        while not stop.is_set():
            attempt(
                "containers.list(all=True) (before the fix)",
                lambda: c.containers.list(all=True, filters=flt),
            )
            attempt("images.list() (before the fix)", lambda: c.images.list(filters=flt))

    def sweeper() -> None:
        while not stop.is_set():
            attempt("sweep_stale() (now)", sweep_stale)

    workers = [churn_containers, churn_containers, churn_images, plain, sweeper, sweeper]
    threads = [threading.Thread(target=w) for w in workers]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    gone = {"container": dead_container, "image": dead_image}
    left = []
    for kind, ident in gone.items():
        try:
            (c.containers if kind == "container" else c.images).get(ident)
            left.append(kind)
        except docker.errors.NotFound:
            pass
    table = Table(title=f"--race: {seconds:.0f} s of listing while labelled items come and go")
    for col in ("call", "calls", "raised", "what"):
        table.add_column(col)
    for name, n in sorted(calls.items(), key=lambda kv: ("churn" in kv[0], "now" in kv[0])):
        errs = errors.get(name, Counter())
        what = ", ".join(f"{k} x{v}" for k, v in errs.items())
        table.add_row(name, str(n), str(sum(errs.values())) if "churn" not in name else "-", what)
    table.add_row(
        "dead owner's planted container + image",
        "-",
        "-",
        f"left after the race: {', '.join(left) or 'none'}",
    )
    plain_hits = sum(sum(v.values()) for k, v in errors.items() if "before" in k)
    sweep_hits = sum(errors.get("sweep_stale() (now)", Counter()).values())
    if not plain_hits:
        console.print("[yellow]the plain listings never raised: the race was not reproduced")
    return table, not sweep_hits and not left


def kill_scenario(args: argparse.Namespace, repo: Path, rec: Record) -> tuple[Table, bool]:
    """SIGKILL a grade mid-run; the next sandbox start must sweep what it left."""
    table = Table(title="--kill: a grade SIGKILLed mid-run, then one `optimizer sandbox run`")
    for col in ("step", "containers", "images", "volumes", "note"):
        table.add_column(col)

    def count(pid: int) -> list[int]:
        mine = [i for i in labelled() if owner_pid(i) == pid]
        return [sum(i["kind"] == k for i in mine) for k in ("container", "image", "volume")]

    grade = subprocess.Popen(
        [*cli(), "grade", GRADE_TARGET, "--sandbox", "docker", "--no-measure"],
        cwd=repo.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rec.pids.add(grade.pid)
    started = time.monotonic()
    seen = [0, 0, 0]
    while time.monotonic() - started < args.timeout and grade.poll() is None:
        seen = count(grade.pid)
        if seen[0] and seen[1]:  # a container running on an instance image: mid-run
            break
        time.sleep(0.2)
    mid = time.monotonic() - started
    if grade.poll() is not None:
        table.add_row("grade", *map(str, seen), f"ended by itself (exit {grade.returncode})")
        return table, False
    grade.send_signal(signal.SIGKILL)
    grade.wait()  # reaped: a zombie still answers kill(pid, 0), so would count as alive
    time.sleep(1)
    left = count(grade.pid)
    table.add_row(
        f"grade pid {grade.pid} SIGKILLed", *map(str, left), f"at {mid:.1f} s, owned items left"
    )
    call = sandbox_call(rec, repo, args.timeout)
    after = count(grade.pid)
    note = f"exit {call.code}, own output {'ok' if call.correct else 'WRONG'}"
    note += ", traceback" if call.traceback else ""
    table.add_row("after one `sandbox run`", *map(str, after), note)
    ok = any(left) and not any(after) and call.code == 0 and call.correct and not call.traceback
    return table, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=3, help="concurrent sandbox-run loops")
    parser.add_argument("--calls", type=int, default=15, help="calls per loop")
    parser.add_argument("--grades", type=int, default=3, help="concurrent grades")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per process")
    parser.add_argument("--settle", type=float, default=10, help="seconds to wait for cleanup")
    parser.add_argument("--kill", action="store_true", help="the SIGKILL-then-sweep scenario")
    parser.add_argument("--race", type=float, metavar="SECONDS", help="the list/remove race")
    args = parser.parse_args()
    if not available():
        sys.exit("no Docker engine answers: this benchmark needs one")
    rec = Record()
    before = {i["id"] for i in labelled() if owner_pid(i) is None or _alive(owner_pid(i))}
    with tempfile.TemporaryDirectory(prefix="many-judges-") as tmp:
        repo = make_repo(Path(tmp))
        if args.race:
            rec.pids.add(os.getpid())  # the churned items are this process's
            table, ok = race_scenario(args.race)
            console.print(table)
        elif args.kill:
            table, ok = kill_scenario(args, repo, rec)
            console.print(table)
        else:
            wall = concurrent(args, repo, rec)
            title = (
                f"{args.loops} loops x {args.calls} `sandbox run` + {args.grades} grades, "
                f"side by side ({wall:.0f} s wall)"
            )
            console.print(table_of(rec, title))
            show_failures(rec)
            ok = all(c.code == 0 and c.correct and not c.traceback for c in rec.calls)
    clean = report_leftovers(settle(rec.pids, before, args.settle))
    sys.exit(0 if ok and clean else 1)


if __name__ == "__main__":
    main()
