"""Figures of a search run: per-device Pareto fronts, HV per epoch and a radar of HV across devices.

The ``plot_*`` functions are pure: they take arrays and numbers, write one PNG and return its path. They use
matplotlib's object API with the Agg canvas directly (no ``pyplot``, no display, no global backend switch).
:func:`load_run` reads a run directory (``metrics.csv``, ``fronts.csv``) into a :class:`RunData`, and
:func:`plot_run` ties the two together; it is what ``modnas plot`` calls.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modnas.errors import ModnasError
from modnas.io import atomic_replace, read_csv_rows

FRONTS_DIR = "fronts"
HV_PER_EPOCH = "hv_per_epoch.png"
RADAR_HV = "radar_hv.png"
_METRIC_COLUMNS = ("epoch", "device", "split", "hv")
_FRONT_COLUMNS = ("epoch", "device", "ray", "preference", "arch_str")


# -- figures ------------------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float, polar: bool = False):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111, projection="polar" if polar else None)
    return fig, ax


def _save(fig, path: str | Path) -> Path:
    """Write the figure as PNG via a temporary file and a rename, so no half-written PNG is left behind."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        atomic_replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def plot_front(
    path: str | Path,
    *,
    device: str,
    split: str,
    epoch: int,
    cloud: np.ndarray,
    true_front: np.ndarray,
    chosen: np.ndarray,
    chosen_preference: Sequence[float] | np.ndarray | None = None,
    hv: float | None = None,
    true_hv: float | None = None,
) -> Path:
    """Error (%) against latency (ms) on one device.

    ``cloud`` (n, 2): every architecture, drawn grey; ``true_front`` (m, 2): the true Pareto front, drawn as a
    step line; ``chosen`` (k, 2): the architectures the run chose for its evaluation rays, coloured by the ray's
    weight on error (``chosen_preference``, k values in [0, 1]) when given. All arrays hold (error, latency) rows.
    """
    fig, ax = _new_figure(7.0, 5.0)
    cloud = np.asarray(cloud, dtype=float).reshape(-1, 2)
    front = np.asarray(true_front, dtype=float).reshape(-1, 2)
    chosen = np.asarray(chosen, dtype=float).reshape(-1, 2)
    if len(cloud):
        ax.scatter(cloud[:, 1], cloud[:, 0], s=3, c="0.8", linewidths=0, rasterized=True, label="all architectures")
    if len(front):
        order = np.lexsort((front[:, 0], front[:, 1]))  # by latency, then error
        ax.step(front[order, 1], front[order, 0], where="post", color="black", lw=1.5, label="true Pareto front")
        ax.scatter(front[order, 1], front[order, 0], s=10, color="black", zorder=3)
    if len(chosen):
        kwargs: dict = {"s": 60, "marker": "*", "edgecolors": "black", "linewidths": 0.5, "zorder": 4}
        if chosen_preference is not None and len(chosen_preference) == len(chosen):
            points = ax.scatter(
                chosen[:, 1], chosen[:, 0], c=np.asarray(chosen_preference, dtype=float), cmap="viridis",
                vmin=0.0, vmax=1.0, label=f"chosen ({len(chosen)} rays)", **kwargs,
            )
            fig.colorbar(points, ax=ax, label="ray preference on error")
        else:
            ax.scatter(chosen[:, 1], chosen[:, 0], color="tab:red", label=f"chosen ({len(chosen)} rays)", **kwargs)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("error (%)")
    ax.set_yscale("log")
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.3)
    hv_text = "" if hv is None else f"HV {hv:.4f}"
    if true_hv is not None:
        hv_text += f" vs true HV {true_hv:.4f}" if hv is not None else f"true HV {true_hv:.4f}"
    ax.set_title(f"{device} ({split}), epoch {epoch}" + (f"\n{hv_text}" if hv_text else ""))
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_hv_per_epoch(
    path: str | Path,
    *,
    epochs: Sequence[int],
    hv: Mapping[str, Sequence[float]],
    splits: Mapping[str, str],
    mark_epoch: int | None = None,
) -> Path:
    """HV per epoch, one line per device (train solid, test dashed) and the mean over the devices (thick black).

    ``hv[device]`` holds one value per entry of ``epochs`` (NaN where missing).
    """
    fig, ax = _new_figure(9.0, 5.5)
    x = np.asarray(epochs, dtype=float)
    colours = _colours(len(hv))
    table = []
    for colour, (device, values) in zip(colours, hv.items()):
        y = np.asarray(values, dtype=float)
        table.append(y)
        style = "--" if splits.get(device) == "test" else "-"
        ax.plot(x, y, style, color=colour, lw=1.0, marker="." if len(x) < 30 else None, label=device)
    if table:
        mean = np.nanmean(np.vstack(table), axis=0)
        ax.plot(x, mean, "-", color="black", lw=2.5, label=f"mean ({len(table)})")
    if mark_epoch is not None:
        ax.axvline(mark_epoch, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("epoch")
    ax.set_ylabel("hypervolume")
    ax.set_title("HV per epoch (train solid, test dashed)")
    ax.grid(True, alpha=0.3)
    if len(x) and x.min() == x.max():
        ax.set_xlim(x.min() - 0.5, x.max() + 0.5)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def plot_radar(
    path: str | Path,
    *,
    devices: Sequence[str],
    hv: Sequence[float],
    true_hv: Sequence[float],
    epoch: int,
    splits: Mapping[str, str] | None = None,
) -> Path:
    """Radar (polar) plot of the run's HV per device, with the true-front HV as a second polygon."""
    if not (len(devices) == len(hv) == len(true_hv)):
        raise ValueError("devices, hv and true_hv must have the same length")
    fig, ax = _new_figure(7.5, 7.5, polar=True)
    n = len(devices)
    angles = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    closed = np.append(angles, angles[:1]) if n else angles

    def ring(values: Sequence[float]) -> np.ndarray:
        v = np.asarray(values, dtype=float)
        return np.append(v, v[:1]) if n else v

    ax.plot(closed, ring(true_hv), color="black", lw=1.5, marker="o", ms=3, label="true front HV")
    ax.fill(closed, ring(true_hv), color="black", alpha=0.05)
    ax.plot(closed, ring(hv), color="tab:blue", lw=1.5, marker="o", ms=3, label=f"run HV (epoch {epoch})")
    ax.fill(closed, ring(hv), color="tab:blue", alpha=0.15)
    ax.set_xticks(angles)
    if n:
        ax.set_rlabel_position(180.0 / n)  # radial tick labels between the first two spokes
    labels = [f"{d}*" if splits and splits.get(d) == "test" else d for d in devices]
    ax.set_xticklabels(labels, fontsize=7)
    finite = [v for v in (*hv, *true_hv) if np.isfinite(v)]
    if finite:
        low = max(0.0, math.floor((min(finite) - 0.02) * 50) / 50)
        ax.set_ylim(low, max(max(finite), min(1.0, max(finite) + 0.01)))
    mean = float(np.nanmean(hv)) if n else float("nan")
    mean_true = float(np.nanmean(true_hv)) if n else float("nan")
    ax.set_title(
        f"HV per device at epoch {epoch}: mean {mean:.4f} vs true {mean_true:.4f}"
        + ("\n(* zero-shot test device)" if splits and "test" in splits.values() else ""),
        fontsize=10,
    )
    ax.legend(loc="upper right", bbox_to_anchor=(1.15, 1.1), fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return [cmap(i % 20) for i in range(n)]


# -- reading a run ------------------------------------------------------------------------------------------------


@dataclass
class RunData:
    """What the plots need from a run directory."""

    run_dir: Path
    #: ``hv[epoch][device]`` and ``split[device]`` from metrics.csv (device order as written)
    hv: dict[int, dict[str, float]] = field(default_factory=dict)
    split: dict[str, str] = field(default_factory=dict)
    #: ``rays[epoch][device]`` = list of (ray, preference on error, arch_str), from fronts.csv
    rays: dict[int, dict[str, list[tuple[int, float, str]]]] = field(default_factory=dict)
    #: epochs with an HV for every protocol device and every evaluation ray's architecture, ascending
    complete_epochs: list[int] = field(default_factory=list)

    def devices(self, epoch: int) -> list[str]:
        return list(self.hv[epoch])


def _read_csv(path: Path, columns: tuple[str, ...], run_dir: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise ModnasError(f"{str(run_dir)!r} has no {path.name}: not a run directory, or no epoch finished")
    return [row for row in read_csv_rows(path, columns) if all(row.get(c) not in (None, "") for c in columns)]


def _complete_arch_string(text: str) -> bool:
    # a line cut off inside arch_str must not count; a full NB201 string has six edges and ends with '|'
    return text.startswith("|") and text.endswith("|") and text.count("~") == 6


def load_run(run_dir: str | Path) -> RunData:
    """Read ``metrics.csv`` and ``fronts.csv`` of a run; cut-off last lines of an interrupted run are skipped."""
    from modnas.hardware.devices import PROTOCOL_DEVICES

    path = Path(run_dir)
    if not path.is_dir():
        raise ModnasError(f"run directory {str(path)!r} does not exist")
    data = RunData(run_dir=path)
    for raw in _read_csv(path / "metrics.csv", _METRIC_COLUMNS, path):
        try:
            epoch, hv = int(raw["epoch"]), float(raw["hv"])
        except ValueError:
            continue
        if math.isnan(hv):
            continue
        data.hv.setdefault(epoch, {}).setdefault(raw["device"], hv)
        data.split.setdefault(raw["device"], raw["split"])
    for raw in _read_csv(path / "fronts.csv", _FRONT_COLUMNS, path):
        try:
            epoch, ray = int(raw["epoch"]), int(raw["ray"])
            pref = float(raw["preference"].split(";")[0])
        except ValueError:
            continue
        if not _complete_arch_string(raw["arch_str"]):
            continue
        data.rays.setdefault(epoch, {}).setdefault(raw["device"], []).append((ray, pref, raw["arch_str"]))
    n_rays = max((len(r) for per in data.rays.values() for r in per.values()), default=0)
    expected = set(PROTOCOL_DEVICES)
    data.complete_epochs = sorted(
        e
        for e, per_device in data.hv.items()
        if set(per_device) >= expected
        and e in data.rays
        and all(len(data.rays[e].get(d, ())) == n_rays for d in expected)
    )
    if not data.complete_epochs:
        raise ModnasError(f"{str(path)!r} is truncated: metrics.csv and fronts.csv hold no complete epoch")
    return data


# -- everything for one run ---------------------------------------------------------------------------------------


def select_epoch(run: RunData, epoch: int | None) -> int:
    """The requested epoch if it is complete, else a one-line error; ``None`` means the last complete epoch."""
    if epoch is None:
        return run.complete_epochs[-1]
    if epoch not in run.complete_epochs:
        raise ModnasError(
            f"epoch {epoch} is not a complete epoch of {str(run.run_dir)!r}; complete epochs: "
            f"{_ranges(run.complete_epochs)}"
        )
    return epoch


def _ranges(values: list[int]) -> str:
    parts, start = [], values[0]
    for prev, cur in zip(values, values[1:] + [None]):  # type: ignore[operator]
        if cur != prev + 1:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = cur
    return ", ".join(parts)


def select_devices(run: RunData, epoch: int, devices: Sequence[str] | None) -> list[str]:
    """The requested devices (all of the run's by default); unknown or absent devices are a one-line error."""
    from modnas.hardware.devices import registry

    available = run.devices(epoch)
    if not devices:
        return available
    chosen: list[str] = []
    for name in devices:
        registry.get(name)  # unknown names: one line with close matches
        if name not in available:
            raise ModnasError(f"device {name!r} is not in run {str(run.run_dir)!r}; it has: {', '.join(available)}")
        if name not in chosen:
            chosen.append(name)
    return chosen


def output_paths(out_dir: str | Path, devices: Sequence[str]) -> list[Path]:
    """Every PNG :func:`plot_run` writes for these devices."""
    out = Path(out_dir)
    return [out / FRONTS_DIR / f"{d}.png" for d in devices] + [out / HV_PER_EPOCH, out / RADAR_HV]


def plot_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    epoch: int | None = None,
    devices: Sequence[str] | None = None,
    force: bool = False,
) -> list[Path]:
    """Write every figure of a run (default into ``RUN_DIR/plots``) and return the written paths.

    Existing PNGs are refused before anything is drawn, unless ``force``.
    """
    from modnas.evaluation.scorer import ERROR_CUTOFF, protocol, true_front
    from modnas.spaces.nb201 import to_index
    from modnas.tables.nb201 import nb201_tables

    run = load_run(run_dir)
    chosen_epoch = select_epoch(run, epoch)
    names = select_devices(run, chosen_epoch, devices)
    out = Path(run_dir) / "plots" if out_dir is None else Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ModnasError(f"output path {str(out)!r} exists and is not a directory")
    targets = output_paths(out, names)
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise ModnasError(f"{str(existing[0])!r}{more} already exist; use --force to overwrite")
    try:
        (out / FRONTS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModnasError(f"cannot create output directory {str(out)!r}: {exc}") from None

    written: list[Path] = []
    errors = 100.0 - nb201_tables.full_column("accuracy", "cifar10_test_acc_200ep")
    true_hv: dict[str, float] = {}
    for device, target in zip(names, targets):
        front = true_front(device)
        true_hv[device] = front.hv
        raw = protocol(device).raw
        keep = (raw[:, 0] < ERROR_CUTOFF) & np.isfinite(raw).all(axis=1)
        rays = sorted(run.rays[chosen_epoch][device])
        try:
            idx = np.atleast_1d(to_index([a for _, _, a in rays]))
        except ModnasError as exc:
            raise ModnasError(f"fronts.csv of {str(run.run_dir)!r}, epoch {chosen_epoch}, {device}: {exc}") from None
        chosen = np.column_stack(
            [np.atleast_1d(errors[idx]), np.atleast_1d(nb201_tables.latency(device, idx))]
        )
        written.append(
            plot_front(
                target,
                device=device,
                split=run.split.get(device, "?"),
                epoch=chosen_epoch,
                cloud=raw[keep][:, :2],
                true_front=front.raw[:, :2],
                chosen=chosen,
                chosen_preference=[p for _, p, _ in rays],
                hv=run.hv[chosen_epoch][device],
                true_hv=front.hv,
            )
        )
    epochs = [e for e in sorted(run.hv) if all(d in run.hv[e] for d in names)]  # cut-off epochs left out
    written.append(
        plot_hv_per_epoch(
            out / HV_PER_EPOCH,
            epochs=epochs,
            hv={d: [run.hv[e].get(d, float("nan")) for e in epochs] for d in names},
            splits=run.split,
            mark_epoch=chosen_epoch if chosen_epoch != epochs[-1] else None,
        )
    )
    written.append(
        plot_radar(
            out / RADAR_HV,
            devices=names,
            hv=[run.hv[chosen_epoch][d] for d in names],
            true_hv=[true_hv[d] for d in names],
            epoch=chosen_epoch,
            splits=run.split,
        )
    )
    return written
