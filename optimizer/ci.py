"""`optimizer ci`: measure a repository's benchmarks at two revisions and gate on regressions.

The steps:

1. The benchmarks are found in the **head** revision (``optimizer.ci_benchmarks``), and head's
   benchmark files are copied over base's, so both sides run the same measurement (as asv
   does): a pull request that edits a benchmark is not mistaken for a slower library.
2. Each side gets its own sandbox (the optional ``build`` command runs once in each), and for
   every benchmark and metric the two sides' runs are interleaved, with adaptive repeats
   (``profilers.compare.compare_metric``, the same path grading and `bench` use).
3. Per metric, the benchmarks form one family: each comparison runs at the Bonferroni level
   ``alpha / m``, and the p-values are then Holm-adjusted. A metric says ``regression`` when
   its comparison says ``slower`` (ratio >= 1 + threshold, the whole CI above 1) with a
   Holm-adjusted p below ``alpha``, **and** a confirming re-run (fresh pairs) says
   ``slower`` again; a flagged but unconfirmed change is ``inconclusive``. ``improvement``
   mirrors it (confirmed too, so noise is not sold as a win); ``unchanged`` means the CI
   sits inside the threshold band.
4. A benchmark's verdict: ``regression`` if any of its metrics has a confirmed regression
   (instruction counts catch small pure-Python regressions without noise; wall clock
   covers I/O and native code). Otherwise the primary metric decides: instruction counts
   where measured (deterministic), else wall clock. A benchmark that fails is ``error``.
5. Exit code: 3 if anything failed (a harness, build or benchmark error), else 1 on a
   confirmed regression, else 2 if anything is inconclusive (1 with
   ``fail_on_inconclusive``), else 0.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from optimizer.bench import Side, machine_info
from optimizer.ci_benchmarks import Benchmark, Discovery, discover
from optimizer.ci_gate import Gate
from optimizer.ci_models import (  # noqa: F401 (the records, re-exported)
    EXIT,
    BenchmarkDone,
    BenchmarkResult,
    CIConfig,
    CIRecord,
    HotspotChange,
    MetricVerdict,
    Verdict,
    exit_code,
    holm,
    hotspot_diff,
    summary_line,
)
from optimizer.errors import UserError
from optimizer.vcs import dirty_paths
from profilers import Workload, install
from profilers.common import OUT_DIR, last_line
from sandbox import Limits, Sandbox, Source, open_sandbox
from sandbox.images import EnvRecipe, image_for
from sandbox.source import materialize, resolve


def default_base(root: Path, head: str) -> str:
    """The merge-base of ``head`` with the default branch, or head's parent on that branch."""
    head_sha = _git(root, "rev-parse", "--verify", f"{head}^{{commit}}")
    refs = []
    origin_head = _git(root, "symbolic-ref", "-q", "refs/remotes/origin/HEAD")
    if origin_head:
        refs.append(origin_head)
    refs += ["refs/remotes/origin/main", "refs/remotes/origin/master", "refs/heads/main"]
    refs += ["refs/heads/master"]
    for ref in refs:
        if not _git(root, "rev-parse", "--verify", "-q", ref):
            continue
        base = _git(root, "merge-base", ref, head_sha)
        if base and base != head_sha:
            return base
    parent = _git(root, "rev-parse", "--verify", "-q", f"{head_sha}^")
    if parent:
        return parent
    raise UserError(f"{head} has no parent and no default branch to compare with", "pass --base")


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def _open_side(
    label: str, src: Source, cfg: CIConfig, image: str | None, files: dict[str, bytes],
    build: str | None, stack: contextlib.ExitStack, say: Callable[[str], None],
) -> tuple[Side, Sandbox]:  # fmt: skip
    """A side's sandbox with the harness and head's benchmark files, built, not yet sealed."""
    sb = stack.enter_context(
        open_sandbox(src, cfg.sandbox, limits=Limits(wall_s=cfg.timeout_s), image=image)
    )
    say(f"copied {label} ({src.rev}) into a {sb.backend} sandbox")
    side = Side(label=label, rev=src.rev, sha=sb.sha)  # type: ignore[arg-type]
    install(sb, Workload(kind="command", target="true"))
    sb.write_files(files)
    if build:
        say(f"building {label}: {build}")
        r = sb.run(build, limits=Limits(wall_s=max(cfg.timeout_s, 600)))
        if not r.ok:
            tail = last_line(r.stderr) or last_line(r.stdout) or r.reason or ""
            raise UserError(
                f"the build command failed on {side.name()}: {r.status.value}: {tail}",
                "fix the build command (--build or [tool.optimizer.ci] build), or the code",
            )
    return side, sb


class _Found:
    """Head's tree, read statically: the discovery and the files both sides get."""

    def __init__(self, cfg: CIConfig, root: Path, head_sha: str) -> None:
        with tempfile.TemporaryDirectory(prefix="optimizer-ci-") as tmp:
            tree = Path(tmp)
            materialize(Source(repo=root, rev=head_sha), tree)
            self.discovery = discover(tree)
            d = self.discovery
            paths = {p for b in d.benchmarks for p in b.files} | set(d.pytest_files)
            if d.pytest_files:
                from optimizer.ci_pytest import conftest_files

                paths |= set(conftest_files(tree, d.pytest_files))
            self.files = {p: (tree / p).read_bytes() for p in sorted(paths)}
        self.files.update({b.path: b.code.encode() for b in d.benchmarks if b.code and b.path})
        if d.pytest_files:
            from optimizer.ci_pytest import RUNNER_PATH, runner_file

            self.files[RUNNER_PATH] = runner_file()
        s = d.settings
        pip = list(s.pip) + list(cfg.pip)
        if d.pytest_files and not any(re.match(r"pytest\b(?!-)", r) for r in pip):
            pip.append("pytest")  # the pytest-benchmark runner runs under pytest
        self.recipe = EnvRecipe(pip=pip, apt=s.apt)
        self.build = cfg.build or s.build

    def collect_pytest(self, sb: Sandbox, cfg: CIConfig, say: Callable[[str], None]) -> None:
        """Expand the pytest files into benchmarks: pytest collects them in ``sb`` (head)."""
        d = self.discovery
        if not d.pytest_files:
            return
        from optimizer.ci_pytest import collect

        say(f"collecting pytest-benchmark tests in {len(d.pytest_files)} files (head)")
        found, skipped = collect(
            sb, d.pytest_files, python=cfg.python, limits=Limits(wall_s=max(cfg.timeout_s, 300))
        )
        taken = {b.name for b in d.benchmarks}
        d.benchmarks += [b for b in found if b.name not in taken]
        d.skipped += skipped


def _select(benchmarks: list[Benchmark], select: str | None) -> list[Benchmark]:
    if not select:
        return benchmarks
    try:
        pattern = re.compile(select)
    except re.error as exc:
        raise UserError(
            f"--bench {select!r} is not a regular expression ({exc})",
            "pass a Python regex, e.g. --bench 'parse|render', or escape the character "
            "(\\( for a literal parenthesis)",
        ) from None
    return [b for b in benchmarks if pattern.search(b.name)]


def _prepare(
    cfg: CIConfig, say: Callable[[str], None], stack: contextlib.ExitStack, *, head_only: bool
) -> tuple[Path, str, _Found, dict[str, tuple[Side, Sandbox]]]:
    """Resolve both revisions, read head's benchmarks, and open (and build) the sandboxes."""
    _select([], cfg.select)  # a bad --bench regex fails now, before any work
    root, head_sha = resolve(Source(repo=cfg.repo, rev=cfg.head))
    base_rev = cfg.base or default_base(root, head_sha)
    resolve(Source(repo=root, rev=base_rev))  # an unknown --base fails here, before any work
    found = _Found(cfg, root, head_sha)
    d = found.discovery
    if not d.benchmarks and not d.pytest_files:
        raise UserError(
            f"no benchmarks found at {cfg.head} ({head_sha[:12]})",
            "declare them in [tool.optimizer.benchmarks] of pyproject.toml, or add "
            "pytest-benchmark tests or an asv benchmarks/ folder",
        )
    image = image_for(found.recipe, cfg.sandbox, d.settings.image, log=say)
    revs = (("head", cfg.head),) if head_only else (("base", base_rev), ("head", cfg.head))
    sides = {
        label: _open_side(label, Source(repo=root, rev=rev), cfg, image, found.files,
                          found.build, stack, say)
        for label, rev in revs
    }  # fmt: skip
    found.collect_pytest(sides["head"][1], cfg, say)
    return root, base_rev, found, sides


def list_benchmarks(cfg: CIConfig, progress: Callable[[str], None] | None = None) -> Discovery:
    """What `optimizer ci` would measure at head (pytest collects in a sandbox), and what it
    skips, with why; nothing is measured."""
    say = progress or (lambda _msg: None)
    with contextlib.ExitStack() as stack:
        _, _, found, _ = _prepare(cfg, say, stack, head_only=True)
    d = found.discovery
    d.benchmarks = _select(d.benchmarks, cfg.select)
    return d


def run_ci(
    cfg: CIConfig,
    progress: Callable[[str], None] | None = None,
    tick: Callable[[BenchmarkDone], None] | None = None,
) -> CIRecord:
    """Measure the benchmarks at base and head, and judge each one."""
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    with contextlib.ExitStack() as stack:
        root, base_rev, found, sides = _prepare(cfg, say, stack, head_only=False)
        d = found.discovery
        benchmarks = _select(d.benchmarks, cfg.select)
        if not benchmarks:
            names = [b.name for b in d.benchmarks]
            shown = ", ".join(names[:8]) + (
                f", ... ({len(names)} in all)" if len(names) > 8 else ""
            )
            raise UserError(
                f"no benchmarks found at {cfg.head}"
                + (f" matching --bench {cfg.select!r}" if cfg.select else ""),
                (f"pick from: {shown}" if names else "check --bench")
                + "; `optimizer ci --list` shows what was found and skipped",
            )
        dirty = dirty_paths(root)
        if dirty:
            say(f"{len(dirty)} uncommitted change(s) in {root} (e.g. {dirty[0]}) are not "
                "measured: ci compares the commits base and head")  # fmt: skip
        base_sha = sides["base"][0].sha
        if base_sha == sides["head"][0].sha:
            say(f"base {base_rev} and head {cfg.head} are the same commit ({base_sha[:12]}): "
                "it is measured against itself, so nothing should change")  # fmt: skip
        say(f"{len(benchmarks)} benchmarks; base {base_rev}, head {cfg.head}")
        running = {}
        for label, (side, sb) in sides.items():
            sb.seal()  # every measured run starts from the built tree
            running[label] = (side.name(), stack.enter_context(sb.session(writable=(OUT_DIR,))))
        gate = Gate(cfg, running, say, tick)
        results = gate.run(benchmarks)
        backend = sides["base"][1].backend
    code = exit_code(results, cfg.fail_on_inconclusive)
    return CIRecord(
        repo=str(root),
        base=sides["base"][0],
        head=sides["head"][0],
        backend=backend,
        environment=machine_info(backend),
        metric=cfg.metric,
        threshold=cfg.threshold,
        config_file=d.config_file,
        benchmarks=results,
        skipped=d.skipped + gate.skipped,
        exit_code=code,
        summary=summary_line(results),
        started_at=started_at,
        elapsed_s=round(time.monotonic() - started, 3),
    )
