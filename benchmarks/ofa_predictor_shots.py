"""Zero- and few-shot ranking of the OFA latency predictor on the two zero-shot devices.

* ``titan_rtx_64``: HELP's 5,000 measured architectures (its 10 reference architectures give the embedding);
* ``note10``: 1,000 seeded random architectures at the look-up table's resolutions, timed by the table (its
  embedding is fitted to 20 other table latencies).

k-shot: k further architectures of the device's set are "measured" (read from the data) and the predictor is
fine-tuned on them (:func:`modnas.hardware.training.adapt`, 100 Adam steps); Spearman and Kendall are taken on the
rest, mean over 3 draws of the k architectures.

    python benchmarks/ofa_predictor_shots.py            # about a minute on 2 CPU cores
"""

from __future__ import annotations

import numpy as np

from modnas.hardware.training import adapt, predict_normalised, rank_correlations
from modnas.problem import get_problem
from modnas.spaces.ofa.latency import measured_table
from modnas.spaces.ofa.note10 import NOTE10_RESOLUTIONS, note10_latency
from modnas.spaces.ofa.space import OFASpace

SHOTS = (10, 20)
SEEDS = 3


def device_set(name: str) -> tuple[list[str], np.ndarray]:
    """Keys and true latencies (ms) of the architectures a device is scored on."""
    if name == "note10":
        space = OFASpace(NOTE10_RESOLUTIONS)
        archs = [space.arch(i) for i in space.sample(1000, np.random.default_rng(123))]
        return [a.key for a in archs], np.array([note10_latency(a) for a in archs])
    table = measured_table()
    return list(table["key"]), table[f"lat_{name}"].to_numpy(dtype=float)


def main() -> None:
    problem = get_problem("ofa")
    model = problem.load_predictor()
    space = model.measurement_space
    print(f"{'device':>13} {'setting':>9} {'spearman':>8} {'kendall':>8}")
    for name in ("titan_rtx_64", "note10"):
        device = problem.devices.get(name)
        keys, true = device_set(name)
        onehots = space.to_onehot(space.parse_many(keys))
        predicted = predict_normalised(model, onehots, device)
        print(f"{name:>13} {'zero-shot':>9} {rank_correlations(predicted, true)[0]:8.3f} "
              f"{rank_correlations(predicted, true)[1]:8.3f}")
        for k in SHOTS:
            scores = []
            for seed in range(SEEDS):
                chosen = np.random.default_rng(seed).choice(len(keys), size=k, replace=False)
                rest = np.setdiff1d(np.arange(len(keys)), chosen)
                tuned = adapt(model, device, {keys[i]: float(true[i]) for i in chosen}, seed=seed)
                scores.append(rank_correlations(predict_normalised(tuned, onehots[rest], device), true[rest]))
            rho, tau = np.mean(scores, axis=0)
            print(f"{name:>13} {f'{k}-shot':>9} {rho:8.3f} {tau:8.3f}")


if __name__ == "__main__":
    main()
