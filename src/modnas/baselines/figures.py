"""Figures of a benchmark run: HV versus budget, a radar of HV across devices, and fronts against the true front.

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
    from modnas.baselines.benchmark import BenchmarkResult

HV_VS_BUDGET = "hv_vs_budget.png"
RADAR = "radar.png"
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


def plot_hv_vs_budget(result: BenchmarkResult, path: Path) -> Path:
    """Mean HV over devices against queries per device (log x); MODNAS as a point at K/19 and a dashed level."""
    from modnas.evaluation.scorer import true_front

    p = result.protocol
    colours = method_colours(p.methods)
    fig = _figure(8.5, 5.5)
    ax = fig.add_subplot(111)
    for m in p.baselines:
        rows = [r for r in result.curves if r["method"] == m]
        if not rows:
            continue
        budgets = sorted({r["budget"] for r in rows})
        seeds = sorted({r["seed"] for r in rows})
        # mean over devices per seed, then mean and spread over seeds
        per_seed = np.array([[np.mean([r["hv"] for r in rows if r["budget"] == b and r["seed"] == s])
                              for b in budgets] for s in seeds])
        mean = per_seed.mean(axis=0)
        ax.plot(budgets, mean, color=colours[m], lw=1.6, label=m)
        if len(seeds) > 1:
            ax.fill_between(budgets, per_seed.min(axis=0), per_seed.max(axis=0), color=colours[m], alpha=0.15, lw=0)
    ours = [r for r in result.results if r["method"] == MODNAS]
    if ours:
        seeds = sorted({r["seed"] for r in ours})
        per_seed = [np.mean([r["hv"] for r in ours if r["seed"] == s]) for s in seeds]
        x = p.budget / 19
        level = float(np.mean(per_seed))
        ax.axhline(level, color=colours[MODNAS], lw=1.2, ls="--")
        ax.errorbar([x], [level], yerr=[[level - min(per_seed)], [max(per_seed) - level]], fmt="*",
                    color=colours[MODNAS], ms=14, mec="black", mew=0.6, capsize=3,
                    label=f"MODNAS ({p.budget} queries for all 19 devices)")
    true_mean = float(np.mean([true_front(d).hv for d in p.devices]))
    ax.axhline(true_mean, color="black", lw=1.0, ls=":", label="true fronts")
    ax.axvline(p.same_total_budget, color="0.6", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("accuracy queries per device (a baseline's budget; MODNAS: K / 19)")
    ax.set_ylabel(f"mean HV over {len(p.devices)} devices")
    low = min([ln.get_ydata().min() for ln in ax.get_lines() if len(ln.get_xdata()) > 2] + [true_mean])
    ax.set_ylim(max(0.0, low - 0.01), true_mean + 0.01)
    top = ax.secondary_xaxis("top", functions=(lambda b: b * 19, lambda t: t / 19))
    top.set_xlabel("accuracy queries in total over 19 devices")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    n_seeds = len({r["seed"] for r in result.results})
    fig.suptitle(f"HV versus query budget ({n_seeds} seed{'s' if n_seeds > 1 else ''}"
                 + ("; band: min-max over seeds)" if n_seeds > 1 else ")"), fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _mean_hv(result: BenchmarkResult, method: str, budget: int | None) -> dict[str, float]:
    rows = [r for r in result.results if r["method"] == method and (budget is None or r["budget"] == budget)]
    return {d: float(np.mean([r["hv"] for r in rows if r["device"] == d])) for d in {r["device"] for r in rows}}


def plot_radar(result: BenchmarkResult, path: Path) -> Path:
    """Two radars of mean HV per device: same total budget, and K per device for the baselines."""
    from modnas.evaluation.scorer import true_front
    from modnas.hardware.devices import registry

    p = result.protocol
    devices = p.devices
    colours = method_colours(p.methods)
    fig = _figure(12.0, 6.0, dpi=85)  # many antialiased polygons: keep the PNG small
    n = len(devices)
    angles = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    closed = np.append(angles, angles[:1])
    true = [true_front(d).hv for d in devices]
    views = [(p.same_total_budget, f"same total budget: baselines {p.same_total_budget}/device"),
             (p.budget, f"baselines {p.budget}/device (19x MODNAS's total)")]
    values_all: list[float] = list(true)
    panels = []
    for k, (budget, title) in enumerate(views):
        ax = fig.add_subplot(1, 2, k + 1, projection="polar")
        panels.append(ax)
        ax.plot(closed, np.append(true, true[:1]), color="black", lw=1.2, ls=":", label="true front")
        for m in p.methods:
            hv = _mean_hv(result, m, None if m == MODNAS else budget)
            if not hv:
                continue
            vals = [hv.get(d, math.nan) for d in devices]
            values_all += [v for v in vals if np.isfinite(v)]
            lw = 2.2 if m == MODNAS else 1.2
            ax.plot(closed, np.append(vals, vals[:1]), color=colours[m], lw=lw, marker="o", ms=2.5, label=m)
        ax.set_xticks(angles)
        ax.set_xticklabels([f"{d}*" if registry.get(d).split == "test" else d for d in devices], fontsize=7)
        ax.set_rlabel_position(180.0 / max(n, 1))
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(title, fontsize=10, pad=18)
    low = max(0.0, math.floor((min(values_all) - 0.01) * 50) / 50)
    for ax in panels:
        ax.set_ylim(low, min(1.0, max(values_all) + 0.005))
    panels[-1].legend(loc="upper right", bbox_to_anchor=(1.3, 1.12), fontsize=8)
    fig.suptitle("mean HV per device (* zero-shot test device for MODNAS)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def _front_points(archs: Sequence[int], device: str) -> np.ndarray:
    """Raw (error, latency) of the scorer's non-dominated set of ``archs``, sorted by latency."""
    from modnas.evaluation.scorer import protocol, score_indices
    from modnas.spaces.nb201 import to_index

    s = score_indices(np.asarray(archs, dtype=np.int64), device)
    if not s.front:
        return np.zeros((0, 2))
    idx = np.atleast_1d(to_index(list(s.front)))
    pts = protocol(device).raw[idx]
    return pts[np.argsort(pts[:, 1], kind="stable")]


def _modnas_archs(result: BenchmarkResult, device: str) -> list[int]:
    from modnas.plots import load_run
    from modnas.spaces.nb201 import to_index

    if not result.modnas_runs:
        return []
    run = load_run(result.modnas_runs[0])
    rays = run.rays[run.complete_epochs[-1]].get(device, [])
    return [int(i) for i in np.atleast_1d(to_index([a for _, _, a in rays]))] if rays else []


def _queried(result: BenchmarkResult, method: str, device: str, seed: int, budget: int) -> list[int]:
    rows = [r for r in result.queries
            if r["method"] == method and r["device"] == device and r["seed"] == seed and r["budget"] == budget]
    return [r["arch_index"] for r in sorted(rows, key=lambda r: r["order"])]


def _draw_front(ax: Any, device: str, lines: list[tuple[str, np.ndarray, dict]], small: bool) -> None:
    from modnas.evaluation.scorer import true_front

    tf = true_front(device)
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
    ax.set_yscale("log")
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.25)
    # the interesting part: errors up to 3x the best, all latencies
    ax.set_ylim(raw[:, 0].min() * 0.95, raw[:, 0].min() * 3.0)


def plot_fronts(result: BenchmarkResult, out_dir: Path) -> list[Path]:
    """Per device, error against latency: the true front, MODNAS's front, and every baseline's front at K.

    One PNG per device in ``fronts/``, and ``fronts.png``: a grid with the true front, MODNAS, and the strongest
    baseline at both budgets. The first seed of each method is drawn.
    """
    from modnas.hardware.devices import registry

    p = result.protocol
    colours = method_colours(p.methods)
    seed = p.seeds[0]
    mean_at_k = {m: np.mean(list(_mean_hv(result, m, p.budget).values()) or [math.nan]) for m in p.baselines}
    strongest = max(mean_at_k, key=lambda m: mean_at_k[m]) if mean_at_k else None
    ours_label = f"MODNAS ({p.budget} queries, all devices)"
    paths = []
    grid_lines: dict[str, list] = {}
    for device in p.devices:
        lines: list[tuple[str, np.ndarray, dict]] = []
        ours = _modnas_archs(result, device)
        if ours:
            lines.append((ours_label, _front_points(ours, device), {"color": colours[MODNAS], "marker": "*"}))
        for m in p.baselines:
            q = _queried(result, m, device, seed, p.budget)
            if q:
                lines.append((f"{m} ({p.budget}/device)", _front_points(q, device), {"color": colours[m]}))
        fig = _figure(7.5, 5.0)
        ax = fig.add_subplot(111)
        _draw_front(ax, device, lines, small=False)
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("error (%)")
        ax.set_title(f"{device} ({registry.get(device).split}), seed {seed}", fontsize=10)
        ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        paths.append(_save(fig, out_dir / FRONTS_DIR / f"{device}.png"))
        grid = [ln for ln in lines if ln[0] == ours_label]
        if strongest is not None:
            for budget, ls in ((p.same_total_budget, "--"), (p.budget, "-")):
                q = _queried(result, strongest, device, seed, budget)
                if q:
                    grid.append((f"{strongest} ({budget}/device)", _front_points(q, device),
                                 {"color": colours[strongest], "ls": ls, "lw": 1.0 if ls == "-" else 1.4}))
        grid_lines[device] = grid
    n = len(p.devices)
    cols = min(5, n)
    rows = math.ceil(n / cols)
    fig = _figure(3.2 * cols, 2.6 * rows + 0.6)
    handles: dict[str, Any] = {}
    for k, device in enumerate(p.devices):
        ax = fig.add_subplot(rows, cols, k + 1)
        _draw_front(ax, device, grid_lines[device], small=True)
        ax.set_title(f"{device}{'*' if registry.get(device).split == 'test' else ''}", fontsize=8)
        ax.tick_params(labelsize=6)
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(4, len(handles)), fontsize=8)
    fig.suptitle(f"error (%, log) against latency (ms), seed {seed}; * zero-shot test device", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    paths.append(_save(fig, out_dir / FRONTS))
    return paths


def write_figures(result: BenchmarkResult) -> list[Path]:
    """Every figure of a benchmark run, into its output directory."""
    out = result.out_dir
    paths = [plot_hv_vs_budget(result, out / HV_VS_BUDGET), plot_radar(result, out / RADAR)]
    paths += plot_fronts(result, out)
    return paths
