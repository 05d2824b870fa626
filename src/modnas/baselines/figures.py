"""Figures of a benchmark run: HV gap versus budget, HV gap per device, and fronts against the true front.

Written with matplotlib's object API and the Agg canvas (no ``pyplot``), via :mod:`modnas.plots`' atomic save.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modnas.baselines.protocol import MODNAS
from modnas.plots import _colours, _save

if TYPE_CHECKING:
    from modnas.rundir import BenchmarkResult

HV_VS_BUDGET = "hv_vs_budget.png"
HV_PER_DEVICE = "hv_per_device.png"
FRONTS = "fronts.png"
FRONTS_DIR = "fronts"


def _figure(width: float, height: float, dpi: int = 100):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def method_colours(methods: Sequence[str]) -> dict[str, Any]:
    """MODNAS in red, the baselines in distinct colours, stable across figures."""
    others = [m for m in methods if m != MODNAS]
    palette = [c for i, c in enumerate(_colours(20)) if i not in (6, 7)]  # tab20's reds are MODNAS's
    out: dict[str, Any] = {m: palette[(2 * i) % len(palette)] for i, m in enumerate(others)}
    out[MODNAS] = "tab:red"
    return out


def _gap_per_seed(rows: Sequence[dict[str, Any]], true: dict[str, float], devices: Sequence[str],
                  budgets: Sequence[int], seeds: Sequence[int]) -> np.ndarray:
    """(seeds, budgets) mean over ``devices`` of the HV gap to the true front (NaN where a device is missing)."""
    table = {(r["seed"], r["budget"], r["device"]): r["hv"] for r in rows}
    out = np.full((len(seeds), len(budgets)), math.nan)
    for i, s in enumerate(seeds):
        for j, b in enumerate(budgets):
            gaps = [true[d] - table[(s, b, d)] for d in devices if (s, b, d) in table]
            if len(gaps) == len(devices):
                out[i, j] = float(np.mean(gaps))
    return out


def plot_hv_vs_budget(result: BenchmarkResult, path: Path) -> Path:
    """Mean HV gap to the true fronts (log) against queries per device (log), one line per method.

    A baseline's line is its HV after b queries on each device (mean over seeds, band min-max over seeds).
    MODNAS searches all protocol devices (NB201: 19) with one budget K, so its queries per device are K/19: its
    line follows the
    queries used by the end of each epoch (the last epoch at each count), its star and dashed level are the
    final result.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from modnas.evaluation.scorer import true_front

    p = result.protocol
    colours = method_colours(p.methods)
    true = {d: true_front(d, problem=p.space).hv for d in p.devices}
    n = len(p.problem.devices.names("protocol"))
    fig = _figure(8.5, 5.5)
    ax = fig.add_subplot(111)
    for m in p.baselines:
        rows = [r for r in result.curves if r["method"] == m]
        if not rows:
            continue
        budgets = sorted({r["budget"] for r in rows})
        seeds = sorted({r["seed"] for r in rows})
        per_seed = _gap_per_seed(rows, true, p.devices, budgets, seeds)
        with np.errstate(all="ignore"):
            mean = np.nanmean(per_seed, axis=0)
        ax.plot(budgets, mean, color=colours[m], lw=1.6, label=m)
        if len(seeds) > 1:
            ax.fill_between(budgets, np.nanmin(per_seed, axis=0), np.nanmax(per_seed, axis=0), color=colours[m],
                            alpha=0.15, lw=0)
    ours = [r for r in result.results if r["method"] == MODNAS]
    if ours:
        seeds = sorted({r["seed"] for r in ours})
        # the last epoch at each query count: the most training the run had with that many queries
        curve: dict[tuple[int, int, str], tuple[int, float]] = {}
        for r in result.curves:
            if r["method"] == MODNAS and r["device"] in true:
                key = (r["seed"], r["budget"], r["device"])
                if key not in curve or (r.get("epoch") or 0) >= curve[key][0]:
                    curve[key] = (r.get("epoch") or 0, r["hv"])
        used = sorted({b for (_, b, _) in curve})
        if len(used) > 1:
            rows = [{"seed": s, "budget": b, "device": d, "hv": hv} for (s, b, d), (_, hv) in curve.items()]
            line = np.nanmean(_gap_per_seed(rows, true, p.devices, used, seeds), axis=0)
            ax.plot(np.asarray(used) / n, line, color=colours[MODNAS], lw=1.6, marker="o", ms=3,
                    label=f"MODNAS during its search (queries used so far / {n})")
        final = np.array([np.mean([true[r["device"]] - r["hv"] for r in ours
                                   if r["seed"] == s and r["device"] in true]) for s in seeds])
        level = float(np.mean(final))
        ax.axhline(level, color=colours[MODNAS], lw=1.2, ls="--")
        ax.errorbar([p.budget / n], [level], yerr=[[level - final.min()], [final.max() - level]], fmt="*",
                    color=colours[MODNAS], ms=14, mec="black", mew=0.6, capsize=3)
        # the level and the star in one legend entry
        ax.plot([], [], ls="--", lw=1.2, marker="*", ms=11, mec="black", mew=0.6, color=colours[MODNAS],
                label=f"MODNAS final: {p.budget} queries for all {n} devices")
    ax.axvline(p.same_total_budget, color="0.6", lw=0.8, ls=":")
    ax.annotate(f"same total budget\n({p.same_total_budget}/device)", (p.same_total_budget, 1.0),
                xycoords=("data", "axes fraction"), xytext=(3, -3), textcoords="offset points", ha="left",
                va="top", fontsize=7, color="0.35")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.margins(y=0.08)
    ax.set_xlabel(f"accuracy queries per device (a baseline's budget; MODNAS: K / {n})")
    ax.set_ylabel(f"HV gap to the true fronts, mean over {len(p.devices)} devices (log; smaller is better)",
                  fontsize=9)
    top = ax.secondary_xaxis("top", functions=(lambda b: b * n, lambda t: t / n))
    top.set_xlabel(f"accuracy queries in total over {n} devices")
    ticks = ((ax.xaxis, (1.0, 2.0, 5.0)), (ax.yaxis, (1.0, 2.0, 3.0, 5.0)), (top.xaxis, (1.0, 2.0, 5.0)))
    for axis, subs in ticks:
        axis.set_major_locator(LogLocator(subs=subs))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)
    ax.legend(loc="upper right", fontsize=8, handlelength=3.0)
    n_seeds = len({r["seed"] for r in result.results})
    fig.suptitle(f"HV gap versus query budget ({n_seeds} seed{'s' if n_seeds > 1 else ''}"
                 + ("; band: min-max over seeds)" if n_seeds > 1 else ")"), fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _hv_table(result: BenchmarkResult, method: str, budget: int | None) -> dict[str, list[float]]:
    rows = [r for r in result.results if r["method"] == method and (budget is None or r["budget"] == budget)]
    out: dict[str, list[float]] = {}
    for r in rows:
        if r["hv"] is not None:
            out.setdefault(r["device"], []).append(float(r["hv"]))
    return out


def _mean_hv(result: BenchmarkResult, method: str, budget: int | None) -> dict[str, float]:
    return {d: float(np.mean(v)) for d, v in _hv_table(result, method, budget).items()}


def plot_hv_per_device(result: BenchmarkResult, path: Path) -> Path:
    """Per device, each method's HV gap to the true front (log), in two panels: the same total budget, and K per
    device for the baselines. Dots: mean over seeds; whiskers: min-max over seeds. Any number of devices."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from modnas.evaluation.scorer import true_front
    from modnas.plots import draw_hv_gap_dots, gap_axis_label, gap_floor

    p = result.protocol
    registry = p.problem.devices
    devices = list(p.devices)
    colours = method_colours(p.methods)
    true = [true_front(d, problem=p.space).hv for d in devices]
    splits = {d: registry.get(d).split for d in devices}
    views = [(p.same_total_budget, f"same total budget: baselines {p.same_total_budget}/device"),
             (p.budget, f"baselines {p.budget}/device ({len(p.problem.devices.names('protocol'))}x MODNAS's total)")]
    panels = []
    for budget, title in views:
        series: dict[str, list[float]] = {}
        spread: dict[str, tuple[list[float], list[float]]] = {}
        for m in p.methods:
            table = _hv_table(result, m, None if m == MODNAS else budget)
            if not table:
                continue
            series[m] = [float(np.mean(table[d])) if d in table else math.nan for d in devices]
            spread[m] = ([min(table[d]) if d in table else math.nan for d in devices],
                         [max(table[d]) if d in table else math.nan for d in devices])
        panels.append((title, series, spread))
    every = [vals for _, series, spread in panels for vals in [*series.values(), *(h for lh in spread.values()
             for h in lh)]]
    gaps = [t - v for vals in every for t, v in zip(true, vals)]
    floor = gap_floor(gaps)
    finite = [g for g in gaps if np.isfinite(g)]
    right = max(max(finite, default=floor) * 1.3, floor * 10)
    height = 1.9 + 0.42 * max(len(devices), 3)
    fig = Figure(figsize=(12.0, height), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    clipped = False
    for ax, (title, series, spread) in zip(axes, panels):
        _, cut = draw_hv_gap_dots(ax, devices=devices, series=series, true_hv=true, splits=splits,
                                  colours=colours, spread=spread, floor=floor)
        clipped = clipped or cut
        ax.set_title(title, fontsize=10)
    for ax in axes:  # one x range for both panels, wide enough for every dot and whisker
        ax.set_xlim(floor / 1.25, right)
        ax.set_xlabel(gap_axis_label(floor, clipped), fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    ncol = min(7, max(len(labels), 1))
    legend = (0.28 * math.ceil(len(labels) / ncol) + 0.12) / height
    if labels:
        fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    n_seeds = len({r["seed"] for r in result.results})
    fig.suptitle("HV gap to the true front per device; MODNAS: one search for all devices"
                 + (f"; dot: mean over {n_seeds} seeds, whisker: min-max" if n_seeds > 1 else ""), fontsize=10)
    fig.tight_layout(rect=(0, legend, 1, 1.0 - 0.12 / height))  # room for the title above the panels
    return _save(fig, path)


def _front_points(archs: Sequence[str], device: str, space: str = "nb201") -> np.ndarray:
    """Raw (error, latency) of the scorer's non-dominated set of ``archs``, sorted by latency."""
    from modnas.evaluation.scorer import score_keys
    from modnas.problem import get_problem

    s = score_keys(list(archs), device, problem=space)
    if not s.front:
        return np.zeros((0, 2))
    pts = get_problem(space).truth.evaluate(list(s.front), device, ("error", "latency"))
    return pts[np.argsort(pts[:, 1], kind="stable")]


def _modnas_archs(result: BenchmarkResult, device: str) -> list[str]:
    from modnas.rundir import load_run

    if not result.modnas_runs:
        return []
    run = load_run(result.modnas_runs[0])
    rays = run.rays[run.complete_epochs[-1]].get(device, [])
    return [a for _, _, a in rays]


def _queried(result: BenchmarkResult, method: str, device: str, seed: int, budget: int) -> list[str]:
    rows = [r for r in result.queries
            if r["method"] == method and r["device"] == device and r["seed"] == seed and r["budget"] == budget]
    return [_query_key(r) for r in sorted(rows, key=lambda r: r["order"])]


def _query_key(row: dict) -> str:
    """The architecture of a queries.csv row (benchmarks written before keys stored NB201 table indices)."""
    if row.get("arch_str"):
        return str(row["arch_str"])
    from modnas.problem import get_problem

    space = get_problem("nb201").space
    return space.to_key(space.enumerate()[int(row["arch_index"])])


def _draw_front(
    ax: Any, device: str, lines: list[tuple[str, np.ndarray, dict]], small: bool, space: str = "nb201"
) -> None:
    from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter

    from modnas.evaluation.scorer import true_front

    tf = true_front(device, problem=space)
    raw = tf.raw[np.argsort(tf.raw[:, 1], kind="stable")]
    ax.step(raw[:, 1], raw[:, 0], where="post", color="black", lw=1.2, label="true front")
    for label, pts, style in lines:
        if len(pts) == 0:
            continue
        if style.get("marker") == "*":
            ax.scatter(pts[:, 1], pts[:, 0], s=50 if small else 80, marker="*", color=style["color"],
                       edgecolors="black", linewidths=0.4, zorder=4, label=label)
        else:
            ax.step(pts[:, 1], pts[:, 0], where="post", color=style["color"], lw=style.get("lw", 1.0),
                    ls=style.get("ls", "-"), label=label, marker=".", ms=3)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5 if small else 8, steps=[1, 2, 2.5, 5, 10]))
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)
    best = float(raw[:, 0].min())
    if best <= 0:  # a surrogate's error can reach 0: no log axis then
        return
    ax.set_yscale("log")
    # few, plain ticks: the range is about 5-16 % error, where 6, 8, 10, 15 read better than 10^1
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 6.0, 8.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    # the interesting part: errors up to 3x the best, all latencies
    ax.set_ylim(best * 0.95, best * 3.0)


def _best_baseline(result: BenchmarkResult, device: str, seed: int, budget: int) -> str | None:
    """The baseline with the highest HV on ``device`` for this seed and budget (the run whose front is drawn)."""
    hv = {r["method"]: r["hv"] for r in result.results
          if r["device"] == device and r["seed"] == seed and r["budget"] == budget
          and r["method"] in result.protocol.baselines and r["hv"] is not None}
    return max(hv, key=lambda m: (hv[m], -result.protocol.baselines.index(m))) if hv else None


def plot_fronts(result: BenchmarkResult, out_dir: Path) -> list[Path]:
    """Per device, error against latency: the true front, MODNAS's front, and every baseline's front at K.

    One PNG per device in ``fronts/``, and ``fronts.png``: a grid with, per device, the true front, MODNAS, and
    the best baseline of that device (highest HV of the drawn seed) at the same total budget (dashed) and at K
    per device (solid). The first seed of each method is drawn.
    """
    from matplotlib.lines import Line2D


    p = result.protocol
    registry = p.problem.devices
    colours = method_colours(p.methods)
    seed = p.seeds[0]
    ours_label = f"MODNAS ({p.budget} queries, all devices)"
    paths = []
    grid_lines: dict[str, list] = {}
    best: dict[str, dict[int, str]] = {}
    for device in p.devices:
        lines: list[tuple[str, np.ndarray, dict]] = []
        ours = _modnas_archs(result, device)
        if ours:
            lines.append((ours_label, _front_points(ours, device, p.space), {"color": colours[MODNAS], "marker": "*"}))
        for m in p.baselines:
            q = _queried(result, m, device, seed, p.budget)
            if q:
                lines.append((f"{m} ({p.budget}/device)", _front_points(q, device, p.space), {"color": colours[m]}))
        fig = _figure(7.5, 5.0)
        ax = fig.add_subplot(111)
        _draw_front(ax, device, lines, small=False, space=p.space)
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("error (%)")
        ax.set_title(f"{device} ({registry.get(device).split}), seed {seed}", fontsize=10)
        ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        paths.append(_save(fig, out_dir / FRONTS_DIR / f"{device}.png"))
        grid = [ln for ln in lines if ln[0] == ours_label]
        best[device] = {}
        for budget, ls in ((p.same_total_budget, "--"), (p.budget, "-")):
            m = _best_baseline(result, device, seed, budget)
            q = _queried(result, m, device, seed, budget) if m else []
            if q:
                best[device][budget] = m
                grid.append((f"{m} ({budget}/device)", _front_points(q, device, p.space),
                             {"color": colours[m], "ls": ls, "lw": 1.1 if ls == "-" else 1.4}))
        grid_lines[device] = grid
    n = len(p.devices)
    cols = min(5, n)
    rows = math.ceil(n / cols)
    height = 3.0 * rows + 1.3
    fig = _figure(max(3.5 * cols, 7.0), height)  # at least wide enough for the legend and the title
    for k, device in enumerate(p.devices):
        ax = fig.add_subplot(rows, cols, k + 1)
        _draw_front(ax, device, grid_lines[device], small=True, space=p.space)
        picks = ", ".join(f"{m} @{b}" for b, m in sorted(best[device].items(), reverse=True))
        ax.set_title(f"{device}{'*' if registry.get(device).split == 'test' else ''}"
                     + (f"  (best: {picks})" if picks else ""), fontsize=8)
        ax.set_xlabel("latency (ms)", fontsize=7, labelpad=1)
        ax.set_ylabel("error (%)", fontsize=7, labelpad=1)
        ax.tick_params(labelsize=7)
    # one legend for the grid: what each line style means, then which colour is which method
    used = sorted({m for picks in best.values() for m in picks.values()}, key=p.baselines.index)
    handles = [Line2D([], [], color="black", lw=1.2),
               Line2D([], [], color=colours[MODNAS], marker="*", ms=9, ls="", mec="black", mew=0.4)]
    labels = ["true front", ours_label]
    for budget, ls in ((p.budget, "-"), (p.same_total_budget, "--")):
        handles.append(Line2D([], [], color="0.3", ls=ls, lw=1.2, marker="." if ls == "-" else None, ms=3))
        labels.append(f"best baseline at {budget}/device" + (" (same total budget)" if ls == "--" else ""))
    handles += [Line2D([], [], color=colours[m], lw=3) for m in used]
    labels += used
    ncol = min(len(labels), 2 if cols <= 2 else 3 if cols == 3 else 4 + len(used) // 2)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    legend_rows = math.ceil(len(labels) / ncol)
    sep = "\n" if cols < 4 else " "
    fig.suptitle(f"error (%, log) against latency (ms), seed {seed}:{sep}the best baseline of each device at each "
                 f"budget; * zero-shot test device", fontsize=10)
    top = 1.0 - (0.3 if cols < 4 else 0.15) / height
    fig.tight_layout(rect=(0, (0.22 * legend_rows + 0.15) / height, 1, top))
    paths.append(_save(fig, out_dir / FRONTS))
    return paths


def write_figures(result: BenchmarkResult) -> list[Path]:
    """Every figure of a benchmark run, into its output directory."""
    out = result.out_dir
    paths = [plot_hv_vs_budget(result, out / HV_VS_BUDGET), plot_hv_per_device(result, out / HV_PER_DEVICE)]
    paths += plot_fronts(result, out)
    return paths
