"""How high can benchmark mode's HV go? Ceilings of the 24-ray protocol with perfect knowledge of some objectives.

For each of the 19 protocol devices and each evaluation ray, pick the architecture that minimises the linearly
scalarised objectives over all 15,625 architectures, with

* ``true``: the true CIFAR-10 error and true latency, normalised as the scorer does;
* ``true error + predicted latency``: the true error and the shipped MetaPredictor's latency, each min-max
  normalised over all architectures (as the search normalises them), i.e. a search that knew every accuracy but
  still saw latency through the predictor, as MODNAS does.

and score those choices with the shared scorer. The gap between the two is what the latency predictor alone
costs; a benchmark-mode search, which also estimates the error from K queries, cannot expect more than the second.
Runs in about 10 s on 2 CPU cores.

    python benchmarks/hv_ceilings.py
"""

from __future__ import annotations

import numpy as np
import torch

from modnas.evaluation import evaluation_preferences, score_indices, to_simplex
from modnas.evaluation.scorer import protocol
from modnas.hardware.devices import PROTOCOL_DEVICES, registry
from modnas.hardware.predictor import load_predictor
from modnas.hardware.training import all_onehots
from modnas.search.base import device_embeddings
from modnas.tables.nb201 import NUM_ARCHS, nb201_tables

CHUNK = 4096


def argmin_per_ray(err_n: np.ndarray, lat_n: np.ndarray, rays: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Index of an ``allowed`` architecture minimising ``r0 err_n + r1 lat_n``, for each ray ``(R,)``."""
    scalarised = rays[:, :1] * err_n[None] + rays[:, 1:] * lat_n[None]
    return np.where(allowed[None], scalarised, np.inf).argmin(axis=1)


def main() -> None:
    rays = to_simplex(evaluation_preferences(2, 24))
    onehots = all_onehots()
    with torch.no_grad():
        predictor, emb = load_predictor()[0], device_embeddings(PROTOCOL_DEVICES)
        lat = torch.cat([predictor(onehots[i : i + CHUNK], emb) for i in range(0, NUM_ARCHS, CHUNK)]).numpy()
    lat_n = (lat - lat.min(0)) / (lat.max(0) - lat.min(0))
    err = 100.0 - nb201_tables.accuracy(np.arange(NUM_ARCHS))
    valid = err < 90.0  # degenerate cells (output cut off from the input) are not scored
    err_n = (err - err[valid].min()) / (err[valid].max() - err[valid].min())
    print(f"{'device':>16} {'split':>5} {'true front':>10} {'true':>7} {'true err + pred lat':>19}")
    rows = []
    for column, name in enumerate(PROTOCOL_DEVICES):
        norm = protocol(name, ("error", "latency"))
        points = norm.normalise(norm.raw)
        finite = np.isfinite(points).all(axis=1)
        exact = score_indices(argmin_per_ray(points[:, 0], points[:, 1], rays, finite), name).hv
        # the search does not know which cells are degenerate; their ~90 % error keeps all but r0 = 0 off them
        predicted = score_indices(argmin_per_ray(err_n, lat_n[:, column], rays, np.ones_like(valid)), name).hv
        rows.append((norm.true_hv, exact, predicted))
        print(f"{name:>16} {registry.get(name).split:>5} {norm.true_hv:10.4f} {exact:7.4f} {predicted:19.4f}")
    mean = np.mean(rows, axis=0)
    print(f"{'mean over 19':>16} {'':>5} {mean[0]:10.4f} {mean[1]:7.4f} {mean[2]:19.4f}")


if __name__ == "__main__":
    main()
