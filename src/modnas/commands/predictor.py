"""``modnas predictor ...``: train, evaluate and query the hardware MetaPredictor."""

from __future__ import annotations

import csv
import io
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from modnas.commands.common import FlagsWithoutType, console, err_console, print_json, user_errors
from modnas.errors import ModnasError

app = typer.Typer(
    cls=FlagsWithoutType, help="Train, evaluate and query the hardware latency MetaPredictor.", no_args_is_help=True
)

CheckpointOpt = Annotated[
    Path | None, typer.Option("--checkpoint", help="Predictor checkpoint (default: the one shipped with the space).")
]
SpaceOpt = Annotated[str, typer.Option("--space", metavar="NAME", help="Search space: nb201, ofa, or package.module:attr.")]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=True,
    )


@app.command()
@user_errors
def train(
    out: Annotated[Path, typer.Option(help="Where to write the checkpoint.")] = Path("predictor.pt"),
    steps: Annotated[int, typer.Option(min=1, help="Optimisation steps.")] = 8000,
    batch_size: Annotated[int, typer.Option(min=1, help="Architectures per step (x training devices).")] = 512,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate (cosine-annealed).")] = 3e-3,
    seed: Annotated[int, typer.Option(help="Random seed; training is deterministic per seed.")] = 0,
    sampled: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also train on this many random architectures labelled by the space's ground-truth latency "
            "(OFA: its surrogates beyond HELP's measurements).",
        ),
    ] = 0,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing checkpoint.")] = False,
    space: SpaceOpt = "nb201",
) -> None:
    """Train on the space's training devices (NB201: the 13 MODNAS ones; never the test devices) and write a
    checkpoint."""
    import torch

    from modnas.errors import OutputError
    from modnas.hardware.predictor import save_predictor
    from modnas.hardware.training import TrainConfig, train_predictor, with_sampled_truth
    from modnas.io import check_writable, os_error_reason
    from modnas.problem import get_problem

    problem = get_problem(space)
    if problem.latency_data is None:
        raise ModnasError(f"search space {space!r} has no latency data to train a predictor on")
    build = problem.extras.get("predictor_model")  # a space whose predictor is not a MetaPredictor (OFA)
    if problem.extras.get("predictor_checkpoint") is None and build is None:
        raise ModnasError(
            f"search space {space!r} uses a latency predictor built in code, not a modnas checkpoint; "
            f"`modnas predictor evaluate --space {space}` scores it"
        )
    if out.exists() and not force:
        raise ModnasError(f"{out} already exists; pass --force to overwrite it")
    check_writable(out, "checkpoint")
    data = problem.latency_data()
    if sampled:
        data = with_sampled_truth(data, problem, sampled, seed=seed)
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, devices=problem.devices.names("train"))
    start = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task("training predictor", total=steps)
        torch.manual_seed(seed)
        initial = build({"space": problem.name}) if build is not None else None
        model = train_predictor(
            data, config, model=initial, progress=lambda i, n, loss: bar.update(task, completed=i)
        )
    seconds = time.perf_counter() - start
    metadata = {
        "train_config": config.to_dict(),
        "train_seconds": round(seconds, 1),
        "torch_version": str(torch.__version__),
        "threads": torch.get_num_threads(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": f"modnas predictor train --space {space} --steps {steps} --batch-size {batch_size} --lr {lr} "
        f"--seed {seed}" + (f" --sampled {sampled}" if sampled else ""),
        "sampled": sampled,
    }
    try:
        save_predictor(model, out, metadata, force=force)
    except OSError as exc:  # minutes of training are not thrown away: keep the model in the temporary folder
        import tempfile

        kept: Path | None = Path(tempfile.mkdtemp(prefix="modnas-predictor-")) / out.name
        try:
            save_predictor(model, kept, metadata)  # type: ignore[arg-type]
        except OSError:
            kept = None
        where = f"kept in {kept}" if kept else "lost"
        raise OutputError(f"writing {out} failed ({os_error_reason(exc)}); the trained predictor is {where}") from None
    size_kb = out.stat().st_size / 1024
    console.print(f"trained in {seconds:.0f} s; wrote {out} ({size_kb:.0f} KB)")


@app.command()
@user_errors
def evaluate(
    checkpoint: CheckpointOpt = None,
    shots: Annotated[str, typer.Option(help="Comma-separated k for k-shot adaptation ('' for zero-shot only).")] = "10,20",
    seeds: Annotated[int, typer.Option(min=1, help="Draws of the k architectures per device.")] = 3,
    device: Annotated[
        list[str], typer.Option(help="Devices (default: the space's training and test devices, NB201: 19).")
    ] = [],  # noqa: B006
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
    space: SpaceOpt = "nb201",
) -> None:
    """Per-device Spearman and Kendall tau, zero-shot and after k-shot adaptation, with means per split."""
    from modnas.hardware.predictor import load_predictor
    from modnas.hardware.training import evaluate_predictor, summarise
    from modnas.problem import get_problem

    try:
        ks = tuple(int(k) for k in shots.split(",") if k.strip())
    except ValueError:
        raise ModnasError(f"--shots must be comma-separated integers, got {shots!r}") from None
    if any(k < 1 for k in ks):
        raise ModnasError(f"--shots must be positive, got {shots!r}")
    problem = get_problem(space)
    if problem.latency_data is None:
        raise ModnasError(f"search space {space!r} has no latency data to evaluate a predictor on")
    # without a checkpoint, the predictor the space's searches use (OFA: MODNAS's latency net, built in code)
    model = problem.load_predictor() if checkpoint is None else load_predictor(checkpoint, space)[0]
    names = device or list(problem.devices.names("protocol"))
    data = problem.latency_data()
    with _progress() as bar:
        task = bar.add_task("evaluating", total=len(names))
        rows = evaluate_predictor(model, data, names, shots=ks, seeds=seeds, progress=lambda _: bar.advance(task))
    if as_json:
        print_json([r.to_dict() for r in rows])
        return
    settings = ["zero-shot"] + [f"{k}-shot" for k in ks]
    table = Table(title="MetaPredictor rank correlation (Spearman / Kendall tau)")
    table.add_column("device")
    table.add_column("split")
    for s in settings:
        table.add_column(s, justify="right")
    by_key = {(r.device, r.setting): r for r in rows}
    for name in names:
        cells = [f"{by_key[name, s].spearman:.3f} / {by_key[name, s].kendall:.3f}" for s in settings]
        table.add_row(name, by_key[name, "zero-shot"].split, *cells)
    table.add_section()
    means = {(m["split"], m["setting"]): m for m in summarise(rows)}
    for split in ("train", "test"):
        if (split, "zero-shot") in means:
            cells = [f"{means[split, s]['spearman']:.3f} / {means[split, s]['kendall']:.3f}" for s in settings]
            table.add_row(f"mean ({split})", split, *cells)
    console.print(table)


@app.command()
@user_errors
def predict(
    device: Annotated[str, typer.Option(help="Device name (built-in or registered custom device).")],
    archs: Annotated[Path, typer.Option(help="Arch strings, one per line, or a CSV with an arch_str column.")],
    out: Annotated[Path | None, typer.Option(help="CSV to write (default: standard output).")] = None,
    metric: Annotated[
        str, typer.Option(help="latency (MetaPredictor), or an objective with an exact model (NB201: energy).")
    ] = "latency",
    checkpoint: CheckpointOpt = None,
    adapt_steps: Annotated[int, typer.Option(min=0, help="Few-shot steps on the device's extra measurements.")] = 100,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
    space: SpaceOpt = "nb201",
) -> None:
    """Predict latency (ms) or energy (mJ) of your architectures on any registered device."""
    from modnas.commands.common import read_arch_file_checked
    from modnas.io import atomic_write_text, check_writable
    from modnas.problem import get_problem

    if out is not None and out.exists() and not force:
        raise ModnasError(f"{out} already exists; pass --force to overwrite it")
    if out is not None:
        check_writable(out, "output file")
    problem = get_problem(space)
    dev = problem.devices.get(device)
    arch_list = read_arch_file_checked(archs, problem.space)
    canonical = [problem.space.canonical_key(a) for a in arch_list]
    indices = problem.space.parse_many(canonical)
    if metric == "latency":
        from modnas.hardware.predictor import load_predictor
        from modnas.hardware.training import adapt, predict_normalised, to_device_unit

        predictor = problem.load_predictor() if checkpoint is None else load_predictor(checkpoint, space)[0]
        if dev.extra_latencies and adapt_steps > 0:
            predictor = adapt(predictor, dev, steps=adapt_steps)
            err_console.print(f"adapted to {len(dev.extra_latencies)} extra measurements of {device}")
        values = to_device_unit(predict_normalised(predictor, problem.space.to_onehot(indices), dev), dev)
        column = "latency_ms"
    elif metric in problem.truth.objectives and metric != "error":
        model = problem.exact_model(metric, device)
        values = model.predict(indices)
        column = f"{metric}_{problem.truth.objectives[metric].unit.lower()}"
    else:
        others = [o for o in problem.truth.objectives if o not in ("error", "latency")]
        raise ModnasError(f"unknown metric {metric!r}; choose latency{''.join(', ' + o for o in others)}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["arch_str", column])
    writer.writerows([a, f"{v:.6g}"] for a, v in zip(canonical, values))
    if out is None:
        sys.stdout.write(buffer.getvalue())
    else:
        atomic_write_text(out, buffer.getvalue())
        console.print(f"wrote {len(canonical)} predictions to {out}")
