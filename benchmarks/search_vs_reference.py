"""Benchmark-mode searches of a space without enumeration (OFA) against its stored reference fronts.

Per device: the reference front's HV, the **24-ray ceiling** (the HV of the 24 evaluation rays' optima of the
scalarised ground truth, i.e. the best front a 24-ray search can report; its points lie on the Pareto front, so
they are taken from the reference front; ``--scalarisation chebyshev`` for runs with that setting), and for every run directory given the HV its last epoch
reached, also as a fraction of the reference HV. The mean over devices and the mean and spread over runs close the
table.

    python benchmarks/search_vs_reference.py --space ofa runs/ofa-s0 runs/ofa-s1 runs/ofa-s2
    python benchmarks/search_vs_reference.py --space ofa            # reference and ceiling only

Reads summary.json of each run (``modnas search --json`` writes the same numbers); takes seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from modnas.evaluation import SCALARISATIONS, evaluation_preferences, scalarised_argmin, to_simplex
from modnas.evaluation.pareto import hypervolume
from modnas.problem import get_problem


def ray_ceiling(points: np.ndarray, rays: np.ndarray, scalarisation: str = "linear") -> float:
    """HV of the per-ray minimisers of the scalarised normalised points ``(N, M)`` for rays ``(R, M)``."""
    best = np.unique(scalarised_argmin(rays, points, method=scalarisation))
    return hypervolume(points[best], 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run directories of `modnas search`")
    parser.add_argument("--space", default="ofa")
    parser.add_argument("--rays", type=int, default=24)
    parser.add_argument("--scalarisation", choices=SCALARISATIONS, default="linear",
                        help="the runs' scalarisation (search config `scalarisation`), for the ceiling")
    args = parser.parse_args()

    problem = get_problem(args.space)
    objectives = ("error", "latency")
    rays = to_simplex(evaluation_preferences(len(objectives), args.rays))
    runs = []
    for run in args.runs:
        summary = json.loads((run / "summary.json").read_text())
        runs.append({row["device"]: row["hv"] for row in summary["devices"]})
    devices = list(runs[0]) if runs else list(problem.reference.devices())

    head = f"{'device':>14} {'split':>5} {'reference':>9} {f'{args.rays}-ray ceiling':>17}"
    print(head + "".join(f" {'run ' + str(i):>15}" for i in range(len(runs))))
    ratios, ceilings = np.zeros((len(runs), len(devices))), []
    for j, name in enumerate(devices):
        norm = problem.reference.normalisation(name, objectives)
        ceiling = ray_ceiling(norm.front_points, rays, args.scalarisation)
        ceilings.append(ceiling / norm.true_hv)
        line = f"{name:>14} {problem.devices.get(name).split:>5} {norm.true_hv:9.4f} {ceiling:8.4f} ({ceilings[-1]:.3f})"
        for i, hv in enumerate(runs):
            ratios[i, j] = hv[name] / norm.true_hv
            line += f" {hv[name]:7.4f} ({ratios[i, j]:.3f})"
        print(line)
    print(f"mean ceiling / reference: {np.mean(ceilings):.3f}")
    if runs:
        per_run = ratios.mean(axis=1)
        shown = " / ".join(f"{r:.3f}" for r in per_run)
        print(f"mean HV / reference per run: {shown}; mean {per_run.mean():.3f} +- {per_run.std():.3f}")
        print(f"mean HV / 24-ray ceiling: {(ratios / np.asarray(ceilings)).mean():.3f}")


if __name__ == "__main__":
    main()
