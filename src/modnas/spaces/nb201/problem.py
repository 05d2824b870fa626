"""NAS-Bench-201 as a :class:`~modnas.problem.Problem`: the bundled tables as ground truth, the enumerated true
fronts as reference, HELP's 27 latency settings as devices and the shipped MetaPredictor.

MODNAS NB201 protocol, for one device: objectives ``error`` = 100 - CIFAR-10 test accuracy after 200 epochs,
the device ``latency`` (ms, HELP tables) and optionally ``energy`` (mJ, HW-NAS-Bench, eyeriss and fpga only);
architectures with error >= 90 % (degenerate cells) or a missing value are dropped; every objective is min-max
normalised over all remaining architectures of the space; the true front is that of all of them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from modnas.errors import ModnasError
from modnas.problem import DeviceSet, EnumeratedReference, GroundTruth, Objective, Problem
from modnas.spaces.nb201 import encoding
from modnas.spaces.nb201.space import NB201Space, table_indices
from modnas.tables.nb201 import nb201_tables

#: Architectures at or above this error (%) are degenerate and excluded, as in the MODNAS protocol.
ERROR_CUTOFF = 90.0

OBJECTIVES: dict[str, Objective] = {
    "error": Objective("error", "%", "100 - NB201 CIFAR-10 test accuracy (200 epochs, mean over seeds)", True),
    "latency": Objective("latency", "ms", "device latency from the HELP tables"),
    "energy": Objective("energy", "mJ", "energy per inference from HW-NAS-Bench (eyeriss, fpga)"),
}


class NB201Truth(GroundTruth):
    """The bundled NB201 / HELP / HW-NAS-Bench tables."""

    objectives = OBJECTIVES
    error_cutoff = ERROR_CUTOFF

    def column(self, objective: str, device: str | None) -> np.ndarray:
        """True values of one objective for all 15,625 architectures in table order (NaN where unknown)."""
        from modnas.hardware.devices import ENERGY_DEVICES, registry

        if objective == "error":
            return 100.0 - nb201_tables.full_column("accuracy", "cifar10_test_acc_200ep")
        if device is None:
            raise ModnasError(f"{objective} needs a device")
        dev = registry.get(device)
        if objective == "latency":
            if not dev.has_table:
                raise ModnasError(f"device {device!r} has no ground-truth latency table, so it cannot be scored")
            return nb201_tables.full_column("latency", device)
        if objective == "energy":
            if dev.energy_metric is None:
                raise ModnasError(
                    f"no energy data for device {device!r}; energy exists for: {', '.join(ENERGY_DEVICES)}"
                )
            return nb201_tables.full_column("hwnasbench", dev.energy_metric)
        raise ModnasError(f"unknown objective {objective!r}; choose from: {', '.join(OBJECTIVES)}")

    def evaluate(self, keys: Sequence[str], device: str | None, objectives: Sequence[str]) -> np.ndarray:
        idx = table_indices(keys)
        if len(objectives) == 0:
            return np.zeros((len(idx), 0))
        return np.stack([self.column(o, device)[idx] for o in objectives], axis=1)

    def supports(self, objective: str, device: str) -> bool:
        from modnas.hardware.devices import registry

        if objective == "energy":
            return registry.get(device).energy_metric is not None
        if objective == "latency":
            return registry.get(device).has_table
        return objective in self.objectives

    def describe(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        return [{"arch_index": int(i)} for i in table_indices(keys)]


class NB201Devices(DeviceSet):
    """HELP's 27 NB201 latency settings (13 train, 6 zero-shot test, 8 other) and the user's profiles."""

    def get(self, name: str) -> Any:
        from modnas.hardware.devices import registry
        from modnas.hardware.profiles import ensure_stored_devices_loaded

        ensure_stored_devices_loaded()  # the user's own measured devices may be named too
        return registry.get(name)

    def names(self, split: str = "all") -> tuple[str, ...]:
        from modnas.hardware.devices import registry

        return registry.names(split)  # type: ignore[arg-type]

    @property
    def embedding_dim(self) -> int:
        from modnas.hardware.devices import EMBEDDING_DIM

        return EMBEDDING_DIM

    def known_latencies(self, device: Any, keys: Sequence[str]) -> np.ndarray:
        return device.known_latencies(table_indices(keys))


def _exact_model(objective: str, device: str) -> Any:
    from modnas.hardware.energy import energy_model

    if objective != "energy":
        raise ModnasError(f"NB201 has no exact model of {objective!r}")
    return energy_model(device)


def _default_devices(objectives: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from modnas.hardware.devices import ENERGY_DEVICES, PROTOCOL_DEVICES, TRAIN_DEVICES

    if "energy" in objectives:
        return ENERGY_DEVICES, ENERGY_DEVICES
    return TRAIN_DEVICES, PROTOCOL_DEVICES


def _load_predictor() -> Any:
    from modnas.hardware.predictor import load_predictor

    return load_predictor()[0]


@functools.lru_cache(maxsize=1)
def make_problem() -> Problem:
    """The NB201 problem (one per process)."""
    space = NB201Space()
    truth = NB201Truth()
    return Problem(
        name="nb201",
        space=space,
        truth=truth,
        devices=NB201Devices(),
        reference=EnumeratedReference(space, truth),
        predictor_factory=_load_predictor,
        exact_models=_exact_model,
        default_devices=_default_devices,
    )


def score_indices(indices: np.ndarray | Sequence[int], device: str, objectives: Sequence[str] = ("error", "latency")):
    """The shared scorer on canonical NB201 table indices (what the tabular baselines record)."""
    from modnas.evaluation.scorer import score_keys

    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    return score_keys([encoding.index_to_string(int(i)) for i in idx], device, objectives, make_problem())
