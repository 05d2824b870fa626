"""Where a benchmark-mode run of a space without enumeration (OFA, GPT-S) loses HV: the error model or the
hypernetwork.

Per device, over a seeded pool of random architectures, the per-ray minimisers of the scalarised objectives
(the run's scalarisation, its evaluation rays), scored by the ground truth as a fraction of the reference HV:

- ``oracle``: the minimisers of the true objectives (what a perfect search restricted to the pool reports);
- ``predicted``: the minimisers of the run's own objectives (its error model and latency predictor), i.e. what a
  hypernetwork that found the minima of the objective it is trained on would report;
- ``run``: the run's last-epoch HV from summary.json;
- with ``--refine-rounds N``, ``refined``: the run's picks moved by N rounds of refinement (the search config's
  ``refine_rounds``), as a run with that setting would report them.

Also the error model's Spearman rank correlation with the true error over the pool.

    python benchmarks/front_loss_breakdown.py RUN --devices epyc-b1-s128-t1,h200-b64-s1024-bf16
    python benchmarks/front_loss_breakdown.py RUN --devices ... --refine-rounds 20
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from modnas.evaluation import evaluation_preferences, scalarised_argmin, to_simplex
from modnas.evaluation.pareto import hypervolume
from modnas.problem import Normalisation, get_problem
from modnas.search.trained import TrainedSearch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--devices", required=True, help="comma-separated device names")
    parser.add_argument("--pool", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--refine-rounds", type=int, default=0)
    args = parser.parse_args()

    trained = TrainedSearch.load(args.run)
    config = trained.config  # the run's own settings for the pool columns; refine_rounds matters only to `refined`
    trained.config = config.model_copy(update={"refine_rounds": args.refine_rounds})
    problem = get_problem(config.space)
    space = problem.space
    keys = np.array(space.keys(space.sample(args.pool, np.random.default_rng(args.seed))))
    rays = evaluation_preferences(2, config.eval_rays)
    run_hv = {row["device"]: row["hv"] for row in json.loads((args.run / "summary.json").read_text())["devices"]}
    print(f"{'device':>20} {'oracle':>7} {'predicted':>9} {'run':>7} {'refined':>7} {'error model Spearman':>21}")
    for name in args.devices.split(","):
        norm = problem.reference.normalisation(name, ("error", "latency"))
        scale = norm.upper - norm.lower
        true = (problem.truth.evaluate(list(keys), name, ("error", "latency")) - norm.lower) / scale
        error, latency = trained.predicted(trained.device(name), keys)
        predicted = (np.stack([error, latency], axis=1) - norm.lower) / scale

        def front_hv(points: np.ndarray, norm: Normalisation = norm) -> float:
            return hypervolume(points[(points <= 1).all(axis=1)], 1.0) / norm.true_hv

        def hv(points: np.ndarray, true: np.ndarray = true) -> float:
            return front_hv(true[np.unique(scalarised_argmin(rays, points, method=config.scalarisation))])

        refined = "-"
        if args.refine_rounds:
            picks = list(dict.fromkeys(trained.architectures(trained.device(name), to_simplex(rays))))
            refined = f"{front_hv((problem.truth.evaluate(picks, name, ('error', 'latency')) - norm.lower) / scale):.3f}"
        rho = spearmanr(error, true[:, 0]).statistic
        print(f"{name:>20} {hv(true):7.3f} {hv(predicted):9.3f} {run_hv[name] / norm.true_hv:7.3f} {refined:>7} "
              f"{rho:21.3f}")


if __name__ == "__main__":
    main()
