"""Benchmark-mode query strategies without the hypernetwork: a fast offline simulator.

The search's accuracy signal is an error predictor fitted on K queried architectures. This script replays the
query schedule (``initial`` random architectures, then rounds of ``per_round`` proposals until K is spent) with the
hypernetwork replaced by its ideal: for every evaluation ray and device, the architecture that minimises the
scalarised (predicted error, predicted latency) over all 15,625 architectures. It then scores those argmin
architectures on the 19 protocol devices with the shared scorer. One configuration over 3 seeds takes 1-2 minutes
on 2 CPU cores instead of 3 full searches.

With the default schedule (100 + 5 x 20) and the error model of the defaults before commit db8bafc
(``--path-hidden 0``) it gives a mean HV of 0.9519 over seeds 0-2, close to the real searches with those defaults
(0.9521); with the default path-encoding model 0.9559, and 0.9558 with ``--final queried`` (the argmin over the
queried architectures only). Schedules that finish querying late score better here than in real searches, whose
hypernetwork has settled by then (see docs/experiments.md). Use it to compare error models and query rules, then
confirm with real runs.

    python benchmarks/query_strategy_sim.py --initial 100 --per-round 20 --path-hidden 0 --seeds 0 1 2
    python benchmarks/query_strategy_sim.py --initial 50 --per-round 25 --ensemble 5 --fit-steps 500
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from modnas.config import ErrorPredictorConfig
from modnas.evaluation import circle_rays, scalarised_argmin, score_indices, to_simplex
from modnas.hardware.training import over_all_archs
from modnas.search.error_model import ErrorPredictor, QueryBudget
from modnas.spaces.nb201.devices import (
    PROTOCOL_DEVICES,
    TRAIN_DEVICES,
    all_onehots,
    normalised_predicted_latencies,
)
from modnas.tables.nb201 import NUM_ARCHS


def argmin_architectures(err_n: np.ndarray, lat_n: np.ndarray, rays: np.ndarray, columns) -> np.ndarray:
    """For each device column and ray, the index minimising ``r0 err_n + r1 lat_n`` ``(len(columns), R)``."""
    columns = list(columns)
    objectives = np.stack([np.broadcast_to(err_n, (len(columns), err_n.size)), lat_n[:, columns].T], axis=-1)
    return scalarised_argmin(rays, objectives)


def initial_design(design: str, n: int, mean_latency: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``random``: n architectures uniformly; ``latency``: one from each of n equal-width bins of mean latency."""
    if design == "random":
        return rng.choice(NUM_ARCHS, n, replace=False)
    edges = np.linspace(mean_latency.min(), mean_latency.max() + 1e-9, n + 1)
    bins = np.clip(np.digitize(mean_latency, edges) - 1, 0, n - 1)
    chosen = [int(rng.choice(np.flatnonzero(bins == b))) for b in range(n) if (bins == b).any()]
    rest = rng.permutation(np.setdiff1d(np.arange(NUM_ARCHS), chosen))[: n - len(chosen)]
    return np.concatenate([np.asarray(chosen, dtype=np.int64), rest])


def simulate(
    seed: int, initial: int, per_round: int, budget: int, model_config: ErrorPredictorConfig, lat_n: np.ndarray,
    onehots: torch.Tensor, pessimism: float = 0.0, optimism: float = 0.0, design: str = "random",
    final_choice: str = "all",
) -> tuple[float, float]:
    """Mean HV over the 19 devices and over the 6 test devices for one seed."""
    rng = np.random.default_rng(seed)
    rays = to_simplex(circle_rays(24))
    train_columns = [PROTOCOL_DEVICES.index(d) for d in TRAIN_DEVICES]
    queries = QueryBudget(budget)
    queries.query(initial_design(design, initial, lat_n[:, train_columns].mean(axis=1), rng))
    model = ErrorPredictor(model_config)

    def fitted_errors(fit: int, kappa: float) -> np.ndarray:
        errors = np.asarray(queries.errors)
        model.fit(onehots[np.asarray(queries.queried)], errors, seed=seed * 1000 + fit)
        valid = errors[errors < model_config.degenerate_error]
        pred = over_all_archs(lambda x: model.error(x, kappa), onehots).numpy()
        return (pred - valid.min()) / (valid.max() - valid.min())

    fit = 0
    while queries.remaining > 0:
        proposals = argmin_architectures(fitted_errors(fit, -optimism), lat_n, rays, train_columns)
        fit += 1
        values, counts = np.unique(proposals, return_counts=True)
        ranked = [int(v) for v in values[np.argsort(-counts, kind="stable")] if int(v) not in queries]
        if not ranked:  # every proposal is known: spend the round on random architectures
            ranked = [int(i) for i in rng.permutation(NUM_ARCHS) if int(i) not in queries]
        queries.query(ranked[: min(per_round, queries.remaining)])
    if final_choice == "queried":  # only measured architectures, at their true errors
        known = np.full(NUM_ARCHS, 1e6)  # unmeasured: never chosen, except by the pure-latency ray
        errors = np.asarray(queries.errors)
        valid = errors[errors < model_config.degenerate_error]
        known[np.asarray(queries.queried)] = (errors - valid.min()) / (valid.max() - valid.min())
        final = argmin_architectures(known, lat_n, rays, range(len(PROTOCOL_DEVICES)))
    else:
        final = argmin_architectures(fitted_errors(fit, pessimism), lat_n, rays, range(len(PROTOCOL_DEVICES)))
    hv = [score_indices(final[i], d).hv for i, d in enumerate(PROTOCOL_DEVICES)]
    return float(np.mean(hv)), float(np.mean(hv[len(TRAIN_DEVICES) :]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--initial", type=int, default=100, help="random architectures queried first")
    parser.add_argument("--per-round", type=int, default=20, help="proposals queried per round")
    parser.add_argument("--budget", type=int, default=200, help="K, total queries")
    parser.add_argument("--ensemble", type=int, default=3, help="error-predictor ensemble members")
    parser.add_argument("--fit-steps", type=int, default=300, help="Adam steps per fit")
    parser.add_argument("--path-hidden", type=int, default=None, help="path-encoding MLP width (0: none)")
    parser.add_argument("--weight-decay", type=float, default=None, help="error-predictor AdamW weight decay")
    parser.add_argument("--pessimism", type=float, default=0.0, help="ensemble stds added at the final choice")
    parser.add_argument("--optimism", type=float, default=0.0, help="ensemble stds subtracted when proposing")
    parser.add_argument("--design", choices=["random", "latency"], default="random", help="initial queries")
    parser.add_argument("--final", choices=["all", "queried"], default="all",
                        help="final argmin over all architectures (predicted errors) or the queried ones (true errors)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    onehots = all_onehots()
    lat_n = normalised_predicted_latencies(PROTOCOL_DEVICES)
    overrides = {"path_hidden": args.path_hidden, "weight_decay": args.weight_decay}
    model_config = ErrorPredictorConfig(
        ensemble=args.ensemble, steps=args.fit_steps, **{k: v for k, v in overrides.items() if v is not None}
    )
    start = time.perf_counter()
    results = [
        simulate(s, args.initial, args.per_round, args.budget, model_config, lat_n, onehots, args.pessimism, args.optimism,
                 args.design, args.final)
        for s in args.seeds
    ]
    per_seed = " / ".join(f"{r[0]:.4f}" for r in results)
    print(
        f"initial {args.initial}, {args.per_round} per round, K {args.budget}, ensemble {args.ensemble} x "
        f"{args.fit_steps} steps, path_hidden {model_config.path_hidden}, weight decay {model_config.weight_decay}, "
        f"pessimism {args.pessimism}, optimism {args.optimism}, design {args.design}, final {args.final}: mean HV {per_seed} -> "
        f"{np.mean([r[0] for r in results]):.4f} (test devices {np.mean([r[1] for r in results]):.4f}), "
        f"{time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
