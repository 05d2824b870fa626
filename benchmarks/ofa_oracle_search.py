"""The OFA search loop with the ground truth's own accuracy predictor as its error model (no query budget).

An upper bound on what the hypernetwork, sampler and MGD reach on this space when the accuracy signal is exact:
the same benchmark-mode loop, with the differentiable OFA accuracy predictor (the ground truth of the surrogate
benchmark) in place of the error predictor fitted on K queries, scored on the hypernetwork's picks alone
(``front: hypernet``). Prints the mean HV over the 13 devices every 5 epochs.

    python benchmarks/ofa_oracle_search.py --seed 0            # about 12 minutes on one CPU core
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from torch import Tensor

from modnas.config import load_config
from modnas.search.benchmark import BenchmarkSearch
from modnas.spaces.ofa.encoding import accuracy_features
from modnas.spaces.ofa.predictors import accuracy_predictor


class OracleSearch(BenchmarkSearch):
    """Benchmark mode whose error term is the true (predicted top-1) error, min-max normalised with fixed bounds."""

    #: the error range of the benchmark space's extreme and reference architectures (%), for the normalisation
    low, high = 15.3, 24.7

    def normalised_error(self, onehot: Tensor) -> Tensor:
        t, p = onehot.shape[:2]
        accuracy = accuracy_predictor()(accuracy_features(self.space, onehot.reshape(t * p, *onehot.shape[2:])))
        return ((100 - 100 * accuracy).reshape(t, p) - self.low) / (self.high - self.low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = load_config(None, {"space": "ofa", "seed": args.seed, "front": "hypernet"})
    search = OracleSearch(config)
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        search.train_epoch()
        if epoch % 5 == 0 or epoch == config.epochs:
            rows, _ = search.evaluate()
            print(f"epoch {epoch}: mean HV {np.mean([r['hv'] for r in rows]):.4f} ({time.perf_counter() - start:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()
