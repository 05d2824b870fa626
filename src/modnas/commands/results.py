"""``modnas front`` and ``modnas export``: use a trained search for any device, without retraining."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from modnas.commands.common import console, err_console, print_arch_table, print_json, user_errors
from modnas.errors import ModnasError


def _check_device_args(device: str | None, profile: Path | None) -> None:
    if (device is None) == (profile is None):
        raise ModnasError("give exactly one of --device NAME or --profile PROFILE.json")


def _device(trained: Any, device: str | None, profile: Path | None) -> Any:
    """The device named on the command line, looked up among the devices of the run's space."""
    from modnas.search.trained import profile_device

    _check_device_args(device, profile)
    if profile is not None:
        found = profile_device(profile)
        if found.space != trained.problem.name:
            raise ModnasError(f"{profile}: a {found.space} device profile, but the run searched {trained.problem.name}")
        return found
    return trained.device(device)


RunArg = Annotated[Path, typer.Argument(help="Run directory of a `modnas search`.")]
DeviceOpt = Annotated[str | None, typer.Option(help="Built-in or registered device.")]
ProfileOpt = Annotated[Path | None, typer.Option(help="Device profile JSON (e.g. from `modnas device measure`).")]
MaxLatencyOpt = Annotated[
    float | None, typer.Option("--max-latency-ms", help="Pick the most accurate architecture with latency <= X ms.")
]
MaxEnergyOpt = Annotated[
    float | None, typer.Option("--max-energy-mj", help="Pick the most accurate architecture with energy <= X mJ.")
]
MinAccuracyOpt = Annotated[
    float | None, typer.Option("--min-accuracy", help="Pick among architectures with accuracy >= X % (100 - error).")
]
PickOpt = Annotated[
    str | None,
    typer.Option("--pick", help="accuracy (the most accurate within the limits) or knee (no preference needed)."),
]
BasisOpt = Annotated[
    str,
    typer.Option(help="predicted (the run's predictions, any device) or known (table or measured values where the "
                 "device has them) error and latency for a pick."),
]


def _selection_args(
    max_latency_ms: float | None, max_energy_mj: float | None, min_accuracy: float | None, pick: str | None
) -> dict[str, Any] | None:
    """The keyword arguments of :meth:`TrainedSearch.pick`, checked before the run loads; None if none was given."""
    from modnas.evaluation.selection import check_rule, make_limits

    if all(v is None for v in (max_latency_ms, max_energy_mj, min_accuracy, pick)):
        return None
    make_limits(max_latency_ms, max_energy_mj, min_accuracy)
    rule = check_rule(pick or "accuracy")
    return {"max_latency_ms": max_latency_ms, "max_energy_mj": max_energy_mj, "min_accuracy": min_accuracy, "rule": rule}


def _pick_line(choice: dict[str, Any]) -> str:
    energy = f", energy {choice['energy_mJ']:.4g} mJ" if "energy_mJ" in choice else ""
    basis = choice["selection"]["basis"]
    error = choice["true_error" if basis == "known" else "predicted_error"]
    latency = choice["true_latency_ms"] if choice["latency_basis"] == "known" else choice["predicted_latency_ms"]
    index = f"index {choice['arch_index']}; " if "arch_index" in choice else ""
    return (
        f"picked {choice['arch_str']} ({index}{basis} error {error:.2f} %, "
        f"latency {latency:.4g} ms{energy})"
    )


@user_errors
def front_command(
    run_dir: RunArg,
    device: DeviceOpt = None,
    profile: ProfileOpt = None,
    n_prefs: Annotated[int, typer.Option("--n-prefs", help="Preference rays from accuracy to latency.")] = 24,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows (with a pick: the picked row).")] = False,
    max_latency_ms: MaxLatencyOpt = None,
    max_energy_mj: MaxEnergyOpt = None,
    min_accuracy: MinAccuracyOpt = None,
    pick: PickOpt = None,
    basis: BasisOpt = "predicted",
    refine_rounds: Annotated[
        int | None,
        typer.Option(
            "--refine-rounds", min=0,
            help="Refinement rounds of the picks (default: the run's refine_rounds; 0: the hypernetwork's picks, "
            "in milliseconds rather than about a second per device).",
        ),
    ] = None,
) -> None:
    """Pareto architectures of a trained search for any device, zero-shot (one hypernetwork pass per preference).

    With a limit (--max-latency-ms, --max-energy-mj, --min-accuracy) or --pick knee, also pick one of them.
    """
    from modnas.search.trained import TrainedSearch

    selection = _selection_args(max_latency_ms, max_energy_mj, min_accuracy, pick)
    _check_device_args(device, profile)
    trained = TrainedSearch.load(run_dir)
    if refine_rounds is not None:
        trained.config = trained.config.model_copy(update={"refine_rounds": refine_rounds})
    dev = _device(trained, device, profile)
    start = time.perf_counter()
    rows = trained.front(dev, n_prefs)
    seconds = time.perf_counter() - start
    choice = None if selection is None else trained.pick(dev, n_prefs=n_prefs, basis=basis, **selection)
    if as_json:
        print_json(rows if choice is None else choice)
        return
    # a device with a table has a true latency for every architecture; a profile only for what it measured
    latency = "true latency ms" if dev.has_table else "measured latency ms"
    columns = [("arch_str", "left"), ("pref (err,lat)", "right"), ("pred. error %", "right"),
               ("pred. latency ms", "right"), ("true error %", "right"), (latency, "right"), ("note", "left")]
    body = []
    for r in rows:
        notes = ([] if r["on_predicted_front"] else ["dominated"]) + (["error queried"] if r["measured"] else [])
        true_lat = "-" if r["true_latency_ms"] is None else f"{r['true_latency_ms']:.3g}"
        true_err = "-" if r["true_error"] is None else f"{r['true_error']:.2f}"
        body.append([
            r["arch_str"], ",".join(f"{v:.2f}" for v in r["preference"]), f"{r['predicted_error']:.2f}",
            f"{r['predicted_latency_ms']:.3g}", true_err, true_lat, ", ".join(notes),
        ])
    legend = [f"true error: the {trained.config.space} ground truth"]
    if any(r["measured"] for r in rows):
        legend.append("error queried: the search read this architecture's true error")
    if not dev.has_table:
        legend.append(f"measured latency: timed in {dev.name}'s profile, '-' where it was not")
    print_arch_table(
        f"{dev.name}: {len(rows)} architectures over {n_prefs} preferences ({1000 * seconds:.0f} ms)",
        columns, body, caption="; ".join(legend),
    )
    if choice is not None:
        console.print(_pick_line(choice), highlight=False, soft_wrap=True)
        console.print(choice["selection"]["note"], highlight=False, soft_wrap=True)


@user_errors
def export_command(
    run_dir: RunArg,
    out: Annotated[Path, typer.Option(help="Output path; writes OUT.json and OUT.<format>.")],
    preference: Annotated[
        str | None, typer.Option(help="Trade-off (error, latency) summing to 1, e.g. 0.3,0.7.")
    ] = None,
    device: DeviceOpt = None,
    profile: ProfileOpt = None,
    max_latency_ms: MaxLatencyOpt = None,
    max_energy_mj: MaxEnergyOpt = None,
    min_accuracy: MinAccuracyOpt = None,
    pick: PickOpt = None,
    basis: BasisOpt = "predicted",
    n_prefs: Annotated[int, typer.Option("--n-prefs", help="Preference rays of the front a pick is made from.")] = 24,
    formats: Annotated[
        list[str] | None,
        typer.Option("--format", help="py (standalone module), onnx or pt2 (torch.export); repeatable. Default: py."),
    ] = None,
    weights: Annotated[
        Path | None, typer.Option(help="checkpoint.pt of `modnas train` for this architecture (onnx, pt2).")
    ] = None,
    inherited: Annotated[
        bool,
        typer.Option("--inherited", help="One-shot runs (OFA, GPT): the weights the architecture inherits from the "
                     "run's trained supernet (onnx, pt2), batch-norm statistics recomputed on its training images."),
    ] = False,
    calibration_images: Annotated[
        int, typer.Option(min=1, help="--inherited: training images that batch-norm statistics are computed on.")
    ] = 2000,
    input_size: Annotated[
        int | None,
        typer.Option(help="Input height and width of onnx/pt2 (default: the checkpoint's dataset, or 32; OFA: the "
                     "architecture's resolution; --inherited: the run's input size)."),
    ] = None,
    onnx_exporter: Annotated[
        str, typer.Option(help="torchscript (needs onnx) or dynamo (needs onnx and onnxscript).")
    ] = "torchscript",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Export the architecture for one device: JSON, and a standalone PyTorch module, ONNX or a torch.export file.

    Choose it by --preference, or from the device's front by limits (--max-latency-ms, --max-energy-mj,
    --min-accuracy: the most accurate within them) or --pick knee.
    """
    from modnas.evaluation import parse_preference
    from modnas.export import check_format_dependencies, export_choice
    from modnas.search.trained import TrainedSearch

    formats = formats or ["py"]
    check_format_dependencies(formats, onnx_exporter)
    selection = _selection_args(max_latency_ms, max_energy_mj, min_accuracy, pick)
    if (preference is None) == (selection is None):
        raise ModnasError(
            "give --preference, or limits (--max-latency-ms, --max-energy-mj, --min-accuracy) and/or --pick knee"
            if preference is None
            else "--preference and limits/--pick choose in two different ways; give one of them"
        )
    _check_device_args(device, profile)
    trained = TrainedSearch.load(run_dir)
    dev = _device(trained, device, profile)
    if selection is not None:
        choice = trained.pick(dev, n_prefs=n_prefs, basis=basis, **selection)
        err_console.print(choice["selection"]["note"], highlight=False, soft_wrap=True)
    else:
        pref = parse_preference(preference, n_objectives=len(trained.config.objectives))  # type: ignore[arg-type]
        choice = trained.choose(dev, pref)
    written = export_choice(
        choice, out, formats, weights=weights, image_size=input_size, force=force, exporter=onnx_exporter,
        inherited_from=run_dir if inherited else None, calibration_images=calibration_images,
    )
    err_console.print(f"wrote {', '.join(str(p) for p in written)}", highlight=False, soft_wrap=True)
    console.print(choice["arch_str"], highlight=False, soft_wrap=True)
