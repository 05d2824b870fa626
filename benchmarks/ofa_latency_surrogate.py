"""Which OFA GPU latency surrogate: held-out Spearman and MAPE per setting, and monotonicity violations.

5-fold cross-validation (seeded folds) on HELP's 5,000 measured architectures for each of the 12 GPU settings and
each model of :mod:`modnas.spaces.ofa.latency`; then, for every model fitted on all 5,000, the share of one-move
changes towards a larger network (kernel, expand, depth or resolution up) that it predicts to be faster, over
2,000 random architectures.

    python benchmarks/ofa_latency_surrogate.py [--folds 5] [--models additive boosted]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import spearmanr

from modnas.spaces.ofa import OFAArch
from modnas.spaces.ofa.latency import GPU_SETTINGS, MODELS, make_model, measured_table
from modnas.spaces.ofa.space import OFASpace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    table = measured_table()
    archs = [OFAArch.from_key(k) for k in table["key"]]
    fold = np.random.default_rng(args.seed).permutation(len(archs)) % args.folds
    space = OFASpace()
    probes = [space.arch(i) for i in space.sample(2000, np.random.default_rng(args.seed + 1))]
    pairs = [(a, b) for a in probes for b in a.larger_neighbours()]
    print("| setting | " + " | ".join(f"{m} Spearman | {m} MAPE %" for m in args.models) + " |")
    print("|---" * (1 + 2 * len(args.models)) + "|")
    summary: dict[str, list[tuple[float, float]]] = {m: [] for m in args.models}
    violations: dict[str, list[float]] = {m: [] for m in args.models}
    for setting in GPU_SETTINGS:
        y = table[f"lat_{setting}"].to_numpy()
        cells = []
        for name in args.models:
            predicted = np.zeros_like(y)
            for f in range(args.folds):
                train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
                model = make_model(name).fit([archs[i] for i in train], y[train])
                predicted[test] = model.predict([archs[i] for i in test])
            rho = float(spearmanr(predicted, y)[0])
            mape = float(np.mean(np.abs(predicted - y) / y) * 100)
            summary[name].append((rho, mape))
            cells += [f"{rho:.3f}", f"{mape:.2f}"]
            full = make_model(name).fit(archs, y)
            small, large = full.predict([a for a, _ in pairs]), full.predict([b for _, b in pairs])
            violations[name].append(float(np.mean(large < small - 1e-9)))
        print(f"| {setting} | " + " | ".join(cells) + " |", flush=True)
    print("| mean | " + " | ".join(f"{np.mean([r for r, _ in summary[m]]):.3f} | {np.mean([p for _, p in summary[m]]):.2f}"
                                   for m in args.models) + " |")
    for m in args.models:
        print(f"{m}: a larger one-move neighbour predicted faster in {100 * max(violations[m]):.2f} % of "
              f"{len(pairs)} pairs (worst setting)")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
