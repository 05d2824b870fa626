"""How far the OFA accuracy predictor can be trusted as a benchmark's ground truth.

1. Its ranking of the 2,373 measured ImageNet top-1 values of DyNAS-T (w1.0 supernet, r = 224, full 50k val):
   Spearman, Kendall, Pearson and the mean offset (the predictor is for w1.2 subnets on a 10k hold-out of ImageNet
   train, so an offset is expected, a poor ranking would not be).
2. Its behaviour below r = 160, where it was never trained: mean prediction of the same random architectures at
   every resolution 128-224.
3. Its maximum over the space restricted to r >= 160, found by a seeded hill climb over one-move neighbours from
   many random starts, against its prediction for the largest network (r 224, depth 4, k7, e6): an optimiser that
   maximises accuracy finds that maximum, not the largest network.
4. The Note10 look-up table between its resolutions: 176, 192 and 208 predicted from the table resolutions two
   steps away by interpolation in the image area (what ``note10_latency_any`` does with the nearest ones), against
   the table's own values: MAPE and Spearman over random architectures.

    python benchmarks/ofa_ground_truth.py [--starts 64] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from scipy.stats import kendalltau, pearsonr, spearmanr

from modnas.spaces.ofa import OFAArch
from modnas.spaces.ofa.encoding import accuracy_features
from modnas.spaces.ofa.latency import arch_of_row
from modnas.spaces.ofa.predictors import DATA, accuracy_predictor
from modnas.spaces.ofa.space import OFASpace


def predict(space: OFASpace, indices: np.ndarray) -> np.ndarray:
    """Predicted top-1 (%) of choice indices ``(N, decisions)``."""
    with torch.no_grad():
        return 100 * accuracy_predictor()(accuracy_features(space, space.to_onehot(indices))).numpy()


def dynast_check(space: OFASpace) -> dict[str, float]:
    with DATA.joinpath("ofa_dynast_w10_imagenet_top1.csv.gz").open("rb") as f:
        rows = pd.read_csv(f, compression="gzip")
    archs = [arch_of_row(row) for _, row in rows.iterrows()]
    predicted = predict(space, np.stack([space.indices(a) for a in archs]))
    measured = rows["top1_pct"].to_numpy()
    return {
        "rows": len(rows),
        "unique": len({a.key for a in archs}),
        "spearman": float(spearmanr(predicted, measured)[0]),
        "kendall": float(kendalltau(predicted, measured)[0]),
        "pearson": float(pearsonr(predicted, measured)[0]),
        "mean_offset": float(np.mean(predicted - measured)),
    }


def resolution_sweep(space: OFASpace, n: int, seed: int) -> list[tuple[int, float]]:
    base = space.sample(n, np.random.default_rng(seed))
    out = []
    for r_index, r in enumerate(space.resolutions):
        idx = base.copy()
        idx[:, 0] = r_index
        out.append((r, float(predict(space, idx).mean())))
    return out


def hill_climb(space: OFASpace, starts: int, seed: int) -> tuple[str, float]:
    """Best-improvement hill climb on the predictor from ``starts`` random architectures."""
    rng = np.random.default_rng(seed)
    best_key, best = "", -np.inf
    for start in space.sample(starts, rng):
        current, value = start, float(predict(space, start[None])[0])
        while True:
            near = space.neighbours(current)
            values = predict(space, near)
            if values.max() <= value:
                break
            current, value = near[int(values.argmax())], float(values.max())
        if value > best:
            best_key, best = space.to_key(current), value
    return best_key, best


def note10_interpolation(space: OFASpace, n: int, seed: int) -> list[tuple[int, float, float]]:
    from modnas.spaces.ofa.note10 import interpolate_by_area, note10_latency

    archs = [space.arch(i) for i in space.sample(n, np.random.default_rng(seed))]
    out = []
    for r, (lower, upper) in {176: (160, 192), 192: (176, 208), 208: (192, 224)}.items():
        at_r = [OFAArch(r, a.d, a.ks, a.e) for a in archs]
        exact = np.array([note10_latency(a) for a in at_r])
        guess = np.array([interpolate_by_area(a, lower, upper) for a in at_r])
        out.append((r, float(np.mean(np.abs(guess - exact) / exact) * 100), float(spearmanr(guess, exact)[0])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=64, help="random starts of the hill climb")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    full = OFASpace()
    check = dynast_check(full)
    print(f"1. vs DyNAS-T measured top-1 ({check['rows']} rows, {check['unique']} architectures): Spearman "
          f"{check['spearman']:.3f}, Kendall {check['kendall']:.3f}, Pearson {check['pearson']:.3f}, "
          f"predicted - measured {check['mean_offset']:+.2f} points on average")
    sweep = resolution_sweep(full, 500, args.seed)
    print("2. mean prediction of 500 random architectures per resolution: "
          + ", ".join(f"r{r} {v:.2f}" for r, v in sweep))
    valid = OFASpace(range(160, 225, 4))
    large = valid.extremes()[1]
    large_value = float(predict(valid, valid.parse(large)[None])[0])
    key, value = hill_climb(valid, args.starts, args.seed)
    print(f"3. r >= 160: the largest network {large} is predicted {large_value:.2f} %; the hill climb's best "
          f"({args.starts} starts) is {key} at {value:.2f} % (+{value - large_value:.2f} points)")
    rows = note10_interpolation(valid, 500, args.seed)
    print("4. Note10 at a table resolution interpolated from the resolutions two steps away (500 architectures): "
          + ", ".join(f"r{r} MAPE {mape:.2f} % Spearman {rho:.4f}" for r, mape, rho in rows))
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
