"""Does a finished benchmark-mode search pick what its own predictors call best?

For each run directory and each of the 19 protocol devices and 24 evaluation rays, compare the trained
hypernetwork's architecture with the argmin, over all 15,625 architectures, of the scalarised predicted objectives
(the run's final error model, the MetaPredictor's latency, both normalised as the search normalises them). Prints
the share of (device, ray) pairs where they agree, the mean scalarised gap, and the shared scorer's mean HV of
both choices and of the default front (the hypernetwork's picks with dominating measured architectures swapped in). About 15 s per run on 2 CPU cores.

    python benchmarks/hypernet_vs_argmin.py runs/s0 runs/s1 runs/s2
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from modnas.evaluation import evaluation_preferences, score_indices, to_simplex
from modnas.hardware.training import over_all_archs
from modnas.rundir import load_checkpoint
from modnas.search.base import device_embeddings
from modnas.search.trained import TrainedSearch
from modnas.spaces.nb201.devices import (
    PROTOCOL_DEVICES,
    all_onehots,
    normalised_predicted_latencies,
    registry,
)
from modnas.spaces.nb201.encoding import NUM_EDGES, from_onehot, to_index


@torch.no_grad()
def compare(run_dir: str) -> str:
    """One line: agreement, mean gap, HV of the hypernetwork's choices and of the predictors' argmin."""
    trained = TrainedSearch.load(run_dir)
    if trained.config.mode != "benchmark" or len(trained.config.objectives) != 2:
        return f"{run_dir}: skipped (needs a two-objective benchmark-mode run)"
    err_low, err_high = load_checkpoint(trained.run_dir / "checkpoints" / "last.pt")["error_bounds"]
    emb = device_embeddings(PROTOCOL_DEVICES)
    err_n = (over_all_archs(trained.error_model.error, all_onehots()).numpy() - err_low) / (err_high - err_low)
    lat_n = normalised_predicted_latencies(PROTOCOL_DEVICES, trained.predictor)
    rays = to_simplex(evaluation_preferences(2, trained.config.eval_rays))
    alpha = trained.hypernet(torch.tensor(rays, dtype=torch.float32)[None], emb[:, None])
    chosen = to_index(from_onehot(alpha).reshape(-1, NUM_EDGES)).reshape(len(PROTOCOL_DEVICES), -1)
    measured_front = trained.config.model_copy(update={"front": "hypernet+measured"})
    agree, gaps, hv_chosen, hv_argmin, hv_measured = [], [], [], [], []
    for column, name in enumerate(PROTOCOL_DEVICES):
        scalarised = rays[:, :1] * err_n[None] + rays[:, 1:] * lat_n[:, column][None]  # (R, N)
        best = scalarised.argmin(axis=1)
        gap = scalarised[np.arange(len(rays)), chosen[column]] - scalarised.min(axis=1)
        agree.append(gap <= 1e-9)
        gaps.append(gap)
        hv_chosen.append(score_indices(chosen[column], name).hv)
        hv_argmin.append(score_indices(best, name).hv)
        trained.config, own = measured_front, trained.config
        hv_measured.append(score_indices(trained.architectures(registry.get(name), rays), name).hv)
        trained.config = own
    return (
        f"{run_dir}: hypernetwork = predicted argmin on {np.mean(agree):.0%} of (device, ray) pairs, mean "
        f"scalarised gap {np.mean(gaps):.4f}; mean HV, hypernetwork {np.mean(hv_chosen):.4f}, "
        f"predicted argmin {np.mean(hv_argmin):.4f}, hypernetwork with measured architectures (front: "
        f"hypernet+measured) {np.mean(hv_measured):.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="finished benchmark-mode run directories")
    for run in parser.parse_args().runs:
        print(compare(run))


if __name__ == "__main__":
    main()
