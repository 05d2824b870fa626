"""The ``modnas`` command line: a thin layer over the library.

Every command reports bad input as one line on stderr and exits with status 2; nothing is overwritten unless asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from modnas.commands import device as device_commands
from modnas.commands import predictor as predictor_commands
from modnas.commands.benchmark import benchmark_command
from modnas.commands.common import (
    FlagsWithoutType,
    console,
    print_arch_table,
    print_json,
    read_arch_file_checked,
    user_errors,
)
from modnas.commands.plot import plot_command
from modnas.commands.results import export_command, front_command
from modnas.commands.search import evaluate_command, search_command
from modnas.commands.train import train_command
from modnas.errors import ModnasError

app = typer.Typer(
    cls=FlagsWithoutType,
    name="modnas",
    help="Multi-objective, hardware-aware neural architecture search (MODNAS).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(device_commands.app, name="device")
app.add_typer(predictor_commands.app, name="predictor")
app.command("search")(search_command)
app.command("evaluate")(evaluate_command)
app.command("front")(front_command)
app.command("export")(export_command)
app.command("plot")(plot_command)
app.command("benchmark")(benchmark_command)
app.command("train")(train_command)


def _objectives(text: str, space: str = "nb201") -> tuple[str, ...]:
    from modnas.evaluation.scorer import check_objectives

    return check_objectives([t.strip() for t in text.split(",") if t.strip()], space)


SpaceOpt = Annotated[str, typer.Option("--space", help="Search space: nb201, ofa, or package.module:attr.")]


ObjectivesOpt = Annotated[
    str, typer.Option("--objectives", help="Comma-separated objectives: error,latency[,energy].")
]


@app.command()
@user_errors
def devices(
    split: Annotated[str, typer.Option(help="train, test, other, custom, protocol or all.")] = "all",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    space: SpaceOpt = "nb201",
) -> None:
    """List the hardware devices of a search space: name, split, unit and the device embedding."""
    from modnas.problem import get_problem

    registry = get_problem(space).devices
    if split not in ("train", "test", "other", "custom", "protocol", "all"):
        raise ModnasError(f"unknown split {split!r}; choose train, test, other, custom, protocol or all")
    rows = [registry.get(n) for n in registry.names(split)]  # type: ignore[arg-type]
    if as_json:
        print_json(
            [
                {
                    "name": d.name,
                    "split": d.split,
                    "kind": d.kind,
                    "description": d.description,
                    "batch_size": d.batch_size,
                    "source": d.source,
                    "unit": d.unit,
                    "embedding": [round(float(x), 6) for x in d.embedding],
                }
                for d in rows
            ]
        )
        return
    table = Table(title=f"devices ({split})")
    for col in ("name", "split", "description", "batch", "source", "unit", "embedding (reference archs)"):
        table.add_column(col)
    for d in rows:
        table.add_row(
            d.name,
            d.split,
            d.description,
            "?" if d.batch_size is None else str(d.batch_size),
            d.source,
            d.unit,
            " ".join(f"{x:.2f}" for x in d.embedding),
        )
    console.print(table)


@app.command("true-front")
@user_errors
def true_front_cmd(
    device: Annotated[str | None, typer.Option(help="Device name (see `modnas devices`).")] = None,
    all_devices: Annotated[bool, typer.Option("--all", help="All 19 protocol devices and their mean HV.")] = False,
    objectives: ObjectivesOpt = "error,latency",
    preference: Annotated[
        str | None,
        typer.Option(help="With --device: only the front architecture best for this trade-off, e.g. 0.3,0.7."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    space: SpaceOpt = "nb201",
) -> None:
    """The true Pareto front of a device under the MODNAS protocol, and its hypervolume (the upper bound)."""
    from modnas.evaluation.preferences import parse_preference
    from modnas.evaluation.scorer import true_front
    from modnas.problem import get_problem

    problem = get_problem(space)
    objs = _objectives(objectives, space)
    if all_devices == (device is not None):
        raise ModnasError("give exactly one of --device NAME or --all")
    pref = None if preference is None else parse_preference(preference, n_objectives=len(objs))
    if pref is not None and device is None:
        raise ModnasError("--preference needs --device")
    if device is not None:
        front = true_front(device, objs, problem)
        if pref is not None:
            best = front.best_for(pref)
            row = front.to_dict()["front"][best]
            if as_json:
                print_json({"device": device, "preference": pref.tolist(), **row})
                return
            values = ", ".join(f"{o} {row[o]:.4g}" for o in objs)
            index = f"index {row['arch_index']}; " if "arch_index" in row else ""
            console.print(f"{row['arch_str']}  ({index}{values})", highlight=False, soft_wrap=True)
            return
        if as_json:
            print_json(front.to_dict())
            return
        indices = front.indices  # tabular spaces only
        columns = [*([("index", "right")] if indices else []), ("arch_str", "left"), *((obj, "right") for obj in objs)]
        rows = [
            [*([str(indices[i])] if indices else []), arch_str, *(f"{front.raw[i, j]:.4g}" for j in range(len(objs)))]
            for i, arch_str in enumerate(front.arch_strs)
        ]
        title = f"true Pareto front on {device} ({front.split}): HV = {front.hv:.4f}"
        print_arch_table(
            title, columns, rows, arch_column=1 if indices else 0, key_column=0 if indices else None
        )
        return
    fronts = [true_front(d, objs, problem) for d in problem.devices.names("protocol") if _has(problem, d, objs)]
    mean_hv = sum(f.hv for f in fronts) / len(fronts)
    if as_json:
        print_json(
            {
                "objectives": list(objs),
                "devices": [
                    {"device": f.device, "split": f.split, "hv": f.hv, "n_front": len(f.arch_strs)} for f in fronts
                ],
                "mean_hv": mean_hv,
            }
        )
        return
    table = Table(title=f"true-front hypervolume per device ({', '.join(objs)})")
    for col, justify in (("device", "left"), ("split", "left"), ("HV", "right"), ("front size", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for f in fronts:
        table.add_row(f.device, f.split, f"{f.hv:.4f}", str(len(f.arch_strs)))
    table.add_section()
    table.add_row(f"mean over {len(fronts)}", "", f"{mean_hv:.4f}", "")
    console.print(table)


def _has(problem: Any, device: str, objectives: tuple[str, ...]) -> bool:
    """Whether the ground truth has every hardware objective on ``device``."""
    return all(problem.truth.supports(o, device) for o in objectives[1:])


@app.command()
@user_errors
def score(
    archs: Annotated[Path, typer.Argument(help="File of arch strings (one per line, or CSV with arch_str).")],
    device: Annotated[list[str], typer.Option(help="Device(s) to score on; default: the 19 protocol devices.")] = [],  # noqa: B006
    objectives: ObjectivesOpt = "error,latency",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
    space: SpaceOpt = "nb201",
) -> None:
    """Score your own list of architectures with the shared MODNAS protocol scorer."""
    from modnas.evaluation.scorer import score as score_archs
    from modnas.problem import get_problem

    problem = get_problem(space)
    objs = _objectives(objectives, space)
    names = device or [d for d in problem.devices.names("protocol") if _has(problem, d, objs)]
    arch_list = read_arch_file_checked(archs, problem.space)
    results = [score_archs(arch_list, d, objs, problem) for d in names]
    if as_json:
        print_json([r.to_dict() for r in results])
        return
    table = Table(title=f"{len(arch_list)} architectures scored ({', '.join(objs)})")
    for col in ("device", "split", "HV", "true HV", "IGD+", "front", "on true front"):
        table.add_column(col, justify="left" if col in ("device", "split") else "right")
    for r in results:
        table.add_row(
            r.device, r.split, f"{r.hv:.4f}", f"{r.true_hv:.4f}",
            "-" if r.igd_plus is None else f"{r.igd_plus:.4f}", str(r.n_front), str(r.n_on_true_front),
        )
    console.print(table)


@app.command()
@user_errors
def arch(
    arch_spec: Annotated[
        str, typer.Argument(metavar="ARCH", help="Architecture string (NB201: also its canonical table index).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    space: SpaceOpt = "nb201",
) -> None:
    """Everything the ground truth knows about one architecture."""
    from modnas.problem import get_problem

    info = get_problem(space).truth.details(arch_spec)
    if as_json:
        print_json(info)
        return
    index = f"  (index {info['arch_index']})" if "arch_index" in info else ""
    console.print(f"[bold]{info['arch_str']}[/]{index}", soft_wrap=True)
    for key, value in info.items():
        if key in ("arch_str", "arch_index"):
            continue
        if isinstance(value, dict):
            shown = ", ".join(f"{k}={'missing' if v is None else f'{v:.4g}'}" for k, v in value.items())
            console.print(f"  {key}: {shown}", highlight=False)
        elif isinstance(value, float):
            console.print(f"  {key}: {value:.4f}", highlight=False)
        else:  # integers, lists (OFA's ks/e/d), strings
            console.print(f"  {key}: {value}", highlight=False)


def _print_version(value: bool) -> None:
    """Eager ``--version``: print and exit before click looks for a command."""
    if value:
        from modnas import __version__

        console.print(f"modnas {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    """Multi-objective, hardware-aware neural architecture search (MODNAS)."""
    from modnas.commands.common import configure_logging

    configure_logging()


if __name__ == "__main__":  # pragma: no cover
    app()
