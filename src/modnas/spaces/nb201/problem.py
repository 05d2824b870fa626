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
from importlib import resources
from typing import Any

import numpy as np

from modnas.errors import ModnasError
from modnas.problem import EnumeratedReference, GroundTruth, Objective, Problem
from modnas.spaces.nb201 import encoding
from modnas.spaces.nb201.devices import (
    ENERGY_DEVICES,
    PROTOCOL_DEVICES,
    TRAIN_DEVICES,
    NB201Devices,
    latency_data,
)
from modnas.spaces.nb201.space import NB201Space, table_indices
from modnas.tables.nb201 import nb201_tables

#: Architectures at or above this error (%) are degenerate and excluded, as in the MODNAS protocol.
ERROR_CUTOFF = 90.0

OBJECTIVES: dict[str, Objective] = {
    "error": Objective("error", "%", "100 - NB201 CIFAR-10 test accuracy (200 epochs, mean over seeds)", True),
    "latency": Objective("latency", "ms", "device latency from the HELP tables"),
    "energy": Objective("energy", "mJ", "energy per inference from HW-NAS-Bench (eyeriss, fpga)"),
}


#: The shipped MetaPredictor (its README in the same folder gives the command that regenerates it).
PREDICTOR_CHECKPOINT = resources.files("modnas.spaces.nb201").joinpath("data", "nb201_latency_predictor.pt")


class NB201Truth(GroundTruth):
    """The bundled NB201 / HELP / HW-NAS-Bench tables."""

    objectives = OBJECTIVES
    error_cutoff = ERROR_CUTOFF

    def __init__(self, devices: NB201Devices) -> None:
        self.devices = devices

    def column(self, objective: str, device: str | None) -> np.ndarray:
        """True values of one objective for all 15,625 architectures in table order (NaN where unknown)."""
        if objective == "error":
            return 100.0 - nb201_tables.full_column("accuracy", "cifar10_test_acc_200ep")
        if device is None:
            raise ModnasError(f"{objective} needs a device")
        dev = self.devices.get(device)
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
        if objective == "energy":
            return self.devices.get(device).energy_metric is not None
        if objective == "latency":
            return self.devices.get(device).has_table
        return objective in self.objectives

    def describe(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        return [{"arch_index": int(i)} for i in table_indices(keys)]

    def details(self, arch: str) -> dict[str, Any]:
        """Everything the bundled tables know about one architecture (a string or a canonical table index)."""
        from modnas.tables.nb201 import HWNASBENCH_METRICS

        spec = arch.strip()
        index = int(spec) if spec.lstrip("-").isdigit() else int(encoding.to_index(spec))
        info: dict[str, Any] = {"arch_index": index, "arch_str": encoding.index_to_string(index)}
        for ds in ("cifar10", "cifar100", "imagenet16"):
            info[f"{ds}_test_acc_200ep"] = float(nb201_tables.accuracy(index, ds, 200))
        info["params_m"] = float(nb201_tables.params(index))
        info["flops_m"] = float(nb201_tables.flops(index))
        names = self.devices.names("all")
        info["latency_ms"] = {
            d: float(nb201_tables.latency(d, index)) for d in names if self.devices.get(d).has_table
        }
        hw = {m: float(nb201_tables.hwnasbench(m, index)) for m in HWNASBENCH_METRICS}
        info["hwnasbench"] = {m: (None if np.isnan(v) else v) for m, v in hw.items()}
        return info


def _exact_model(objective: str, device: str) -> Any:
    from modnas.spaces.nb201.energy import energy_model

    if objective != "energy":
        raise ModnasError(f"NB201 has no exact model of {objective!r}")
    return energy_model(device)


def _default_devices(objectives: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if "energy" in objectives:
        return ENERGY_DEVICES, ENERGY_DEVICES
    return TRAIN_DEVICES, PROTOCOL_DEVICES


def _load_predictor() -> Any:
    from modnas.hardware.predictor import load_predictor

    return load_predictor(PREDICTOR_CHECKPOINT, space="nb201")[0]


@functools.lru_cache(maxsize=1)
def make_problem() -> Problem:
    """The NB201 problem (one per process)."""
    space = NB201Space()
    devices = NB201Devices()
    truth = NB201Truth(devices)
    return Problem(
        name="nb201",
        space=space,
        truth=truth,
        devices=devices,
        reference=EnumeratedReference(space, truth),
        predictor_factory=_load_predictor,
        exact_models=_exact_model,
        default_devices=_default_devices,
        latency_data=latency_data,
        extras={
            "predictor_checkpoint": PREDICTOR_CHECKPOINT, "title": "NAS-Bench-201",
            "accuracy_source": "their NB201 CIFAR-10 table accuracy",
        },
    )


def score_indices(indices: np.ndarray | Sequence[int], device: str, objectives: Sequence[str] = ("error", "latency")):
    """The shared scorer on canonical NB201 table indices (what the tabular baselines record)."""
    from modnas.evaluation.scorer import score_keys

    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    return score_keys([encoding.index_to_string(int(i)) for i in idx], device, objectives, make_problem())
