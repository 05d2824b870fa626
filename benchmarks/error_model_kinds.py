"""How well each kind of benchmark-mode error model learns a space's quality from a run's own queries.

For every run directory given, the error models (``error_predictor.kind``: ``mlp`` and ``gp``, the run's other
error-model settings) are fitted on the run's queries (``queries.csv``: what its search read of the ground truth)
and scored over a seeded pool of random architectures against the true error:

- Spearman over the pool, and over its best 20 % by true error (where fronts are);
- mean absolute error (the error's unit: percent, or perplexity on GPT-S);
- ``HV``: per training device (at most ``--devices``), the per-ray minimisers over the pool of the scalarised
  (predicted error, true latency), scored by the true objectives as a fraction of the reference HV; the mean over
  the devices. The oracle row uses the true error: the best the pool allows.

Training devices only, so the numbers can choose a design without looking at the test devices.

    python benchmarks/error_model_kinds.py runs/gpt-s-0 runs/gpt-s-1     # about 20 s per run on 1 core
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from modnas.evaluation import evaluation_preferences, scalarised_argmin
from modnas.evaluation.pareto import hypervolume
from modnas.problem import get_problem
from modnas.rundir import RunDir
from modnas.search.error_model import ErrorPredictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="benchmark-mode run directories of one space")
    parser.add_argument("--pool", type=int, default=20000)
    parser.add_argument("--devices", type=int, default=6, help="training devices scored (the first N)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    config = RunDir(args.runs[0]).config()
    problem = get_problem(config.space)
    space = problem.space
    keys = space.keys(space.sample(args.pool, np.random.default_rng(args.seed)))
    pool = space.to_onehot(space.parse_many(keys))
    true_error = problem.truth.evaluate(keys, None, ("error",))[:, 0]
    best = true_error <= np.quantile(true_error, 0.2)
    devices = list(problem.devices.names("train"))[: args.devices]
    rays = evaluation_preferences(2, config.eval_rays)
    truth = {d: problem.truth.evaluate(keys, d, ("error", "latency")) for d in devices}

    def score(error: np.ndarray) -> str:
        hv = []
        for d in devices:
            norm = problem.reference.normalisation(d, ("error", "latency"))
            true = (truth[d] - norm.lower) / (norm.upper - norm.lower)
            guided = np.stack([(error - norm.lower[0]) / (norm.upper[0] - norm.lower[0]), true[:, 1]], axis=1)
            picks = true[np.unique(scalarised_argmin(rays, guided, method=config.scalarisation))]
            hv.append(hypervolume(picks[(picks <= 1).all(axis=1)], 1.0) / norm.true_hv)
        rho = spearmanr(error, true_error).statistic
        rho_best = spearmanr(error[best], true_error[best]).statistic
        mae = np.abs(error - true_error).mean()
        return f"{rho:9.4f} {rho_best:12.4f} {mae:7.3f} {np.mean(hv):7.4f}"

    print(f"{problem.name}: pool of {args.pool}, HV over {len(devices)} training devices, {config.scalarisation} rays")
    print(f"{'run':>24} {'kind':>6} {'Spearman':>9} {'best 20 %':>12} {'MAE':>7} {'HV':>7}")
    print(f"{'':>24} {'oracle':>6} {score(true_error)}")
    for run in args.runs:
        run_config = RunDir(run).config()
        queries = pd.read_csv(run / "queries.csv")
        onehots = space.to_onehot(space.parse_many(list(queries["arch_str"])))
        for kind in ("mlp", "gp"):
            model = ErrorPredictor(run_config.error_predictor.model_copy(update={"kind": kind}), space)
            model.fit(onehots, queries["error"].to_numpy(), seed=0)
            with torch.no_grad():
                error = torch.cat([model.error(pool[i : i + 4096]) for i in range(0, len(pool), 4096)]).numpy()
            print(f"{run.name:>24} {kind:>6} {score(error.astype(np.float64))}", flush=True)


if __name__ == "__main__":
    main()
