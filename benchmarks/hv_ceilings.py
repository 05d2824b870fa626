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

from modnas.evaluation import evaluation_preferences, scalarised_argmin, score_indices, to_simplex
from modnas.evaluation.scorer import protocol
from modnas.spaces.nb201.devices import PROTOCOL_DEVICES, normalised_predicted_latencies, registry
from modnas.tables.nb201 import NUM_ARCHS, nb201_tables


def main() -> None:
    rays = to_simplex(evaluation_preferences(2, 24))
    lat_n = normalised_predicted_latencies(PROTOCOL_DEVICES)
    err = 100.0 - nb201_tables.accuracy(np.arange(NUM_ARCHS))
    valid = err < 90.0  # degenerate cells (output cut off from the input) are not scored
    err_n = (err - err[valid].min()) / (err[valid].max() - err[valid].min())
    print(f"{'device':>16} {'split':>5} {'true front':>10} {'true':>7} {'true err + pred lat':>19}")
    rows = []
    for column, name in enumerate(PROTOCOL_DEVICES):
        norm = protocol(name, ("error", "latency"))
        points = norm.normalise(norm.raw)
        finite = np.isfinite(points).all(axis=1)
        points = np.where(finite[:, None], points, 0.0)  # masked out below; avoids 0 * inf
        exact = score_indices(scalarised_argmin(rays, points, allowed=finite), name).hv
        # the search does not know which cells are degenerate; their ~90 % error keeps all but r0 = 0 off them
        predicted = score_indices(scalarised_argmin(rays, np.stack([err_n, lat_n[:, column]], axis=1)), name).hv
        rows.append((norm.true_hv, exact, predicted))
        print(f"{name:>16} {registry.get(name).split:>5} {norm.true_hv:10.4f} {exact:7.4f} {predicted:19.4f}")
    mean = np.mean(rows, axis=0)
    print(f"{'mean over 19':>16} {'':>5} {mean[0]:10.4f} {mean[1]:7.4f} {mean[2]:19.4f}")


if __name__ == "__main__":
    main()
