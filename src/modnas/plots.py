"""Figures of a search run: per-device Pareto fronts, HV per epoch and a dot plot of the HV gap per device.

The ``plot_*`` functions are pure: they take arrays and numbers, write one PNG and return its path. They use
matplotlib's object API with the Agg canvas directly (no ``pyplot``, no display, no global backend switch).
:func:`~modnas.rundir.load_run` reads a run directory (``metrics.csv``, ``fronts.csv``) into a
:class:`~modnas.rundir.RunData`, and :func:`plot_run` ties the two together; it is what ``modnas plot`` calls.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modnas.errors import ModnasError
from modnas.io import atomic_replace
from modnas.rundir import RunData, load_run

FRONTS_DIR = "fronts"
HV_PER_EPOCH = "hv_per_epoch.png"
HV_PER_EPOCH_DEVICES = "hv_per_epoch_devices.png"
HV_PER_DEVICE = "hv_per_device.png"


# -- figures ------------------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
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
    front_name: str = "true",
) -> Path:
    """Error (%) against latency (ms) on one device.

    ``cloud`` (n, 2): every architecture, drawn grey; ``true_front`` (m, 2): the true Pareto front, drawn as a
    step line; ``chosen`` (k, 2): the architectures the run chose for its evaluation rays, coloured by the ray's
    weight on error (``chosen_preference``, k values in [0, 1]) when given. All arrays hold (error, latency) rows.
    ``front_name`` names the front in the legend and title: ``"reference"`` for a best-known front (a space that
    cannot be enumerated).
    """
    fig, ax = _new_figure(7.0, 5.0)
    cloud = np.asarray(cloud, dtype=float).reshape(-1, 2)
    front = np.asarray(true_front, dtype=float).reshape(-1, 2)
    chosen = np.asarray(chosen, dtype=float).reshape(-1, 2)
    if len(cloud):
        ax.scatter(cloud[:, 1], cloud[:, 0], s=3, c="0.8", linewidths=0, rasterized=True, label="all architectures")
    if len(front):
        order = np.lexsort((front[:, 0], front[:, 1]))  # by latency, then error
        label = f"{front_name} Pareto front"
        ax.step(front[order, 1], front[order, 0], where="post", color="black", lw=1.5, label=label)
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
        hv_text += f" vs {front_name} HV {true_hv:.4f}" if hv is not None else f"{front_name} HV {true_hv:.4f}"
    ax.set_title(f"{device} ({split}), epoch {epoch}" + (f"\n{hv_text}" if hv_text else ""))
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _split_colours(splits: Sequence[str]) -> dict[str, Any]:
    """One colour per split name, in order of first appearance (train blue, test orange for the protocol)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    names = list(dict.fromkeys(splits))
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def _integer_ticks(ax: Any, x: np.ndarray) -> None:
    """Whole-number epoch ticks: every epoch when there are few, else at most about ten."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    values = np.unique(x[np.isfinite(x)])
    if len(values) <= 12:  # MaxNLocator falls back to fractions over a short range
        ax.xaxis.set_major_locator(FixedLocator(values))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=10))
    if len(x):
        pad = 0.5 if x.min() == x.max() else 0.02 * (x.max() - x.min())
        ax.set_xlim(x.min() - pad, x.max() + pad)


def plot_hv_per_epoch(
    path: str | Path,
    *,
    epochs: Sequence[int],
    hv: Mapping[str, Sequence[float]],
    splits: Mapping[str, str],
    mark_epoch: int | None = None,
    true_hv: Mapping[str, float] | None = None,
    front_name: str = "true",
) -> Path:
    """HV per epoch: per split the mean over its devices with a min-max band, and the mean over all devices.

    ``hv[device]`` holds one value per entry of ``epochs`` (NaN where missing); ``splits[device]`` names the
    device's split (any names; a device without one counts as ``"all"``). With ``true_hv`` (device -> HV of the
    true front), each split's mean true-front HV is drawn as a dotted level in the split's colour; ``front_name``
    says what those fronts are (``reference`` for a space's stored estimates).
    """
    fig, ax = _new_figure(8.5, 5.0)
    x = np.asarray(epochs, dtype=float)
    groups: dict[str, list[str]] = {}
    for device in hv:
        groups.setdefault(splits.get(device, "all"), []).append(device)
    colours = _split_colours(list(groups))
    marker = "o" if len(x) <= 30 else None
    for k, (split, devices) in enumerate(groups.items()):
        table = np.vstack([np.asarray(hv[d], dtype=float) for d in devices])
        with np.errstate(all="ignore"):
            mean = np.nanmean(table, axis=0)
            low, high = np.nanmin(table, axis=0), np.nanmax(table, axis=0)
        colour = colours[split]
        n = len(devices)
        spread = "" if n == 1 else ", band min-max" if len(x) > 1 else ", whisker min-max"
        label = f"{split}: mean of {n} device{'s' if n != 1 else ''}{spread}"
        # a single epoch has no band to fill: side-by-side whiskers instead
        at = x if len(x) > 1 else x + 0.06 * (k - (len(groups) - 1) / 2)
        ax.plot(at, mean, "-", color=colour, lw=2.0, marker=marker, ms=4, label=label)
        if n > 1 and len(x) > 1:
            ax.fill_between(x, low, high, color=colour, alpha=0.18, lw=0)
        elif n > 1:
            ax.errorbar(at, mean, yerr=[mean - low, high - mean], fmt="none", ecolor=colour, capsize=4, lw=1.2)
        if true_hv:
            levels = [true_hv[d] for d in devices if d in true_hv]
            if levels:
                ax.axhline(float(np.mean(levels)), color=colour, lw=1.0, ls=":",
                           label=f"{split}: {front_name} fronts (mean)")
    if len(groups) > 1:
        with np.errstate(all="ignore"):
            overall = np.nanmean(np.vstack([np.asarray(v, dtype=float) for v in hv.values()]), axis=0)
        ax.plot(x, overall, "--", color="black", lw=1.2, marker="x" if len(x) == 1 else None,
                label=f"all {len(hv)} devices: mean")
    if mark_epoch is not None:
        ax.axvline(mark_epoch, color="0.5", lw=0.8, ls=":")
    _integer_ticks(ax, x)
    ax.set_xlabel("epoch")
    ax.set_ylabel("hypervolume")
    ax.set_title("HV per epoch" + (f" (fronts drawn at epoch {mark_epoch})" if mark_epoch is not None else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_hv_per_epoch_devices(
    path: str | Path,
    *,
    epochs: Sequence[int],
    hv: Mapping[str, Sequence[float]],
    splits: Mapping[str, str],
    true_hv: Mapping[str, float] | None = None,
    front_name: str = "true",
) -> Path:
    """HV per epoch of every device in its own small panel (shared axes), with its true-front HV dotted
    (``front_name``: what those fronts are)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    devices = list(hv)
    n = max(len(devices), 1)
    cols = min(5, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(2.6 * cols + 0.6, 1.9 * rows + 0.8), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    x = np.asarray(epochs, dtype=float)
    colours = _split_colours([splits.get(d, "all") for d in devices])
    for k, ax in enumerate(axes.flat):
        if k >= len(devices):
            ax.set_axis_off()
            continue
        device = devices[k]
        split = splits.get(device, "all")
        ax.plot(x, np.asarray(hv[device], dtype=float), "-", color=colours[split], lw=1.5,
                marker="o" if len(x) <= 30 else None, ms=3)
        if true_hv and device in true_hv:
            ax.axhline(true_hv[device], color="black", lw=0.9, ls=":")
        ax.set_title(f"{device} ({split})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    _integer_ticks(axes.flat[0], x)
    fig.supxlabel("epoch", fontsize=9)
    fig.supylabel("hypervolume", fontsize=9)
    fig.suptitle("HV per epoch and device" + (f" (dotted: {front_name} front)" if true_hv else ""), fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def gap_floor(gaps: Sequence[float] | np.ndarray) -> float:
    """The left end of a log HV-gap axis: the largest 1, 2 or 5 times a power of ten at or below the smallest
    positive gap (at least 1e-6). Gaps at or below zero (a front as good as the true one) are drawn there."""
    values = np.asarray(gaps, dtype=float)
    positive = values[np.isfinite(values) & (values > 0)]
    if not len(positive):
        return 1e-4
    smallest = max(float(positive.min()), 1e-6)
    power = 10.0 ** math.floor(math.log10(smallest))
    return max(step * power for step in (1.0, 2.0, 5.0) if step * power <= smallest * (1 + 1e-12))


def draw_hv_gap_dots(
    ax: Any,
    *,
    devices: Sequence[str],
    series: Mapping[str, Sequence[float]],
    true_hv: Sequence[float],
    splits: Mapping[str, str] | None = None,
    colours: Mapping[str, Any] | None = None,
    spread: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    floor: float | None = None,
    hollow: Sequence[str] = (),
    labels: bool = True,
) -> tuple[float, bool]:
    """A dot plot on ``ax``: one row per device, one dot per series at the device's HV gap to its true front.

    ``series[label]`` holds one HV per device (NaN: no dot); ``spread[label]`` an optional (low, high) HV range
    per device, drawn as a whisker. Rows are grouped by split (in order of first appearance; any names), each
    group named on the right; dots of several series sit side by side within their row so none hides another.
    The x axis is log-scaled; gaps below ``floor`` (default :func:`gap_floor`) are drawn at it. Returns the floor
    and whether any dot was moved up to it.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    true = np.asarray(true_hv, dtype=float)
    split_of = [(splits or {}).get(d, "") for d in devices]
    groups = list(dict.fromkeys(split_of))
    # a stable sort: the given order within each split
    order = sorted(range(len(devices)), key=lambda i: groups.index(split_of[i]))
    row = np.empty(len(devices))
    row[order] = np.arange(len(devices))
    gaps = {m: true - np.asarray(v, dtype=float) for m, v in series.items()}
    if floor is None:
        floor = gap_floor(np.concatenate([g for g in gaps.values()] or [np.zeros(0)]))
    n = len(series)
    half = min(0.3, 0.1 * (n - 1))  # room between the dots of a row, growing with the number of series
    offsets = np.linspace(-half, half, n) if n > 1 else np.zeros(1)
    palette = colours or dict(zip(series, _colours(n)))
    clipped = False
    for r in range(1, len(devices), 2):  # light bands tell the rows apart
        ax.axhspan(r - 0.5, r + 0.5, color="0.94", lw=0, zorder=0)
    for offset, (label, gap) in zip(offsets, gaps.items()):
        y = row + offset
        ok = np.isfinite(gap)
        clipped = clipped or bool((gap[ok] < floor).any())
        shown = np.clip(gap, floor, None)
        if spread and label in spread:
            low, high = (true - np.asarray(v, dtype=float) for v in spread[label])
            lo, hi = np.clip(np.fmin(low, high), floor, None), np.clip(np.fmax(low, high), floor, None)
            whisk = ok & np.isfinite(lo) & np.isfinite(hi)
            ax.hlines(y[whisk], lo[whisk], hi[whisk], color=palette[label], lw=1.0, alpha=0.8, zorder=2)
        face = "white" if label in hollow else palette[label]
        ax.scatter(shown[ok], y[ok], s=30, marker="o", facecolors=face, edgecolors=palette[label],
                   linewidths=1.1, zorder=3, label=label)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    right = max([float(np.nanmax(np.clip(g, floor, None))) for g in gaps.values() if np.isfinite(g).any()],
                default=floor * 10)
    ax.set_xlim(floor / 1.25, max(right * 1.3, floor * 10))
    ax.tick_params(axis="x", labelsize=8)
    ax.set_yticks(range(len(devices)))
    ax.set_yticklabels([devices[i] for i in order] if labels else [], fontsize=8)
    ax.set_ylim(len(devices) - 0.5, -0.5)  # first device on top
    ax.grid(True, axis="x", which="major", alpha=0.4)
    ax.grid(True, axis="x", which="minor", alpha=0.15)
    if len(groups) > 1 or groups[0]:
        from matplotlib.transforms import blended_transform_factory

        trans = blended_transform_factory(ax.transAxes, ax.transData)
        names = [split_of[i] for i in order]
        for name in groups:
            rows = [r for r, g in enumerate(names) if g == name]
            if rows[0]:
                ax.axhline(rows[0] - 0.5, color="0.3", lw=1.0)
            ax.text(1.01, (rows[0] + rows[-1]) / 2, name, transform=trans, ha="left", va="center", rotation=90,
                    fontsize=8, style="italic", color="0.3")
    return floor, clipped


def gap_axis_label(floor: float, clipped: bool, front_name: str = "true") -> str:
    """The x label of an HV-gap dot plot."""
    note = f"; dots at {floor:g}: gap {floor:g} or less" if clipped else ""
    return f"HV gap to the {front_name} front (log scale, smaller is better{note})"


def plot_hv_per_device(
    path: str | Path,
    *,
    devices: Sequence[str],
    hv: Mapping[str, Sequence[float]],
    true_hv: Sequence[float],
    splits: Mapping[str, str] | None = None,
    colours: Mapping[str, Any] | None = None,
    hollow: Sequence[str] = (),
    title: str = "HV gap to the true front per device",
    front_name: str = "true",
) -> Path:
    """Dot plot of each series' HV gap to the true front per device (any number of devices and split names).

    ``hv[label]`` holds one HV per device; the series' colours come from ``colours`` (default: tab20 order), and
    series named in ``hollow`` are drawn as open circles.
    """
    if any(len(v) != len(devices) for v in hv.values()) or len(true_hv) != len(devices):
        raise ValueError("every series and true_hv must hold one value per device")
    height = 1.7 + 0.3 * max(len(devices), 3)
    fig, ax = _new_figure(7.5, height)
    floor, clipped = draw_hv_gap_dots(ax, devices=devices, series=hv, true_hv=true_hv, splits=splits,
                                      colours=colours, hollow=hollow)
    ax.set_xlabel(gap_axis_label(floor, clipped, front_name), fontsize=8)
    ax.set_title(title, fontsize=10)
    legend = 0.0
    if hv:
        ncol = min(4, len(hv))
        legend = (0.3 * math.ceil(len(hv) / ncol) + 0.1) / height
        fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, legend, 1, 1))
    return _save(fig, path)


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return [cmap(i % 20) for i in range(n)]


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
    from modnas.problem import get_problem

    available = run.devices(epoch)
    if not devices:
        return available
    chosen: list[str] = []
    for name in devices:
        get_problem(run.space).devices.get(name)  # unknown names: one line with close matches
        if name not in available:
            raise ModnasError(f"device {name!r} is not in run {str(run.run_dir)!r}; it has: {', '.join(available)}")
        if name not in chosen:
            chosen.append(name)
    return chosen


def output_paths(out_dir: str | Path, devices: Sequence[str], per_device: bool = False) -> list[Path]:
    """Every PNG :func:`plot_run` writes for these devices (``per_device``: also each device's HV per epoch)."""
    out = Path(out_dir)
    paths = [out / FRONTS_DIR / f"{d}.png" for d in devices] + [out / HV_PER_EPOCH, out / HV_PER_DEVICE]
    return paths + ([out / HV_PER_EPOCH_DEVICES] if per_device else [])


def plot_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    epoch: int | None = None,
    devices: Sequence[str] | None = None,
    force: bool = False,
    per_device: bool = False,
) -> list[Path]:
    """Write every figure of a run (default into ``RUN_DIR/plots``) and return the written paths.

    ``per_device`` adds ``hv_per_epoch_devices.png`` (one small panel per device). Existing PNGs are refused
    before anything is drawn, unless ``force``.
    """
    from modnas.evaluation.scorer import protocol, true_front
    from modnas.problem import get_problem

    run = load_run(run_dir)
    problem = get_problem(run.space)
    chosen_epoch = select_epoch(run, epoch)
    names = select_devices(run, chosen_epoch, devices)
    out = Path(run_dir) / "plots" if out_dir is None else Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ModnasError(f"output path {str(out)!r} exists and is not a directory")
    targets = output_paths(out, names, per_device)
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise ModnasError(f"{str(existing[0])!r}{more} already exist; use --force to overwrite")
    try:
        (out / FRONTS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModnasError(f"cannot create output directory {str(out)!r}: {exc}") from None

    written: list[Path] = []
    true_hv: dict[str, float] = {}
    objectives = ("error", "latency")
    everything = problem.space.enumerate()
    all_keys = problem.space.keys(everything) if everything is not None else None
    run_front_name = "true"
    for device, target in zip(names, targets):
        front = true_front(device, objectives, problem)
        true_hv[device] = front.hv
        if all_keys is not None:  # the whole space as a grey cloud where it can be listed
            raw = problem.truth.evaluate(all_keys, device, objectives)
            cloud = raw[problem.truth.valid(raw)]
        else:  # no cloud: a space that cannot be listed has only its stored reference front
            cloud = np.zeros((0, 2))
        exact = protocol(device, objectives, problem).exact
        if not exact:
            run_front_name = "reference"
        rays = sorted(run.rays[chosen_epoch][device])
        try:
            keys = [problem.space.canonical_key(a) for _, _, a in rays]
        except ModnasError as exc:
            raise ModnasError(f"fronts.csv of {str(run.run_dir)!r}, epoch {chosen_epoch}, {device}: {exc}") from None
        chosen = problem.truth.evaluate(keys, device, objectives)
        written.append(
            plot_front(
                target,
                device=device,
                split=run.split.get(device, "?"),
                epoch=chosen_epoch,
                cloud=cloud,
                true_front=front.raw[:, :2],
                chosen=chosen,
                chosen_preference=[p for _, p, _ in rays],
                hv=run.hv[chosen_epoch][device],
                true_hv=front.hv,
                front_name="true" if exact else "reference",
            )
        )
    epochs = [e for e in sorted(run.hv) if all(d in run.hv[e] for d in names)]  # cut-off epochs left out
    per_epoch = {d: [run.hv[e].get(d, float("nan")) for e in epochs] for d in names}
    written.append(
        plot_hv_per_epoch(
            out / HV_PER_EPOCH,
            epochs=epochs,
            hv=per_epoch,
            splits=run.split,
            mark_epoch=chosen_epoch if chosen_epoch != epochs[-1] else None,
            true_hv=true_hv,
            front_name=run_front_name,
        )
    )
    # the chosen epoch, and the first complete one (hollow) to show how far the search moved
    now, first = f"epoch {chosen_epoch}", f"epoch {run.complete_epochs[0]}"
    series = {now: [run.hv[chosen_epoch][d] for d in names]}
    if first != now:
        series[first] = [run.hv[run.complete_epochs[0]].get(d, float("nan")) for d in names]
    written.append(
        plot_hv_per_device(
            out / HV_PER_DEVICE,
            devices=names,
            hv=series,
            true_hv=[true_hv[d] for d in names],
            splits=run.split,
            colours={first: "0.45", now: "tab:blue"},
            hollow=[first] if first != now else [],
            title=f"HV gap to the {run_front_name} front per device at epoch {chosen_epoch}",
            front_name=run_front_name,
        )
    )
    if per_device:
        written.append(
            plot_hv_per_epoch_devices(
                out / HV_PER_EPOCH_DEVICES, epochs=epochs, hv=per_epoch, splits=run.split, true_hv=true_hv,
                front_name=run_front_name,
            )
        )
    return written
