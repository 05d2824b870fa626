"""Cost of benchmark mode's parts on one space: start-up (predictor, bounds, error model, hypernetwork
pretraining), one hypernetwork step, one evaluation of every device and one adaptive query round.

    python benchmarks/bench_benchmark_step.py --space ofa --steps 20 --threads 1

Prints the medians of ``--steps`` timed steps after ``--warmup`` untimed ones. Wall-clock numbers: run it on an
otherwise idle machine and say which one.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from modnas.config import load_config
from modnas.search.benchmark import BenchmarkSearch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="ofa")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hypernet", default="meta")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = load_config(None, {"space": args.space, "hypernet": args.hypernet})
    start = time.perf_counter()
    search = BenchmarkSearch(config)
    startup = time.perf_counter() - start
    for _ in range(args.warmup):
        search.step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        search.step()
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    search.evaluate()
    evaluation = time.perf_counter() - start
    start = time.perf_counter()
    search.query_round()
    query_round = time.perf_counter() - start
    params = sum(p.numel() for p in search.params)
    print(f"space {args.space}, hypernet {args.hypernet} ({params:,} parameters), {args.threads} thread(s)")
    print(f"start-up {startup:.1f} s; step {statistics.median(times):.3f} s (median of {args.steps}); "
          f"evaluation {evaluation:.1f} s; query round {query_round:.1f} s")
    rounds = min(config.epochs, -(-(config.query_budget - config.initial_queries) // config.queries_per_round))
    total = startup + config.epochs * (config.steps_per_epoch * statistics.median(times) + evaluation)
    total += rounds * query_round
    print(f"estimated default run ({config.epochs} x {config.steps_per_epoch} steps): {total / 60:.1f} min")


if __name__ == "__main__":
    main()
