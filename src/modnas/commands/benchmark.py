"""``modnas benchmark``: MODNAS against multi-objective baselines on a space's devices, one shared scorer.

Register it in :mod:`modnas.cli` with ``app.command("benchmark")(benchmark_command)``.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from modnas.commands.common import console, err_console, print_json, user_errors


@user_errors
def benchmark_command(
    protocol: Annotated[
        Path | None, typer.Argument(help="Protocol YAML (methods, devices, seeds, budget, workers, modnas).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="New output directory (default: runs/benchmark-<timestamp>).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A tiny protocol that runs in seconds (smoke test).")] = False,
    modnas_runs: Annotated[
        list[Path], typer.Option("--modnas-runs", help="Reuse these MODNAS run directories (repeat the option).")
    ] = [],  # noqa: B006
    workers: Annotated[int | None, typer.Option(help="Worker processes (overrides the protocol).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of tables.")] = False,
    space: Annotated[
        str | None,
        typer.Option("--space", metavar="NAME", help="Search space (overrides the protocol's; default nb201)."),
    ] = None,
) -> None:
    """Run MODNAS and the baselines (random, local, MO-REA, NSGA-II, MO-TPE, GP) per device; write tables and plots.

    Without PROTOCOL: every method on the 19 devices, one seed, K = 200 (about 11 minutes on 2 idle cores).
    The full report is `modnas benchmark benchmarks/protocols/full.yaml`.
    """
    from modnas.baselines.benchmark import check_inputs, run_benchmark
    from modnas.baselines.protocol import load_protocol, quick_protocol
    from modnas.errors import ModnasError

    if quick and protocol is not None:
        raise ModnasError("give either a PROTOCOL file or --quick, not both")
    if quick:
        proto = quick_protocol(space) if space is not None else quick_protocol()
    else:
        proto = load_protocol(protocol, {"space": space})
    if workers is not None:
        if workers < 1:
            raise ModnasError(f"--workers must be >= 1, got {workers}")
        proto = proto.model_copy(update={"workers": workers})
    out_dir = out or Path("runs") / f"benchmark-{time.strftime('%Y%m%d-%H%M%S')}"
    parts = ["modnas", "benchmark"] + ([str(protocol)] if protocol else []) + (["--quick"] if quick else [])
    parts += ["--out", str(out_dir)] + [a for r in modnas_runs for a in ("--modnas-runs", str(r))]
    parts += ["--workers", str(workers)] if workers is not None else []
    parts += ["--space", space] if space is not None else []
    command = " ".join(shlex.quote(p) for p in parts)
    check_inputs(proto, out_dir, [str(r) for r in modnas_runs])  # before the progress bar takes the terminal
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} jobs"),
        TextColumn("{task.fields[last]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err_console, transient=True,
    )
    with bar:
        task = bar.add_task("benchmark", total=None, last="")

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, last=label)

        result = run_benchmark(proto, out_dir, [str(r) for r in modnas_runs], progress, command)
    from modnas.baselines.report import PER_DEVICE_K, SAME_TOTAL, summarise

    summary = summarise(result)
    summary["wall_seconds"] = round(result.seconds, 1)
    if as_json:
        print_json({**summary, "out_dir": str(out_dir)})
        return
    for view, title in (
        (SAME_TOTAL, f"same total budget (baselines {proto.same_total_budget}/device)"),
        (PER_DEVICE_K, f"baselines {proto.budget}/device"),
    ):
        console.print(_mean_table(summary, view, title))
    console.print(f"{len(result.results)} result rows in {result.seconds / 60:.1f} min; report: "
                  f"{out_dir / 'report.md'}", highlight=False)


def _mean_table(summary: dict, view: str, title: str) -> Table:
    """Mean HV over devices per method, and MODNAS's wins against each baseline."""
    data = summary["views"][view]
    table = Table(title=title)
    for col in ("method", "mean HV", "std (seeds)", "MODNAS wins"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for method, entry in data["hv"].items():
        wins = data["wins"].get(method)
        table.add_row(
            method, f"{entry['mean']['mean']:.4f}", f"{entry['mean']['std']:.4f}",
            "" if wins is None else f"{wins['wins']}/{wins['devices']}",
        )
    return table
