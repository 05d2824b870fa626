"""``modnas plot``: PNG figures of a run directory (per-device fronts, HV per epoch, HV gap per device).

Register it in :mod:`modnas.cli` with ``app.command("plot")(plot_command)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modnas.commands.common import console, user_errors


@user_errors
def plot_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `modnas search`.")],
    out: Annotated[Path | None, typer.Option("--out", help="Directory for the PNGs (default: RUN_DIR/plots).")] = None,
    epoch: Annotated[
        int | None, typer.Option("--epoch", help="Epoch whose fronts are drawn (default: the last complete one).")
    ] = None,
    device: Annotated[
        list[str], typer.Option("--device", help="Device(s) to draw; repeat for several (default: all of the run's).")
    ] = [],  # noqa: B006
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing PNGs.")] = False,
    per_device: Annotated[
        bool,
        typer.Option("--per-device", help="Also draw each device's HV per epoch (hv_per_epoch_devices.png)."),
    ] = False,
) -> None:
    """Draw a run: fronts/<device>.png (true front vs the chosen architectures), hv_per_epoch.png (mean per split),
    hv_per_device.png (HV gap to the true front per device)."""
    from modnas.plots import plot_run

    written = plot_run(run_dir, out, epoch=epoch, devices=device or None, force=force, per_device=per_device)
    target = written[-1].parent
    console.print(f"wrote {len(written)} PNG{'s' if len(written) != 1 else ''} to {target}", highlight=False)
