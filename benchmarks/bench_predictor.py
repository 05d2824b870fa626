"""Speed of the shipped MetaPredictor: one forward pass for 1,000 architectures on one device (target < 50 ms).

Usage: python benchmarks/bench_predictor.py [--n 1000] [--repeats 50] [--threads N]
Prints one line per figure (median over repeats, after warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from modnas.hardware.predictor import load_predictor
from modnas.spaces.nb201 import sample, to_onehot
from modnas.spaces.nb201.devices import registry


def median_ms(fn, repeats: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, _ = load_predictor()
    onehot = to_onehot(sample(args.n, np.random.default_rng(0)))
    emb = torch.tensor(registry.get("fpga").embedding)[None]
    with torch.inference_mode():
        fwd = median_ms(lambda: model(onehot, emb), args.repeats)
    grad_onehot = onehot.clone().requires_grad_(True)
    fwd_bwd = median_ms(lambda: model(grad_onehot, emb).sum().backward(), args.repeats)
    print(f"predictor forward, {args.n} archs x 1 device: {fwd:.1f} ms  (threads={torch.get_num_threads()})")
    print(f"predictor forward+backward to the one-hot, {args.n} archs: {fwd_bwd:.1f} ms")


if __name__ == "__main__":
    main()
