"""``modnas front`` and ``modnas export``: use a trained search for any device, without retraining."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from modnas.commands.common import console, err_console, print_json, user_errors
from modnas.errors import ModnasError


def _device(device: str | None, profile: Path | None) -> Any:
    from modnas.hardware.devices import registry
    from modnas.hardware.profiles import ensure_stored_devices_loaded
    from modnas.search.trained import profile_device

    if (device is None) == (profile is None):
        raise ModnasError("give exactly one of --device NAME or --profile PROFILE.json")
    if profile is not None:
        return profile_device(profile)
    ensure_stored_devices_loaded()
    return registry.get(device)  # type: ignore[arg-type]


RunArg = Annotated[Path, typer.Argument(help="Run directory of a `modnas search`.")]
DeviceOpt = Annotated[str | None, typer.Option(help="Built-in or registered device.")]
ProfileOpt = Annotated[Path | None, typer.Option(help="Device profile JSON (e.g. from `modnas device measure`).")]


@user_errors
def front_command(
    run_dir: RunArg,
    device: DeviceOpt = None,
    profile: ProfileOpt = None,
    n_prefs: Annotated[int, typer.Option("--n-prefs", help="Preference rays from accuracy to latency.")] = 24,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
) -> None:
    """Pareto architectures of a trained search for any device, zero-shot (one hypernetwork pass per preference)."""
    from modnas.search.trained import TrainedSearch

    dev = _device(device, profile)
    trained = TrainedSearch.load(run_dir)
    start = time.perf_counter()
    rows = trained.front(dev, n_prefs)
    seconds = time.perf_counter() - start
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{dev.name}: {len(rows)} architectures over {n_prefs} preferences ({1000 * seconds:.0f} ms)")
    for col in ("arch_str", "pref (err,lat)", "pred. error %", "pred. latency ms", "true error %", "true latency ms"):
        table.add_column(col, justify="left" if col == "arch_str" else "right", overflow="fold")
    for r in rows:
        mark = ("" if r["on_predicted_front"] else " (dominated)") + (" (measured)" if r["measured"] else "")
        true_lat = "-" if r["true_latency_ms"] is None else f"{r['true_latency_ms']:.3g}"
        table.add_row(
            r["arch_str"] + mark, ",".join(f"{v:.2f}" for v in r["preference"]), f"{r['predicted_error']:.2f}",
            f"{r['predicted_latency_ms']:.3g}", f"{r['true_error']:.2f}", true_lat,
        )
    console.print(table)


@user_errors
def export_command(
    run_dir: RunArg,
    preference: Annotated[str, typer.Option(help="Trade-off (error, latency) summing to 1, e.g. 0.3,0.7.")],
    out: Annotated[Path, typer.Option(help="Output path; writes OUT.json and OUT.py.")],
    device: DeviceOpt = None,
    profile: ProfileOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Export the architecture for one device and preference as JSON and as a standalone PyTorch module."""
    from modnas.evaluation import parse_preference
    from modnas.search.trained import TrainedSearch, export_architecture

    dev = _device(device, profile)
    trained = TrainedSearch.load(run_dir)
    pref = parse_preference(preference, n_objectives=len(trained.config.objectives))
    choice = trained.choose(dev, pref)
    json_path, py_path = export_architecture(choice, out, force=force)
    err_console.print(f"wrote {json_path} and {py_path}")
    console.print(choice["arch_str"], highlight=False, soft_wrap=True)
