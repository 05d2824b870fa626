"""The benchmark report: per-device HV tables for both budget views, win counts, and an honest summary.

:func:`summarise` reduces a :class:`~modnas.rundir.BenchmarkResult` to plain numbers (written as
``summary.json``); :func:`markdown` turns them into ``report.md``.
"""

from __future__ import annotations

import functools
import math
import platform
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from modnas.baselines.protocol import MODNAS, MODNAS_PREDICTED_LATENCY, MODNAS_VARIANTS

if TYPE_CHECKING:
    from modnas.rundir import BenchmarkResult

SAME_TOTAL = "same_total"
PER_DEVICE_K = "per_device"


def _stats(values: Sequence[float]) -> dict[str, float | int]:
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0, "n": int(arr.size)}


def _view_rows(result: BenchmarkResult, view: str) -> list[dict[str, Any]]:
    p = result.protocol
    budget = p.same_total_budget if view == SAME_TOTAL else p.budget
    return [r for r in result.results if r["method"] in MODNAS_VARIANTS or r["budget"] == budget]


def _hv_table(rows: list[dict[str, Any]], methods: Sequence[str], devices: Sequence[str]) -> dict[str, Any]:
    table: dict[str, dict[str, Any]] = {}
    for m in methods:
        per = {d: _stats([r["hv"] for r in rows if r["method"] == m and r["device"] == d]) for d in devices}
        if all(s["n"] == 0 for s in per.values()):
            continue
        seeds = sorted({r["seed"] for r in rows if r["method"] == m})
        # the mean over devices, per seed, then its spread over seeds
        per_seed = [np.mean([r["hv"] for r in rows if r["method"] == m and r["seed"] == s]) for s in seeds]
        table[m] = {"devices": per, "mean": _stats(per_seed)}
    return table


def _wins(table: dict[str, Any], devices: Sequence[str], variant: str = MODNAS) -> dict[str, Any]:
    """Per baseline: on how many devices ``variant`` (a MODNAS row of the table) has the higher mean HV."""
    if variant not in table:
        return {}
    ours = table[variant]["devices"]
    out = {}
    for m, entry in table.items():
        if m in MODNAS_VARIANTS:
            continue
        won = [d for d in devices if ours[d]["mean"] > entry["devices"][d]["mean"]]
        out[m] = {"wins": len(won), "devices": len(devices), "lost": [d for d in devices if d not in won]}
    return out


def _break_even(result: BenchmarkResult, modnas_mean: float) -> dict[str, int | None]:
    """Per baseline: the smallest per-device budget whose mean HV (over devices and seeds) reaches MODNAS's."""
    out: dict[str, int | None] = {}
    for m in result.protocol.baselines:
        rows = [r for r in result.curves if r["method"] == m]
        budgets = sorted({r["budget"] for r in rows})
        out[m] = None
        for b in budgets:
            if np.mean([r["hv"] for r in rows if r["budget"] == b]) >= modnas_mean:
                out[m] = int(b)
                break
    return out


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("modnas", "optuna", "numpy", "torch", "moocore"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def summarise(result: BenchmarkResult) -> dict[str, Any]:
    """Every number the report shows, as plain JSON-able data."""
    from modnas.evaluation.scorer import true_front

    p = result.protocol
    methods = [m for m in p.methods if m != MODNAS]
    methods = [m for m in MODNAS_VARIANTS if any(r["method"] == m for r in result.results)] + methods
    views = {}
    for view in (SAME_TOTAL, PER_DEVICE_K):
        table = _hv_table(_view_rows(result, view), methods, p.devices)
        views[view] = {
            "per_device_budget": p.same_total_budget if view == SAME_TOTAL else p.budget,
            "hv": table,
            "wins": _wins(table, p.devices),
            "wins_predicted_latency": _wins(table, p.devices, MODNAS_PREDICTED_LATENCY),
        }
    modnas_mean = views[SAME_TOTAL]["hv"].get(MODNAS, {}).get("mean", {}).get("mean", math.nan)
    n = len(p.devices)
    targets: dict[str, Any] = {}
    if MODNAS in views[SAME_TOTAL]["hv"]:
        same = views[SAME_TOTAL]["wins"]
        per = views[PER_DEVICE_K]["wins"]
        beats_all = [d for d in p.devices if all(d not in w["lost"] for w in same.values())]
        targets = {
            "same_total_all_devices": {"met": len(beats_all) == n, "devices_won_against_every_baseline": len(beats_all)},
            "per_device_majority": {
                "met": all(w["wins"] >= n // 2 + 1 for w in per.values()),
                "needed": n // 2 + 1,
                "wins": {m: w["wins"] for m, w in per.items()},
            },
        }
    return {
        "protocol": p.model_dump(mode="json"),
        "budget": p.budget,
        "same_total_budget": p.same_total_budget,
        "wall_seconds": round(result.seconds, 1),
        "cpu_seconds": round(result.cpu_seconds, 1) if math.isfinite(result.cpu_seconds) else None,
        "workers": p.workers,
        "modnas_runs": result.modnas_runs,
        "true_hv": {d: true_front(d, problem=p.space).hv for d in p.devices},
        "views": views,
        "targets": targets,
        "break_even": _break_even(result, modnas_mean) if not math.isnan(modnas_mean) else {},
        "settings": result.settings,
        "versions": _versions(),
    }


# -- Markdown ------------------------------------------------------------------------------------------------------


def _fmt(stats: dict[str, Any], bold: bool = False) -> str:
    if stats["n"] == 0:
        return "-"
    text = f"{stats['mean']:.4f}"
    if stats["n"] > 1:
        text += f" ± {stats['std']:.4f}"
    return f"**{text}**" if bold else text


def _table_md(summary: dict[str, Any], view: str, devices: Sequence[str], splits: dict[str, str]) -> list[str]:
    table = summary["views"][view]["hv"]
    methods = list(table)
    lines = [
        "| device | " + " | ".join(methods) + f" | {_space_facts(summary)['front']} |",
        "|---|" + "---:|" * (len(methods) + 1),
    ]
    for d in devices:
        means = {m: table[m]["devices"][d]["mean"] for m in methods}
        best = max(means.values())
        cells = [_fmt(table[m]["devices"][d], bold=means[m] == best) for m in methods]
        name = f"{d}*" if splits[d] == "test" else d
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {summary['true_hv'][d]:.4f} |")
    mean_true = float(np.mean([summary["true_hv"][d] for d in devices]))
    means = {m: table[m]["mean"]["mean"] for m in methods}
    best = max(means.values())
    cells = [_fmt(table[m]["mean"], bold=means[m] == best) for m in methods]
    lines.append(f"| **mean ({len(devices)})** | " + " | ".join(cells) + f" | {mean_true:.4f} |")
    return lines


def _served(summary: dict[str, Any]) -> int:
    """How many devices one MODNAS search serves: the protocol devices of the benchmark's space (NB201: 19)."""
    from modnas.problem import DEFAULT_SPACE, get_problem

    space = (summary.get("protocol") or {}).get("space", DEFAULT_SPACE)
    return len(get_problem(space).devices.names("protocol"))


def _space_facts(summary: dict[str, Any]) -> dict[str, Any]:
    """What the report's prose says of the benchmark's space: its device counts, what its error is and whether
    the fronts HV is compared with are true (enumerated) or stored reference fronts."""
    from modnas.problem import DEFAULT_SPACE

    return _facts_of_space((summary.get("protocol") or {}).get("space", DEFAULT_SPACE))


@functools.lru_cache(maxsize=8)
def _facts_of_space(space: str) -> dict[str, Any]:
    """:func:`_space_facts` by space name, computed once (the report reads them in several places)."""
    from modnas.problem import get_problem

    problem = get_problem(space)
    exact = problem.space.enumerate() is not None
    return {
        "train": len(problem.devices.names("train")),
        "test": len(problem.devices.names("test")),
        "error": problem.truth.objectives["error"].description,
        "front": "true front" if exact else "reference front",
        "normalised": "min-max normalised over the architectures with error < 90 %" if exact
        else "min-max normalised with the bounds stored with the reference fronts",
    }


def _describe_methods(summary: dict[str, Any]) -> list[str]:
    from modnas.baselines.methods import METHODS

    lines = []
    for m in summary["protocol"]["methods"]:
        if m == MODNAS:
            lines.append("- `modnas`: one benchmark-mode search (default config unless the protocol overrides it) for "
                         f"all {_served(summary)} devices; scored on the front of its last epoch: per evaluation ray, the "
                         "hypernetwork's pick, or a queried architecture that dominates it (`front: "
                         "hypernet+measured`, the default), compared by true error and by measured latency where "
                         "the device has one (`front_latency: measured`: the training devices' tables, every "
                         "device's 10 reference architectures), else the MetaPredictor's.")
            if summary["views"][PER_DEVICE_K]["hv"].get(MODNAS_PREDICTED_LATENCY):
                lines.append(f"- `{MODNAS_PREDICTED_LATENCY}`: the same runs and trained hypernetworks, with the "
                             "front re-chosen by the MetaPredictor's latency on every device (`front_latency: "
                             "predicted`); no new queries.")
            continue
        settings = {k.split(" K=")[1]: v for k, v in summary["settings"].items() if k.startswith(f"{m} K=")}
        shown = "; ".join(
            f"K={k}: " + (", ".join(f"{a}={b}" for a, b in v.items()) or "no settings")
            for k, v in sorted(settings.items(), key=lambda kv: -int(kv[0]))
        )
        lines.append(f"- `{m}`: {METHODS[m][1]}" + (f" ({shown})" if shown else "") + ".")
    return lines


def _honest_summary(summary: dict[str, Any], devices: Sequence[str]) -> list[str]:
    views = summary["views"]
    if MODNAS not in views[SAME_TOTAL]["hv"]:
        return ["- MODNAS was not part of this protocol, so no comparison is drawn."]
    n = len(devices)
    served = _served(summary)
    k, big = summary["same_total_budget"], summary["budget"]
    out = []
    same = views[SAME_TOTAL]["wins"]
    if same:
        t = summary["targets"]["same_total_all_devices"]
        worst = min(same, key=lambda m: same[m]["wins"])
        out.append(
            f"- **Same total budget** ({big} queries for MODNAS across all {served} devices; {k} per device, "
            f"{served * k} in all, for each baseline): MODNAS has the higher mean HV than every baseline on "
            f"{t['devices_won_against_every_baseline']} of {n} devices"
            + ("." if t["met"] else f"; the closest baseline is `{worst}` ({same[worst]['wins']}/{n} wins for MODNAS, "
               f"losses on {', '.join(same[worst]['lost'])}).")
        )
    per = views[PER_DEVICE_K]["wins"]
    if per:
        parts = [f"`{m}` {w['wins']}/{n}" for m, w in per.items()]
        out.append(f"- **{big} queries per device for every baseline** ({served}x MODNAS's budget): MODNAS wins on "
                   + ", ".join(parts) + " devices.")
        for m, w in per.items():
            if w["lost"] and w["wins"] < n // 2 + 1:
                won = [d for d in devices if d not in w["lost"]]
                ahead = ", ".join(won) if won else "no device"
                out.append(f"  - against `{m}` MODNAS is ahead only on {ahead}; it loses on the other "
                           f"{len(w['lost'])}.")
        table = views[PER_DEVICE_K]["hv"]
        ablation = views[PER_DEVICE_K].get("wins_predicted_latency")
        if ablation:
            parts = [f"`{m}` {w['wins']}/{n}" for m, w in ablation.items()]
            mean = table[MODNAS_PREDICTED_LATENCY]["mean"]["mean"]
            facts = _space_facts(summary)
            out.append(
                "- **Where the latency comes from.** MODNAS's front compares architectures by measured latency "
                f"where a device has it: the tables of the {facts['train']} training devices (the hardware "
                "predictor's training data) and the 10 reference architectures of every device; the "
                f"{facts['test']} test devices stay zero-shot. "
                f"The same runs with the MetaPredictor's latency everywhere (`{MODNAS_PREDICTED_LATENCY}`, "
                f"`front_latency: predicted`) have mean HV {mean:.4f} and win on " + ", ".join(parts) + " devices."
            )
        ours = table[MODNAS]["mean"]["mean"]
        best = max((m for m in table if m not in MODNAS_VARIANTS), key=lambda m: table[m]["mean"]["mean"])
        out.append(f"- Mean HV over the {n} devices: MODNAS {ours:.4f}; the best baseline with {big} queries per "
                   f"device is `{best}` with {table[best]['mean']['mean']:.4f}; {_space_facts(summary)['front']}s "
                   f"{np.mean([summary['true_hv'][d] for d in devices]):.4f}.")
    if summary["break_even"]:
        parts = []
        for m, b in summary["break_even"].items():
            parts.append(f"`{m}` after {b} ({served * b} in all)" if b is not None else f"`{m}` never within {big}")
        out.append("- Queries per device a baseline needs before its mean HV reaches MODNAS's: " + ", ".join(parts) + ".")
    return out


def _cpu_text(summary: dict[str, Any]) -> str:
    cpu = summary.get("cpu_seconds")
    if not cpu:
        return ""
    return f"; CPU time {cpu / 60:.1f} min (the benchmark process and its workers)"


def markdown(result: BenchmarkResult, summary: dict[str, Any], command: str | None = None) -> str:
    """``report.md``: protocol, both tables, win counts, summary, method settings and caveats."""

    p = result.protocol
    registry = p.problem.devices
    served = _served(summary)
    devices = p.devices
    splits = {d: registry.get(d).split for d in devices}
    k, big = summary["same_total_budget"], summary["budget"]
    lines = [
        f"# MODNAS vs. multi-objective baselines on {p.problem.extras.get('title', p.space)}",
        "",
        f"Protocol: methods {', '.join(f'`{m}`' for m in p.methods)}; {len(devices)} devices; seeds "
        f"{', '.join(str(s) for s in p.seeds)}; K = {big}. Wall time {summary['wall_seconds'] / 60:.1f} min with "
        f"{p.workers} worker process(es)" + _cpu_text(summary) + ".",
    ]
    if command:
        lines += ["", f"Command: `{command}`"]
    lines += [
        "",
        "Every number is the hypervolume (HV) of the shared scorer (`modnas.evaluation.scorer.score_keys`): error "
        f"and latency {_space_facts(summary)['normalised']}, reference point (1, 1). "
        "Cells give mean ± std over seeds; the best method per device is bold; * marks zero-shot test devices.",
        "",
        "## Summary",
        "",
        *_honest_summary(summary, devices),
        "",
        f"## Same total budget: MODNAS K = {big} for all {served} devices, baselines {k} per device",
        "",
        *_table_md(summary, SAME_TOTAL, devices, splits),
        "",
        f"## Baselines with K = {big} queries per device ({served} x {big} = {served * big} in all)",
        "",
        *_table_md(summary, PER_DEVICE_K, devices, splits),
        "",
    ]
    same, per = summary["views"][SAME_TOTAL]["wins"], summary["views"][PER_DEVICE_K]["wins"]
    if same:
        ablation = summary["views"][PER_DEVICE_K].get("wins_predicted_latency") or {}
        header = f"| baseline | same total budget ({k}/device) | {big}/device | devices MODNAS loses at {big}/device |"
        rule = "|---|---:|---:|---|"
        if ablation:
            header += f" {big}/device, `{MODNAS_PREDICTED_LATENCY}` |"
            rule += "---:|"
        lines += ["## Devices on which MODNAS has the higher mean HV", "", header, rule]
        for m in same:
            lost = ", ".join(per[m]["lost"]) or "none"
            extra = f" {ablation[m]['wins']}/{ablation[m]['devices']} |" if m in ablation else ""
            lines.append(f"| `{m}` | {same[m]['wins']}/{same[m]['devices']} | {per[m]['wins']}/{per[m]['devices']} | "
                         f"{lost} |" + extra)
        lines.append("")
    lines += [
        "## How the budget is counted",
        "",
        f"- A query is one architecture whose true error ({_space_facts(summary)['error']}) is read; its latency "
        "on the device comes with it. Re-reading an architecture is free. MODNAS and every baseline count with the "
        "same `QueryBudget` class.",
        "- Latency is not counted. A baseline reads the device's true latency with each query. MODNAS sees latency "
        "through its hardware predictor, and its front uses measured latency where the device has some: the tables "
        f"of the {_space_facts(summary)['train']} training devices (the predictor's training data) and each "
        "device's 10 reference architectures (its embedding). A test device's table is only read by the scorer.",
        f"- MODNAS spends its K = {big} queries once and serves all {served} devices from one search. A baseline searches "
        "one device at a time, so it spends its budget on every device.",
        f"- Same total budget: {big} / {served} rounded gives {k} queries per device ({served * k} in all"
        + (", slightly more than MODNAS's" if served * k > big else "") + "). These are dedicated runs whose "
        "budget-dependent settings (population size, random start-up trials) follow the small budget.",
        f"- The K = {big} runs also give the HV-versus-budget curves (`curves.csv`, `hv_vs_budget.png`): the HV at "
        "budget b scores the first b architectures the run queried.",
        "- A baseline is scored on every architecture it queried (up to K candidates per device); MODNAS on the "
        "architectures chosen for its evaluation rays (at most one per ray). Both go through the same scorer.",
        "- Wall time per run is in `results.csv` (`seconds`): a baseline's search on one device, or one MODNAS search "
        f"for all {served} devices (repeated on each of its rows).",
        "",
        "## Methods",
        "",
        *_describe_methods(summary),
        "",
        "Versions: " + ", ".join(f"{a} {b}" for a, b in summary["versions"].items()) + ".",
        "",
    ]
    return "\n".join(lines)
