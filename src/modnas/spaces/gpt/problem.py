"""GPT-S as a :class:`~modnas.problem.Problem`: a *surrogate* benchmark with latency tables modnas measured.

* Space: :class:`~modnas.spaces.gpt.space.GPTSpace` of HW-GPT-Bench's GPT-S (about 1.7e12 architectures).
* Truth: ``error`` is the perplexity HW-GPT-Bench's surrogate predicts (OpenWebText, weight-inherited subnets of
  its supernet; a surrogate, not a measurement); ``latency`` is a device's table sum
  (:mod:`modnas.spaces.gpt.hardware`); ``energy`` the same on the GPU settings whose tables have NVML energy.
* Devices: the measured CPU and GPU settings (:data:`~modnas.spaces.gpt.hardware.DEVICES`).
* Reference: fronts and bounds computed offline by ``benchmarks/gpt_reference_fronts.py`` and shipped in
  ``data/gpt-s_reference_fronts.json``.
* Predictor: a MetaPredictor trained by modnas on the training settings (``data/gpt-s_latency_predictor.pt``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np

from modnas.errors import ModnasError
from modnas.problem import GroundTruth, Normalisation, Objective, Problem, Reference, StoredReference
from modnas.spaces.gpt.arch import GPT_S, GPT_TINY, GPTArch
from modnas.spaces.gpt.space import GPTSpace

REFERENCE_FILE = resources.files("modnas.spaces.gpt").joinpath("data", "gpt-s_reference_fronts.json")

OBJECTIVES: dict[str, Objective] = {
    "error": Objective("error", "ppl", "perplexity on OpenWebText as HW-GPT-Bench's GPT-S surrogate predicts it", True),
    "latency": Objective("latency", "ms", "sum of the device's measured per-block latency table"),
    "energy": Objective("energy", "mJ", "sum of the device's per-block NVML energy table (GPU settings)"),
}


class GPTTruth(GroundTruth):
    """The surrogate ground truth of the GPT-S benchmark (see the module docstring)."""

    objectives = OBJECTIVES

    def __init__(self, space: GPTSpace, devices: Any) -> None:
        self.space, self.devices = space, devices

    def _archs(self, keys: Sequence[str]) -> list[GPTArch]:
        return [GPTArch.from_key(k, self.space.variant) for k in keys]

    def error(self, keys: Sequence[str]) -> np.ndarray:
        """Predicted perplexity, batched (GPT-S only: no surrogate exists for a scaled-down space)."""
        from modnas.spaces.gpt.surrogates import predict_perplexity

        if self.space.variant != GPT_S:  # unknown: only the supernet rates these (`modnas evaluate --inherited`)
            return np.full(len(keys), np.nan)
        return predict_perplexity(self._archs(keys)) if len(keys) else np.zeros(0)

    def _tables(self) -> tuple[str, ...]:
        from modnas.spaces.gpt.hardware import shipped_devices

        return shipped_devices(self.space.name)

    def latency(self, keys: Sequence[str], device: str, what: str = "latency") -> np.ndarray:
        from modnas.spaces.gpt.hardware import load_table

        if device not in self._tables():
            dev = self.devices.get(device)  # a user's device: its table, else its own measurements where it has them
            table = dev.latency_table
            if table is not None and (what == "latency" or table.energy_mj):
                return table.predict(self._archs(keys), what)
            if what == "latency":
                return self.devices.known_latencies(dev, list(keys))
            raise ModnasError(f"device {device!r} has no {what} table, so it cannot be scored")
        return load_table(device, self.space.name).predict(self._archs(keys), what)

    def evaluate(self, keys: Sequence[str], device: str | None, objectives: Sequence[str]) -> np.ndarray:
        columns = []
        for objective in objectives:
            if objective == "error":
                columns.append(self.error(keys))
            elif objective in ("latency", "energy"):
                if device is None:
                    raise ModnasError(f"{objective} needs a device")
                columns.append(self.latency(keys, device, objective))
            else:
                raise ModnasError(f"unknown objective {objective!r}; choose from: {', '.join(OBJECTIVES)}")
        return np.stack(columns, axis=1) if columns else np.zeros((len(keys), 0))

    def supports(self, objective: str, device: str) -> bool:
        from modnas.spaces.gpt.hardware import load_table

        if objective in ("latency", "energy") and device not in self._tables():
            try:
                table = self.devices.get(device).latency_table  # a user's device measured as a table
            except ModnasError:
                return False
            return table is not None and (objective == "latency" or bool(table.energy_mj))
        if objective == "latency":
            return True
        if objective == "energy":
            return bool(load_table(device, self.space.name).energy_mj)
        return objective in self.objectives

    def details(self, arch: str) -> dict[str, Any]:
        from modnas.spaces.gpt.network import count_parameters, flops_per_token
        from modnas.spaces.gpt.surrogates import predict_memory_mb

        key = self.space.resolve(arch)
        spec = GPTArch.from_key(key, self.space.variant)
        info: dict[str, Any] = {"arch_str": key, **spec.to_dict()}
        if self.space.variant == GPT_S:
            info["predicted_perplexity"] = float(self.error([key])[0])
            info["predicted_gpu_memory_mb_fp16"] = float(predict_memory_mb([spec], "float16")[0])
        info["params_m"] = count_parameters(spec) / 1e6
        info["mflops_per_token"] = flops_per_token(spec) / 1e6
        info["latency_ms"] = {d: float(self.latency([key], d)[0]) for d in self._tables()}
        return info


class _ShippedReference(Reference):
    """The shipped reference fronts, read on first use (the script that computes them needs the problem)."""

    @functools.cached_property
    def stored(self) -> StoredReference:
        if not REFERENCE_FILE.is_file():
            raise ModnasError(
                "the GPT-S reference fronts are missing from the installed package; "
                "regenerate them with `python benchmarks/gpt_reference_fronts.py`"
            )
        return StoredReference(REFERENCE_FILE)

    def devices(self) -> tuple[str, ...]:
        """Devices with a stored front."""
        return self.stored.devices()

    def normalisation(self, device: str, objectives: tuple[str, ...]) -> Normalisation:
        return self.stored.normalisation(device, objectives)


class LatencyBoundsReference(Reference):
    """Bounds without a reference front, for a space without quality ground truth (gpt-tiny): the quality is a
    cross-entropy already normalised to [0, 1] (0 to chance level), the latency spans the device's table sums
    over :meth:`~modnas.problem.Problem.bound_candidates`."""

    def __init__(self, space: GPTSpace, truth: GPTTruth) -> None:
        self.space, self.truth = space, truth
        self._cache: dict[str, Normalisation] = {}

    def normalisation(self, device: str, objectives: tuple[str, ...]) -> Normalisation:
        if tuple(objectives) != ("error", "latency"):
            raise ModnasError(f"{self.space.name} is scored by (error, latency) only, not {', '.join(objectives)}")
        if device not in self._cache:
            extremes = self.space.parse_many(list(self.space.extremes()))
            drawn = self.space.sample(4096, np.random.default_rng(0))
            keys = self.space.keys(np.concatenate([extremes, drawn]))
            latency = self.truth.latency(keys, device)
            empty = np.zeros((0, 2))
            self._cache[device] = Normalisation(
                device=device, objectives=("error", "latency"), lower=np.array([0.0, float(np.nanmin(latency))]),
                upper=np.array([1.0, float(np.nanmax(latency))]), front_keys=(), front_raw=empty,
                front_points=empty, reference_front=empty, true_hv=float("nan"), exact=False,
            )  # fmt: skip
        return self._cache[device]


def _default_devices(space: GPTSpace, objectives: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from modnas.spaces.gpt.hardware import GPTDevices

    devices = GPTDevices(space, load_profiles=False)
    train, test = devices.names("train"), devices.names("test")
    if "energy" in objectives:
        energy = tuple(d for d in train + test if devices.get(d).energy_metric)
        return energy, energy
    return train, train + test


def _exact_model(objective: str, device: str) -> Any:
    from modnas.spaces.gpt.hardware import TableModel, load_table

    if objective != "energy":
        raise ModnasError(f"GPT-S has no exact model of {objective!r}")
    return TableModel(make_problem().space, load_table(device), "energy")  # type: ignore[arg-type]


def _predictor_checkpoint(space: str) -> Any:
    return resources.files("modnas.spaces.gpt").joinpath("data", f"{space}_latency_predictor.pt")


def _load_predictor(space: str) -> Any:
    from modnas.hardware.predictor import load_predictor

    checkpoint = _predictor_checkpoint(space)
    if not checkpoint.is_file():
        raise ModnasError(
            f"the {space} latency predictor is missing from the installed package; retrain it with "
            f"`modnas predictor train --space {space} --out src/modnas/spaces/gpt/data/{space}_latency_predictor.pt`"
        )
    return load_predictor(checkpoint, space=space)[0]


@functools.lru_cache(maxsize=1)
def make_problem() -> Problem:
    """The GPT-S benchmark problem (one per process)."""
    from modnas.spaces.gpt.hardware import GPTDevices, latency_data

    space = GPTSpace(GPT_S)
    devices = GPTDevices(space)
    return Problem(
        name="gpt-s",
        space=space,
        truth=GPTTruth(space, devices),
        devices=devices,
        reference=_ShippedReference(),
        predictor_factory=lambda: _load_predictor("gpt-s"),
        exact_models=_exact_model,
        default_devices=functools.partial(_default_devices, space),
        latency_data=functools.partial(latency_data, "gpt-s"),
        extras={
            "predictor_checkpoint": _predictor_checkpoint("gpt-s"),
            "title": "GPT-S (HW-GPT-Bench perplexity surrogate, measured latency tables)",
            "accuracy_source": "their OpenWebText perplexity as HW-GPT-Bench's surrogate predicts it",
        },
        # chosen on the training devices (docs/benchmarks.md, GPT-S): Chebyshev, because GPT-S's fronts are close
        # to straight and linear scalarisation gives the 24 evaluation rays a handful of architectures; 100 steps
        # and refined picks, because with fewer steps the hypernetwork's picks stop short of its objective's minima;
        # the Gaussian-process error model, because from 200 queries it ranks perplexity far better than networks
        search_defaults={
            "steps_per_epoch": 100, "scalarisation": "chebyshev", "refine_rounds": 20, "error_predictor.kind": "gp",
        },
    )


@functools.lru_cache(maxsize=1)
def make_tiny_problem() -> Problem:
    """gpt-tiny: GPT-S's structure at CPU size, for one-shot search on a text corpus. It has no perplexity
    ground truth, so its fronts are scored by the supernet's inherited-weight perplexity on held-out text."""
    from modnas.spaces.gpt.hardware import GPTDevices, latency_data

    space = GPTSpace(GPT_TINY)
    devices = GPTDevices(space)
    truth = GPTTruth(space, devices)
    return Problem(
        name="gpt-tiny",
        space=space,
        truth=truth,
        devices=devices,
        reference=LatencyBoundsReference(space, truth),
        predictor_factory=lambda: _load_predictor("gpt-tiny"),
        default_devices=functools.partial(_default_devices, space),
        latency_data=functools.partial(latency_data, "gpt-tiny"),
        extras={
            "predictor_checkpoint": _predictor_checkpoint("gpt-tiny"),
            "title": "gpt-tiny (one-shot on text; scored by inherited weights)",
            "quality": "inherited",
        },
        oneshot_defaults={
            "epochs": 6,
            "oneshot.dataset": "bible-kjv",
            "oneshot.train_limit": 1536,
            "oneshot.batch_size": 32,
            "oneshot.optimizer": "adamw",
            "oneshot.lr": 0.003,
            "oneshot.weight_decay": 0.01,
            "oneshot.warmup_epochs": 1,
        },
    )
