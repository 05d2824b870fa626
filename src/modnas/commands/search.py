"""``modnas search`` and ``modnas evaluate``: run a MODNAS search into a run directory and read its results.

Register them in :mod:`modnas.cli` with ``app.command("search")(search_command)`` and
``app.command("evaluate")(evaluate_command)``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from modnas.commands.common import (
    console, err_console, log_level, plain_output, print_json, terminate_as_interrupt, user_errors,
)


def _table(rows: list[dict[str, Any]], title: str) -> Table:
    """Device, split, HV, IGD+, front size; then the mean HV over all devices and over the test devices."""
    table = Table(title=title)
    for col, justify in (("device", "left"), ("split", "left"), ("HV", "right"), ("IGD+", "right"), ("front size", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        igd = "-" if r["igd_plus"] is None else f"{r['igd_plus']:.4f}"
        table.add_row(r["device"], r["split"], f"{r['hv']:.4f}", igd, str(r["n_front"]))
    table.add_section()
    table.add_row(f"mean over {len(rows)}", "", f"{sum(r['hv'] for r in rows) / len(rows):.4f}", "", "")
    test = [r["hv"] for r in rows if r["split"] == "test"]
    if test:
        table.add_row(f"mean over {len(test)} test", "test", f"{sum(test) / len(test):.4f}", "", "")
    return table


@user_errors
def search_command(
    config: Annotated[Path | None, typer.Argument(help="YAML config (optional; options below override it).")] = None,
    mode: Annotated[
        str | None, typer.Option(help="benchmark (error predictor on table queries) or oneshot (supernet on images).")
    ] = None,
    space: Annotated[
        str | None, typer.Option(help="Search space: nb201 (default), ofa, or package.module:attr of your own.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (runs are reproducible per seed).")] = None,
    out: Annotated[Path | None, typer.Option(help="New run directory (default: runs/<timestamp>-seed<seed>).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    steps_per_epoch: Annotated[int | None, typer.Option(help="Hypernetwork steps per epoch.")] = None,
    hypernet: Annotated[str | None, typer.Option(help="Hypernetwork: mlp or meta.")] = None,
    sampler: Annotated[str | None, typer.Option(help="Sampler: reinmax or gdas.")] = None,
    aggregation: Annotated[str | None, typer.Option(help="Device-gradient aggregation: mgda, mean or sum.")] = None,
    query_budget: Annotated[int | None, typer.Option(help="K: architectures whose true accuracy may be read.")] = None,
    front: Annotated[
        str | None,
        typer.Option(help="hypernet, or hypernet+measured: report a queried architecture where it dominates the pick."),
    ] = None,
    front_latency: Annotated[
        str | None,
        typer.Option(help="measured (where the device has measurements; training devices: their tables) or "
                     "predicted: the latency by which hypernet+measured compares architectures."),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue this interrupted run directory from its last checkpoint.")
    ] = None,
    set_fields: Annotated[
        list[str],
        typer.Option("--set", metavar="KEY=VALUE", help="Any config field, dotted for sections (repeat the option), "
                     "e.g. --set error_predictor.steps=300 --set lr=0.002; values are read as YAML."),
    ] = [],  # noqa: B006
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")] = False,
    tensorboard: Annotated[
        bool, typer.Option("--tensorboard", help="Write TensorBoard scalars to RUN/tensorboard (needs the tracking extra: pip install modnas\\[tracking]).")
    ] = False,
) -> None:
    """Train one preference- and device-conditioned hypernetwork; score it on every evaluation device each epoch
    (NB201: the 19 protocol devices).

    Without a terminal (CI, nohup, a pipe) one plain line per epoch goes to stderr instead of a progress bar.
    One-shot searches also run on several processes or machines: `torchrun --nproc-per-node N -m modnas search
    ... --mode oneshot` (README, "Several GPUs or machines").
    """
    from modnas.config import load_config, parse_assignments
    from modnas.errors import ModnasError
    from modnas.search import resume_search, search
    from modnas.search.trackers import TensorBoardTracker

    overrides = {
        "mode": mode, "space": space, "seed": seed, "epochs": epochs, "steps_per_epoch": steps_per_epoch, "hypernet": hypernet,
        "sampler": sampler, "aggregation": aggregation, "query_budget": query_budget,
        "front": front, "front_latency": front_latency,
    }
    for key, value in parse_assignments(set_fields).items():
        if overrides.get(key) is not None:
            raise ModnasError(f"{key} is given both as --{key.replace('_', '-')} and with --set; give it once")
        overrides[key] = value
    if resume is not None:
        given = [k for k, v in overrides.items() if v is not None] + (["CONFIG"] if config else [])
        given += ["out"] if out is not None else []
        if given:
            raise ModnasError(f"--resume continues a run with its own config; drop {', '.join(given)}")
        run_dir = resume
    else:
        cfg = load_config(config, overrides)
        if out is None and _elastic_restarts_allowed():
            raise ModnasError("torchrun --max-restarts needs --out: a restarted worker group resumes the run there")
        run_dir = out or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-seed{cfg.seed}"
    if not _reporting_rank():  # another rank of a torchrun launch: rank 0 shows progress and results
        with terminate_as_interrupt():
            if resume is not None:
                resume_search(resume)
            else:
                search(cfg, run_dir)
        return
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("{task.fields[hv]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err_console, transient=True,
    )
    trackers = [TensorBoardTracker()] if tensorboard else []  # a missing package fails here, before any work
    epoch_lines = log_level("modnas.search", logging.INFO if plain_output() else logging.WARNING)
    with bar, epoch_lines, terminate_as_interrupt():
        task = bar.add_task("resuming" if resume else "searching", total=None, hv="")

        def progress(done: int, total: int, hv: float | None) -> None:
            bar.update(task, completed=done, total=total, hv="" if hv is None else f"mean HV {hv:.4f}")

        try:
            if resume is not None:
                summary = resume_search(resume, progress=progress, callbacks=trackers)
            else:
                summary = search(cfg, run_dir, progress=progress, callbacks=trackers)
        finally:
            for tracker in trackers:
                tracker.close()
    if as_json:
        print_json({**summary, "run_dir": str(run_dir)})
        return
    console.print(_table(summary["devices"], f"epoch {summary['epoch']}: {summary['queries']} queries, "
                         f"{summary['seconds']:.0f} s"))
    if summary.get("note"):
        console.print(f"note: {summary['note']}", highlight=False, soft_wrap=True)
    console.print(f"run directory: {run_dir}", highlight=False)


def _reporting_rank() -> bool:
    """Whether this process reports: rank 0 of a torchrun launch, or a run in one process."""
    return os.environ.get("RANK", "0") == "0"


def _elastic_restarts_allowed() -> bool:
    """Whether torchrun may restart this worker group (``--max-restarts`` above 0)."""
    return os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0") not in ("", "0")


@user_errors
def evaluate_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `modnas search`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON (summary.json's 'devices').")] = False,
    inherited: Annotated[
        bool,
        typer.Option("--inherited", help="One-shot runs: rate each device's last front by the supernet's own "
                     "(inherited-weight) test error on the search dataset and the device latency."),
    ] = False,
    max_images: Annotated[
        int, typer.Option(min=1, help="--inherited: test images per architecture (the first ones).")
    ] = 500,
    epoch: Annotated[
        int | None, typer.Option(min=1, help="--inherited: rate this epoch's fronts (default: the last).")
    ] = None,
) -> None:
    """Per-device HV, IGD+ and front size of a run (the last complete epoch of an interrupted run)."""
    from modnas.errors import ModnasError
    from modnas.rundir import RunDir
    from modnas.search import evaluate_run, run_note

    if inherited:
        _print_inherited(run_dir, as_json, max_images, epoch)
        return
    if epoch is not None:
        raise ModnasError("--epoch goes with --inherited")
    rows = evaluate_run(run_dir)
    if as_json:
        print_json(rows)
    else:
        console.print(_table(rows, f"run {run_dir}"))
        note = run_note(run_dir)
        if note:
            console.print(f"note: {note}", highlight=False, soft_wrap=True)
    problem = RunDir(run_dir).checkpoint_problem()
    if problem:  # the scores above are intact, but the run cannot be used further: say so, and fail scripts
        err_console.print(f"warning: {problem}", highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(1)


def _print_inherited(run_dir: Path, as_json: bool, max_images: int, epoch: int | None) -> None:
    from modnas.search.inherited import inherited_scores

    scores = inherited_scores(run_dir, max_images=max_images, epoch=epoch)
    if as_json:
        print_json([{**s.row(), "front": [{"arch_str": k, "error": e, "latency": lat} for k, e, lat in s.front]}
                    for s in scores])
        return
    images = scores[0].images if scores else 0
    text = bool(scores) and scores[0].metric == "perplexity"
    what, unit, best = ("perplexity", "windows", "best perplexity") if text else ("error", "images", "best error %")
    table = Table(title=f"run {run_dir}: inherited-weight test {what} ({images} {unit}) and latency")
    for col in ("device", "split", "HV", best, "front size"):
        table.add_column(col, justify="left" if col in ("device", "split") else "right")
    for s in scores:
        table.add_row(s.device, s.split, f"{s.hv:.4f}", f"{s.best_error:.2f}", str(s.n_front))
    table.add_section()
    table.add_row(f"mean over {len(scores)}", "", f"{sum(s.hv for s in scores) / len(scores):.4f}", "", "")
    console.print(table)
    scale = ("cross-entropy normalised from 0 to chance level (ln 256)" if text
             else "error normalised from 0 % to chance level")
    console.print(f"note: {scale}, latency by the device's bounds; comparable "
                  "between one-shot runs on the same dataset and space", highlight=False, soft_wrap=True)
