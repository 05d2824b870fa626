"""What measuring a search's queried architectures on a new device buys: zero-shot front vs. measured front.

A benchmark-mode run knows the true accuracy of its K queried architectures. On a device it never saw, its front
compares them by the MetaPredictor's latency (zero-shot). `modnas device measure --archs-from RUN` times those K
architectures on the device, and the front then compares them by measured latency (``front_latency: measured``).
This script simulates that for the 6 zero-shot test devices: each becomes a custom device whose profile holds its
10 reference latencies plus the table latencies of the run's queried architectures (what a measurement would
record), and both fronts are scored with the shared scorer. About 5 s per run on 2 CPU cores.

    python benchmarks/measured_queries_on_new_devices.py runs/benchmark-full/modnas/seed0 ...
"""

from __future__ import annotations

import argparse

import numpy as np

from modnas.evaluation import score_indices
from modnas.search.run import queried_architectures
from modnas.search.trained import TrainedSearch
from modnas.spaces.nb201 import index_to_string, to_index
from modnas.spaces.nb201.devices import REFERENCE_ARCH_INDICES, TEST_DEVICES, NB201Devices, registry
from modnas.tables.nb201 import nb201_tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="benchmark-mode run directories")
    args = parser.parse_args()
    references = {index_to_string(i) for i in REFERENCE_ARCH_INDICES}
    hv = np.zeros((len(args.runs), len(TEST_DEVICES), 2))
    for r, run in enumerate(args.runs):
        trained = TrainedSearch.load(run)
        rays = trained.preferences()
        queried = [a for a in queried_architectures(run) if a not in references]
        for d, name in enumerate(TEST_DEVICES):
            device = registry.get(name)
            measured = {a: float(nb201_tables.latency(name, int(to_index(a)))) for a in queried}
            profile = NB201Devices().register(f"{name}_measured", list(device.reference_latencies),
                                                extra_latencies=measured)
            hv[r, d, 0] = score_indices(trained.architectures(device, rays), name).hv
            hv[r, d, 1] = score_indices(trained.architectures(profile, rays), name).hv
    print(f"{len(args.runs)} run(s); mean HV over runs")
    print(f"{'device':>16} {'zero-shot':>9} {'K measured':>10}")
    for d, name in enumerate(TEST_DEVICES):
        print(f"{name:>16} {hv[:, d, 0].mean():9.4f} {hv[:, d, 1].mean():10.4f}")
    print(f"{'mean over 6':>16} {hv[..., 0].mean():9.4f} {hv[..., 1].mean():10.4f}")


if __name__ == "__main__":
    main()
