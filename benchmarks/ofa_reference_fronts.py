"""Reference fronts of the OFA benchmark: per device, the best (error, latency) trade-offs a large offline search
on the ground truth finds, with explicit normalisation bounds. Writes ``src/modnas/spaces/ofa/data/
ofa_reference_fronts.json`` (read by :class:`modnas.problem.StoredReference`).

Per device:
1. a seeded uniform sample of the space plus its two extreme architectures;
2. per-ray optima: for ``--rays`` weight vectors, a best-improvement hill climb over one-move neighbours on the
   weighted Chebyshev scalarisation of the normalised objectives, from the sample's best for that ray;
3. a Pareto local search on the union: every front member's one-move neighbours are evaluated and the front is
   recomputed, until it no longer changes (or ``--pls-rounds``).

Bounds: latency from the extremes (the ground truth is monotone, so the smallest network is the fastest and the
largest the slowest); error from the lowest error found and the highest among the sample and the extremes.

``--check`` also reports convergence on two devices: the reference HV after each stage, and with the sample and
the rays doubled (the reference is converged when doubling no longer moves it).

    python benchmarks/ofa_reference_fronts.py [--sample 3000] [--rays 24] [--pls-rounds 10] [--check]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import numpy as np

from modnas.evaluation.pareto import hypervolume, nondominated_mask
from modnas.problem import front_normalisation, write_reference
from modnas.spaces.ofa.hardware import TEST_DEVICES, TRAIN_DEVICES
from modnas.spaces.ofa.problem import BENCHMARK_RESOLUTIONS, REFERENCE_FILE, OFATruth
from modnas.spaces.ofa.space import OFASpace


class Evaluator:
    """The ground truth with caches (the error is shared by all devices)."""

    def __init__(self, truth: OFATruth, device: str, errors: dict[str, float]) -> None:
        self.truth, self.device, self.errors = truth, device, errors
        self.latencies: dict[str, float] = {}

    def __call__(self, keys: list[str]) -> np.ndarray:
        keys = list(dict.fromkeys(keys))
        new_err = [k for k in keys if k not in self.errors]
        if new_err:
            self.errors.update(zip(new_err, self.truth.error(new_err).tolist()))
        new_lat = [k for k in keys if k not in self.latencies]
        if new_lat:
            self.latencies.update(zip(new_lat, self.truth.latency(new_lat, self.device).tolist()))
        return np.array([[self.errors[k], self.latencies[k]] for k in keys])

    def front(self) -> tuple[list[str], np.ndarray]:
        keys = list(self.latencies)
        values = self(keys)
        mask = nondominated_mask(values, keep_duplicates=False)
        return [k for k, m in zip(keys, mask) if m], values[mask]


def neighbour_keys(space: OFASpace, key: str) -> list[str]:
    return space.keys(space.neighbours(space.parse(key)))


def climb(space: OFASpace, evaluate: Evaluator, start: str, weight: np.ndarray, low: np.ndarray, span: np.ndarray) -> str:
    """Best-improvement hill climb on the weighted Chebyshev value of the normalised objectives."""

    def value(v: np.ndarray) -> np.ndarray:
        return np.max(weight * (v - low) / span, axis=-1)

    current, best = start, float(value(evaluate([start]))[0])
    while True:
        near = neighbour_keys(space, current)
        values = value(evaluate(near))
        i = int(np.argmin(values))
        if values[i] >= best - 1e-12:
            return current
        current, best = near[i], float(values[i])


def search_stages(space: OFASpace, evaluate: Evaluator, pool: list[str], values: np.ndarray, low: np.ndarray,
                  span: np.ndarray, rays: int, pls_rounds: int) -> dict[str, np.ndarray]:  # fmt: skip
    """The front after each stage, from an evaluated ``pool``: the pool itself, per-ray Chebyshev hill climbs from
    the pool's best for each of ``rays`` weight vectors (objectives scaled by ``low`` and ``span``), and a Pareto
    local search over one-move neighbours until the front stops changing (or ``pls_rounds``)."""
    stages: dict[str, np.ndarray] = {"sample": evaluate.front()[1]}
    angles = np.linspace(0.02, np.pi / 2 - 0.02, rays)
    for w in np.stack([np.cos(angles), np.sin(angles)], axis=1):
        scal = np.max(w * (values - low) / span, axis=1)
        climb(space, evaluate, pool[int(np.argmin(scal))], w, low, span)
    stages["rays"] = evaluate.front()[1]
    seen: set[str] = set()
    for _ in range(pls_rounds):
        keys, _ = evaluate.front()
        todo = [k for k in keys if k not in seen]
        if not todo:
            break
        for k in todo:
            evaluate(neighbour_keys(space, k))
            seen.add(k)
    stages["pareto local search"] = evaluate.front()[1]
    return stages


def reference_for(space: OFASpace, truth: OFATruth, device: str, errors: dict[str, float], sample: int, rays: int,
                  pls_rounds: int, seed: int) -> tuple[Evaluator, dict[str, float], np.ndarray, np.ndarray]:
    """Run the three stages for one device; returns the evaluator, the HV after each stage and the bounds."""
    evaluate = Evaluator(truth, device, errors)
    small, large = space.extremes()
    pool = [small, large, *space.keys(space.sample(sample, np.random.default_rng(seed)))]
    values = evaluate(pool)
    lat_low, lat_high = values[0, 1], values[1, 1]
    err_high = float(values[:, 0].max())
    low, span = np.array([values[:, 0].min(), lat_low]), np.array([err_high - values[:, 0].min(), lat_high - lat_low])
    stages = search_stages(space, evaluate, pool, values, low, span, rays, pls_rounds)
    pts = stages["pareto local search"]
    lower = np.array([pts[:, 0].min(), lat_low])
    upper = np.array([max(err_high, float(pts[:, 0].max())), lat_high])
    # every stage's HV in the final bounds, so that the numbers compare
    hv = {stage: hypervolume(np.clip((p - lower) / (upper - lower), 0, None), 1.0) for stage, p in stages.items()}
    return evaluate, hv, lower, upper


class _Fronts:
    """A :class:`~modnas.problem.Reference` over the fronts just computed (what ``write_reference`` reads)."""

    def __init__(self) -> None:
        self.norms: dict = {}

    def normalisation(self, device: str, objectives: tuple[str, ...]):  # noqa: ANN201
        return self.norms[(device, tuple(objectives))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=3000)
    parser.add_argument("--rays", type=int, default=24)
    parser.add_argument("--pls-rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--devices", nargs="+", default=list(TRAIN_DEVICES + TEST_DEVICES))
    parser.add_argument("--out", default=str(REFERENCE_FILE))
    parser.add_argument("--check", action="store_true", help="also report convergence on two devices")
    args = parser.parse_args()
    space, start = OFASpace(BENCHMARK_RESOLUTIONS), time.perf_counter()
    truth = OFATruth(space)
    errors: dict[str, float] = {}
    fronts = _Fronts()
    for device in args.devices:
        t0 = time.perf_counter()
        evaluate, hv, lower, upper = reference_for(space, truth, device, errors, args.sample, args.rays,
                                                   args.pls_rounds, args.seed)  # fmt: skip
        keys, pts = evaluate.front()
        fronts.norms[(device, ("error", "latency"))] = front_normalisation(
            device, ("error", "latency"), keys, pts, lower, upper, exact=False
        )
        print(f"{device}: {len(keys)} front points from {len(evaluate.latencies)} evaluations; HV after "
              + ", ".join(f"{stage} {value:.4f}" for stage, value in hv.items())
              + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0].replace("\\", "/"), *sys.argv[1:]])
    write_reference(fronts, "ofa", [(d, ("error", "latency")) for d in args.devices], args.out, command)
    print(f"wrote {args.out} ({time.perf_counter() - start:.0f} s)")
    if args.check:
        for device in ("titan_rtx_1", "note10"):
            base = fronts.norms[(device, ("error", "latency"))]
            evaluate, hv, lower, upper = reference_for(space, truth, device, errors, 2 * args.sample, 2 * args.rays,
                                                       2 * args.pls_rounds, args.seed + 1)  # fmt: skip
            keys, pts = evaluate.front()
            doubled = hypervolume((pts - base.lower) / (base.upper - base.lower), 1.0)
            print(f"check {device}: reference HV {base.true_hv:.5f}; doubled sample, rays and rounds (another seed) "
                  f"{doubled:.5f} in the same bounds")


if __name__ == "__main__":
    main()
