"""`optimizer bench`: compare a candidate with a base revision, and show the numbers."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from optimizer import options
from optimizer.bench import BenchConfig, BenchRecord, MetricChoice, run_bench, write_record
from optimizer.console import table_console
from optimizer.errors import UserError
from optimizer.results import write_text_atomic
from profilers.compare import Region
from profilers.models import ProtocolName
from profilers.stats import FLOORS
from sandbox import Backend


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1e3:.2f} ms" if value < 1 else f"{value:.3f} s"
    return f"{value / 1e6:,.2f} M"


def render(record: BenchRecord, console: Console) -> None:
    """Print the comparison table and the machine it ran on."""
    title = f"{record.base.name()}  vs  {record.head.name()}  ({record.protocol})"
    table = Table(title=title, box=box.SIMPLE_HEAD)
    cols = ("metric", "base median", "head median", "ratio", "estimator", "95% CI", "p", "pairs")
    for col in cols:
        table.add_column(col, justify="left" if col in ("metric", "estimator") else "right")
    table.add_column("verdict")
    colors = {"faster": "green", "slower": "red", "same": "cyan", "inconclusive": "yellow"}
    for m in record.metrics:
        table.add_row(
            m.metric,
            _fmt(m.base_median, m.unit),
            _fmt(m.head_median, m.unit),
            f"{m.ratio:.4f}",
            m.estimator,
            f"{m.ci[0]:.4f}-{m.ci[1]:.4f}",
            f"{m.p_value:.2g}",
            str(m.pairs),
            f"[{colors[m.verdict]}]{m.verdict}[/]",
        )
    console.print(table)
    for m in record.metrics:
        if m.caching:
            console.print(f"[yellow]{m.metric} not credited warm:[/] {m.caching}")
        elif m.cold:
            console.print(
                f"{m.metric} read cold in the same processes (import + setup + first call): "
                f"ratio {m.cold.ratio:.4f} ({m.cold.ci[0]:.4f}-{m.cold.ci[1]:.4f}) "
                f"{m.cold.verdict}",
                highlight=False,
            )
    env = record.environment
    console.print(
        f"workload: {record.workload} ({record.workload_kind}); backend: {record.backend}; "
        f"cpu: {env.get('cpu')} x{env.get('cores')}; load: {env.get('load_1m')}; "
        f"python: {env.get('sandbox_python')} (host {env.get('host_python')})",
        highlight=False,
    )
    if record.memory_kb:
        console.print(
            f"peak RSS: base {record.memory_kb['base']:,} KiB, "
            f"head {record.memory_kb['head']:,} KiB",
            highlight=False,
        )


def write_hotspots(record: BenchRecord, folder: Path, console: Console) -> None:
    """SIDE.txt (short, for a prompt), SIDE.json and SIDE.speedscope.json per side."""
    if not record.hotspots:
        console.print("hotspots: skipped (they need a .py workload with workload())")
        return
    folder = folder.expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot make {folder}: {exc.strerror}", "pick a writable folder") from None
    for side, report in record.hotspots.items():
        write_text_atomic(folder / f"{side}.txt", report.text() + "\n")
        write_text_atomic(folder / f"{side}.json", report.model_dump_json(indent=2) + "\n")
        write_text_atomic(folder / f"{side}.speedscope.json", json.dumps(report.speedscope))
    console.print(f"hotspots: {folder}/{{base,head}}.txt, .json, .speedscope.json")
    console.print(record.hotspots["head"].text(), highlight=False)


def register(app: typer.Typer) -> None:
    """Add the `bench` command to the app."""

    @app.command("bench")
    def bench(
        repo: Path = typer.Argument(..., help="The git repository."),
        workload: str = typer.Option(
            ..., "--workload", "-w", help="A shell command, or a .py file with workload()."
        ),
        base: str = typer.Option("HEAD", "--base", help="Base revision."),
        head: str | None = typer.Option(
            None, "--head", help="Candidate revision (default: base, i.e. an A/A run)."
        ),
        patch: Path | None = typer.Option(
            None, "--patch", help="Candidate = base + this unified diff (instead of --head)."
        ),
        metric: MetricChoice = typer.Option("both", "--metric", "-m", help="What to measure."),
        repeats: int = options.repeats("-n"),
        max_repeats: int | None = typer.Option(
            None,
            "--max-repeats",
            min=2,
            help="Most wall-clock pairs while inconclusive (default 20x).",
        ),
        budget: float = options.budget(120.0, "metric"),
        timeout: float = options.timeout(120.0),
        wall_floor: float = typer.Option(
            FLOORS["wall"],
            "--wall-floor",
            min=0,
            max=1,
            help="Noise floor for wall time (0.02 = 2%).",
        ),
        instructions_floor: float = typer.Option(
            FLOORS["instructions"],
            "--instructions-floor",
            min=0,
            max=1,
            help="Noise floor for instructions.",
        ),
        json_path: Path | None = options.json_out("the full record"),
        hotspots: Path | None = typer.Option(
            None,
            "--hotspots",
            help="Write each side's cProfile hotspots (text, JSON, speedscope) into this folder.",
        ),
        sandbox: Backend = options.SANDBOX,
        pip: list[str] = options.PIP,
        protocol: ProtocolName | None = options.PROTOCOL,
        region: Region = typer.Option(
            "workload",
            "--region",
            help="workload: time workload() only; total: import + setup too.",
        ),
    ) -> None:
        """Measure a candidate against a base revision, interleaved, and give a verdict.

        The candidate is --head REV, or --base plus --patch FILE; with neither, it is the
        base itself (an A/A run, which should say `same`).
        """
        if head is not None and patch is not None:
            raise UserError("--head and --patch were both given", "pass one of them")
        if repeats < 2:
            raise UserError(f"--repeats {repeats} is too few", "pass --repeats 2 or more")
        patch_text = None
        if patch is not None:
            try:
                patch_text = patch.read_text()
            except OSError as exc:
                raise UserError(
                    f"cannot read patch {patch}: {exc.strerror}", "pass an existing diff file"
                ) from None
        cfg = BenchConfig(
            repo=repo,
            workload=workload,
            base=base,
            head=head,
            patch=patch_text,
            metrics=["wall", "instructions"] if metric == "both" else [metric],
            repeats=repeats,
            max_repeats=max_repeats,
            budget_s=budget,
            timeout_s=timeout,
            sandbox=sandbox,
            floors={"wall": wall_floor, "instructions": instructions_floor},
            hotspots=hotspots is not None,
            region=region,
            pip=list(pip),
            protocol=protocol or "cold",
        )
        err = Console(stderr=True, highlight=False)
        if err.is_terminal:
            with err.status("benchmarking...") as status:
                record = run_bench(cfg, progress=lambda msg: status.update(msg))
        else:  # a CI log: one plain line per step
            record = run_bench(cfg, progress=lambda msg: err.print(msg, soft_wrap=True))
        out = table_console(130)
        render(record, out)
        if json_path is not None:
            write_record(record, json_path)
        if hotspots is not None:
            write_hotspots(record, hotspots, out)
