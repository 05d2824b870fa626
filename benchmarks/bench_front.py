"""How long ``modnas front`` takes for a device the run never saw, once the run is loaded.

Loads a finished run (``TrainedSearch.load``, which warms the networks up), makes a new device from a built-in
one (its reference latencies scaled unevenly, another name, no latency table: what a user's measured profile looks like to the
front) and times ``TrainedSearch.front`` for it over 24 rays: the first call, then the median of ``--repeats``.

    python benchmarks/bench_front.py runs/ofa0 --like note10
    python benchmarks/bench_front.py runs/ofa0 --like note10 --refine-rounds 0   # the hypernetwork's picks
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import numpy as np

from modnas.search.trained import TrainedSearch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--like", default="note10", help="built-in device the new one is derived from")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--refine-rounds", type=int, default=None,
                        help="as `modnas front --refine-rounds` (default: the run's setting)")
    args = parser.parse_args()
    start = time.perf_counter()
    trained = TrainedSearch.load(args.run)
    if args.refine_rounds is not None:
        trained.config = trained.config.model_copy(update={"refine_rounds": args.refine_rounds})
    loaded = time.perf_counter() - start
    base = trained.device(args.like)
    # other reference latencies (so another embedding), no table: a profile measured on the user's machine
    latencies = np.asarray(base.reference_latencies) * np.linspace(0.9, 1.1, len(base.reference_latencies))
    new = dataclasses.replace(base, name="unseen_device", reference_latencies=tuple(latencies.tolist()),
                              has_table=False, extra_latencies={})
    times = []
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        rows = trained.front(new)
        times.append(1000 * (time.perf_counter() - start))
    print(f"{args.run} ({trained.config.space}, refine_rounds {trained.config.refine_rounds}): loaded in "
          f"{loaded:.1f} s; front for a new device: first call "
          f"{times[0]:.1f} ms, median {statistics.median(times[1:]):.1f} ms of {args.repeats} "
          f"({len(rows)} distinct architectures)")


if __name__ == "__main__":
    main()
