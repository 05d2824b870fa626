"""OFA MobileNetV3 as a :class:`~modnas.problem.Problem`: a *surrogate* benchmark on 13 devices.

* Space: :class:`~modnas.spaces.ofa.space.OFASpace` at resolutions 160-224 (:data:`BENCHMARK_RESOLUTIONS`): the
  accuracy predictor was never trained below 160, and an optimiser would flock there.
* Truth: ``error`` = 100 - the OFA authors' predicted ImageNet top-1 (a surrogate, not a measurement);
  ``latency`` on the 12 HELP GPU settings = HELP's measurement where there is one, else the monotone per-setting
  surrogate (:mod:`modnas.spaces.ofa.latency`); on the Note10 phone, the OFA look-up table (interpolated in the
  image area between its resolutions).
* Devices: :class:`~modnas.spaces.ofa.hardware.OFADevices` (11 GPU settings train; ``titan_rtx_64`` and
  ``note10`` are zero-shot).
* Reference: fronts and bounds computed offline by ``benchmarks/ofa_reference_fronts.py`` and shipped in
  ``data/ofa_reference_fronts.json`` (:class:`~modnas.problem.StoredReference`).
* Predictor: MODNAS's latency net in each device's reference-normalised units.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np
import torch

from modnas.errors import ModnasError
from modnas.problem import GroundTruth, Objective, Problem, StoredReference
from modnas.spaces.ofa.arch import OFAArch
from modnas.spaces.ofa.encoding import accuracy_features
from modnas.spaces.ofa.hardware import (
    TEST_DEVICES,
    TRAIN_DEVICES,
    OFADevices,
    OFALatencyPredictor,
    latency_data,
    predictor_from_config,
)
from modnas.spaces.ofa.latency import GPU_SETTINGS, latency
from modnas.spaces.ofa.predictors import accuracy_predictor
from modnas.spaces.ofa.space import OFASpace

#: The resolutions the benchmark searches: where the accuracy surrogate was trained.
BENCHMARK_RESOLUTIONS: tuple[int, ...] = tuple(range(160, 225, 4))
REFERENCE_FILE = resources.files("modnas.spaces.ofa").joinpath("data", "ofa_reference_fronts.json")

OBJECTIVES: dict[str, Objective] = {
    "error": Objective("error", "%", "100 - predicted ImageNet top-1 (OFA accuracy predictor; a surrogate)", True),
    "latency": Objective("latency", "ms", "HELP GPU measurements or their monotone surrogate; Note10 look-up table"),
}


class OFATruth(GroundTruth):
    """The surrogate ground truth of the OFA benchmark (see the module docstring)."""

    objectives = OBJECTIVES
    error_cutoff = 100.0  # no degenerate architectures in this space

    def __init__(self, space: OFASpace) -> None:
        self.space = space

    def error(self, keys: Sequence[str]) -> np.ndarray:
        """100 - predicted top-1 (%), batched."""
        if not len(keys):
            return np.zeros(0)
        onehot = self.space.to_onehot(self.space.parse_many(list(keys)))
        with torch.no_grad():
            return 100.0 - 100.0 * accuracy_predictor()(accuracy_features(self.space, onehot)).double().numpy()

    def latency(self, keys: Sequence[str], device: str) -> np.ndarray:
        if device in GPU_SETTINGS:
            return latency(list(keys), device)
        if device == "note10":
            from modnas.spaces.ofa.note10 import note10_latency_any

            return np.array([note10_latency_any(OFAArch.from_key(k)) for k in keys], dtype=np.float64)
        raise ModnasError(f"device {device!r} has no OFA latency ground truth, so it cannot be scored")

    def evaluate(self, keys: Sequence[str], device: str | None, objectives: Sequence[str]) -> np.ndarray:
        columns = []
        for objective in objectives:
            if objective == "error":
                columns.append(self.error(keys))
            elif objective == "latency":
                if device is None:
                    raise ModnasError("latency needs a device")
                columns.append(self.latency(keys, device))
            else:
                raise ModnasError(f"unknown objective {objective!r}; choose from: {', '.join(OBJECTIVES)}")
        return np.stack(columns, axis=1) if columns else np.zeros((len(keys), 0))

    def supports(self, objective: str, device: str) -> bool:
        if objective == "latency":
            return device in GPU_SETTINGS or device == "note10"
        return objective in self.objectives

    def details(self, arch: str) -> dict[str, Any]:
        from modnas.spaces.ofa.network import count_arch_parameters, count_macs

        key = self.space.resolve(arch)
        spec = OFAArch.from_key(key)
        info: dict[str, Any] = {"arch_str": key, **spec.to_dict()}
        info["predicted_top1_pct"] = float(100.0 - self.error([key])[0])
        info["params_m"] = count_arch_parameters(spec) / 1e6
        info["macs_m"] = count_macs(spec) / 1e6
        info["latency_ms"] = {d: float(self.latency([key], d)[0]) for d in (*GPU_SETTINGS, "note10")}
        return info


def _default_devices(objectives: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if len(objectives) > 2:
        raise ModnasError("the OFA benchmark has the objectives error and latency only")
    return TRAIN_DEVICES, TRAIN_DEVICES + TEST_DEVICES


@functools.lru_cache(maxsize=1)
def make_problem() -> Problem:
    """The OFA benchmark problem (one per process)."""
    space = OFASpace(BENCHMARK_RESOLUTIONS)
    if not REFERENCE_FILE.is_file():
        raise ModnasError(
            "the OFA reference fronts are missing from the installed package; "
            "regenerate them with `python benchmarks/ofa_reference_fronts.py`"
        )
    return Problem(
        name="ofa",
        space=space,
        truth=OFATruth(space),
        devices=OFADevices(),
        reference=StoredReference(REFERENCE_FILE),
        predictor_factory=lambda: OFALatencyPredictor(space),
        default_devices=_default_devices,
        latency_data=latency_data,
        extras={
            "title": "OFA MobileNetV3 (surrogate benchmark)",
            # `modnas predictor train/evaluate --space ofa` build HELP-shaped latency nets, not MetaPredictors
            "predictor_model": predictor_from_config,
            "accuracy_source": "their ImageNet top-1 as OFA's accuracy predictor predicts it (a surrogate)",
        },
        # a step costs about 5x an NB201 step (152 options instead of 30); half of NB201's steps keep a default run
        # near 10 minutes on 2 CPU cores (docs/benchmarks.md, OFA: the steps per epoch); the Gaussian-process error
        # model ranks the surrogate's accuracy far better from 200 queries, and with it refined picks gain on the
        # training devices (both chosen on them)
        search_defaults={"steps_per_epoch": 50, "error_predictor.kind": "gp", "refine_rounds": 20},
        # one-shot on a CPU: Fashion-MNIST, a narrow supernet on 32-pixel inputs and a short schedule, so that the
        # default run stays within about 15 minutes on 2 cores (docs/benchmarks.md, OFA one-shot)
        oneshot_defaults={
            "epochs": 6,
            "oneshot.dataset": "fashion-mnist",
            "oneshot.train_limit": 1536,
            "oneshot.batch_size": 32,
            "oneshot.lr": 0.05,
            "oneshot.weight_decay": 4e-5,
            "oneshot.warmup_epochs": 1,
            "oneshot.supernet": dict(OFASpace.SUPERNET_DEFAULTS),
        },
    )
