"""Reference fronts of the GPT-S benchmark: per device, the best (perplexity, latency) trade-offs a large offline
search on the ground truth finds, with explicit normalisation bounds. Writes ``src/modnas/spaces/gpt/data/
gpt-s_reference_fronts.json`` (read by :class:`modnas.problem.StoredReference`).

The same three stages as the OFA reference (``benchmarks/ofa_reference_fronts.py``, whose hill climb and
stages this script reuses): a seeded uniform sample plus the two extremes, per-ray Chebyshev hill climbs over
one-move neighbours, and a Pareto local search on the union until the front stops changing. Bounds: the lowest
and highest perplexity and latency of everything evaluated (a table sum is not exactly monotone: timing noise can
make a larger block a little faster), widened to the extremes' values.

``--check`` also reports convergence on two devices: the reference HV with the sample, the rays and the rounds
doubled under another seed, in the same bounds.

    python benchmarks/gpt_reference_fronts.py [--sample 3000] [--rays 24] [--pls-rounds 10] [--check]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import numpy as np
from ofa_reference_fronts import Evaluator, _Fronts, search_stages

from modnas.evaluation.pareto import hypervolume
from modnas.problem import front_normalisation, get_problem, write_reference
from modnas.spaces.gpt.problem import REFERENCE_FILE

OBJECTIVES = ("error", "latency")


def reference_for(space, truth, device: str, errors: dict[str, float], sample: int, rays: int,
                  pls_rounds: int, seed: int) -> tuple[Evaluator, dict[str, float], np.ndarray, np.ndarray]:  # fmt: skip
    """The three stages for one device; returns the evaluator, the HV after each stage and the bounds."""
    evaluate = Evaluator(truth, device, errors)
    pool = [*space.extremes(), *space.keys(space.sample(sample, np.random.default_rng(seed)))]
    values = evaluate(pool)
    low, high = values.min(axis=0), values.max(axis=0)
    stages = search_stages(space, evaluate, pool, values, low, high - low, rays, pls_rounds)
    every = evaluate(list(evaluate.latencies))
    lower, upper = every.min(axis=0), every.max(axis=0)
    hv = {stage: hypervolume((p - lower) / (upper - lower), 1.0) for stage, p in stages.items()}
    return evaluate, hv, lower, upper


def main() -> None:
    problem = get_problem("gpt-s")
    _, evaluation = problem.default_devices(OBJECTIVES)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=3000)
    parser.add_argument("--rays", type=int, default=24)
    parser.add_argument("--pls-rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--devices", nargs="+", default=list(evaluation))
    parser.add_argument("--out", default=str(REFERENCE_FILE))
    parser.add_argument("--check", action="store_true", help="also report convergence on two devices")
    args = parser.parse_args()
    space, truth, start = problem.space, problem.truth, time.perf_counter()
    errors: dict[str, float] = {}
    fronts = _Fronts()
    for device in args.devices:
        t0 = time.perf_counter()
        evaluate, hv, lower, upper = reference_for(space, truth, device, errors, args.sample, args.rays,
                                                   args.pls_rounds, args.seed)  # fmt: skip
        keys, pts = evaluate.front()
        fronts.norms[(device, OBJECTIVES)] = front_normalisation(device, OBJECTIVES, keys, pts, lower, upper,
                                                                 exact=False)  # fmt: skip
        print(f"{device}: {len(keys)} front points from {len(evaluate.latencies)} evaluations; HV after "
              + ", ".join(f"{stage} {value:.4f}" for stage, value in hv.items())
              + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
    given = [a for a in sys.argv[1:]]
    given = [("OUT" if i and given[i - 1] == "--out" else a) for i, a in enumerate(given)]
    command = "python benchmarks/gpt_reference_fronts.py " + " ".join(shlex.quote(a) for a in given)
    write_reference(fronts, "gpt-s", [(d, OBJECTIVES) for d in args.devices], args.out, command.strip())
    print(f"wrote {args.out} ({time.perf_counter() - start:.0f} s)")
    if args.check:
        for device in args.devices[:1] + args.devices[-1:]:
            base = fronts.norms[(device, OBJECTIVES)]
            evaluate, hv, lower, upper = reference_for(space, truth, device, errors, 2 * args.sample, 2 * args.rays,
                                                       2 * args.pls_rounds, args.seed + 1)  # fmt: skip
            keys, pts = evaluate.front()
            doubled = hypervolume((pts - base.lower) / (base.upper - base.lower), 1.0)
            print(f"check {device}: reference HV {base.true_hv:.5f}; doubled sample, rays and rounds (another seed) "
                  f"{doubled:.5f} in the same bounds")


if __name__ == "__main__":
    main()
