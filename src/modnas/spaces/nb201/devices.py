"""NB201's devices: HELP's 27 latency settings, their split in the MODNAS protocol, and the user's NB201 profiles.

The MODNAS NB201 protocol uses 19 of them: HELP's 9 meta-train and 4 meta-valid devices train the hypernetwork
and the hardware predictor, and HELP's 6 meta-test devices are only ever used zero-shot; the other 8 are marked
``other``. A device's embedding is the latencies of HELP's 10 reference architectures
(:data:`~modnas.spaces.nb201.space.REFERENCE_ARCH_INDICES`), min-max normalised.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from modnas.hardware.devices import Device, DeviceRegistry, Split
from modnas.hardware.training import LatencyData, over_all_archs
from modnas.problem import get_problem
from modnas.spaces.nb201.space import REFERENCE_ARCH_INDICES, NB201Space, table_indices

__all__ = [
    "EMBEDDING_DIM", "ENERGY_DEVICES", "MIN_MEASUREMENTS", "PROTOCOL_DEVICES", "REFERENCE_ARCH_INDICES",
    "TEST_DEVICES", "TRAIN_DEVICES", "NB201Devices", "all_onehots", "builtin_devices", "get_device", "latency_data",
    "nb201_devices", "normalised_predicted_latencies", "normalised_table", "register_device",
]
from modnas.tables.nb201 import nb201_tables

EMBEDDING_DIM = len(REFERENCE_ARCH_INDICES)
#: Fewest measured architectures an NB201 device can be defined by (the references, or as many others).
MIN_MEASUREMENTS = EMBEDDING_DIM

#: The MODNAS NB201 protocol: HELP meta-train (9) + meta-valid (4) devices train the hypernetwork...
TRAIN_DEVICES: tuple[str, ...] = (
    "1080ti_1", "1080ti_32", "1080ti_256", "silver_4114", "silver_4210r", "samsung_a50", "pixel3",
    "essential_ph_1", "samsung_s7", "titanx_1", "titanx_32", "titanx_256", "gold_6240",
)
#: ...and HELP's 6 meta-test devices are only ever used zero-shot.
TEST_DEVICES: tuple[str, ...] = ("titan_rtx_256", "gold_6226", "fpga", "pixel2", "raspi4", "eyeriss")
PROTOCOL_DEVICES: tuple[str, ...] = TRAIN_DEVICES + TEST_DEVICES
#: Devices for which HW-NAS-Bench also gives energy (mJ), for the three-objective setting.
ENERGY_DEVICES: tuple[str, ...] = ("eyeriss", "fpga")

_GPU_NAMES = {
    "1080ti": "NVIDIA GTX 1080 Ti",
    "2080ti": "NVIDIA RTX 2080 Ti",
    "titanx": "NVIDIA Titan X",
    "titanxp": "NVIDIA Titan Xp",
    "titan_rtx": "NVIDIA Titan RTX",
}
_OTHER = {
    "silver_4114": ("cpu", "Intel Xeon Silver 4114", None, "HELP"),
    "silver_4210r": ("cpu", "Intel Xeon Silver 4210R", None, "HELP"),
    "gold_6226": ("cpu", "Intel Xeon Gold 6226", None, "HELP"),
    "gold_6240": ("cpu", "Intel Xeon Gold 6240", None, "HELP"),
    "pixel2": ("mobile", "Google Pixel 2 (integer ms)", 1, "HELP"),
    "essential_ph_1": ("mobile", "Essential PH-1 (integer ms)", 1, "HELP"),
    "samsung_a50": ("mobile", "Samsung Galaxy A50 (integer ms)", 1, "HELP"),
    "samsung_s7": ("mobile", "Samsung Galaxy S7 (integer ms)", 1, "HELP"),
    "pixel3": ("mobile", "Google Pixel 3", 1, "HW-NAS-Bench via HELP"),
    "raspi4": ("embedded", "Raspberry Pi 4", 1, "HW-NAS-Bench via HELP"),
    "eyeriss": ("asic", "Eyeriss accelerator (analytical model)", 1, "HW-NAS-Bench via HELP"),
    "fpga": ("fpga", "FPGA (analytical model)", 1, "HW-NAS-Bench via HELP"),
}


def builtin_devices() -> dict[str, Device]:
    """HELP's 27 NB201 latency settings, with their reference latencies read from the bundled tables."""
    ref = np.asarray(REFERENCE_ARCH_INDICES)
    keys = NB201Space().reference_architectures()
    devices = {}
    for name in nb201_tables.latency_devices:
        if name in TRAIN_DEVICES:
            split: Split = "train"
        elif name in TEST_DEVICES:
            split = "test"
        else:
            split = "other"
        if name in _OTHER:
            kind, description, batch_size, source = _OTHER[name]
        else:
            gpu, _, batch = name.rpartition("_")
            kind, description, batch_size, source = "gpu", f"{_GPU_NAMES[gpu]}, batch {batch}", int(batch), "HELP"
        devices[name] = Device(
            name=name,
            split=split,
            kind=kind,
            description=description,
            source=source,
            batch_size=batch_size,
            reference_latencies=tuple(float(x) for x in nb201_tables.latency(name, ref)),
            has_table=True,
            energy_metric=f"{name}_energy" if name in ENERGY_DEVICES else None,
            reference_keys=keys,
            space="nb201",
        )
    return devices


class NB201Devices(DeviceRegistry):
    """HELP's 27 NB201 latency settings (13 train, 6 zero-shot test, 8 other) and the user's NB201 profiles."""

    def __init__(self, load_profiles: bool = True) -> None:
        super().__init__(
            "nb201",
            NB201Space(),
            builtin=builtin_devices,
            splits={"train": TRAIN_DEVICES, "test": TEST_DEVICES},
            load_profiles=load_profiles,
        )

    def known_latencies(self, device: Device, keys: Sequence[str]) -> np.ndarray:
        """Measurements of ``keys`` on ``device`` (NaN where unknown).

        A training device's whole bundled table counts as measured: it is the data the shipped MetaPredictor was
        fitted on. A zero-shot test device's table is never read here (it is what the scorer judges against), so
        a test device is known exactly as well as a new device with the same profile would be.
        """
        if device.split == "train" and device.has_table:
            return np.asarray(nb201_tables.latency(device.name, table_indices(keys)), dtype=np.float64)
        return super().known_latencies(device, keys)


@functools.lru_cache(maxsize=1)
def all_onehots() -> torch.Tensor:
    """One-hot ``(15625, 6, 5)`` of every architecture in canonical table order."""
    return NB201Space().to_onehot(nb201_tables.ops_codes)


def normalised_table(device: str) -> np.ndarray:
    """Reference-normalised latency of all 15,625 architectures on a device that has a table."""
    latency = nb201_tables.full_column("latency", device)
    ref = latency[list(REFERENCE_ARCH_INDICES)]
    return (latency - ref.min()) / (ref.max() - ref.min())


def latency_data() -> LatencyData:
    """The MetaPredictor's data: all 15,625 architectures on every HELP setting (training devices for training)."""
    return LatencyData(
        keys=[str(k) for k in nb201_tables.arch_strings],
        onehots=all_onehots(),
        reference_rows=np.asarray(REFERENCE_ARCH_INDICES, dtype=np.int64),
        column=lambda device: nb201_tables.full_column("latency", device),
        devices=nb201_devices(),
    )


def normalised_predicted_latencies(names: Sequence[str], model: torch.nn.Module | None = None) -> np.ndarray:
    """Predicted latency of every architecture on each named device, min-max normalised per device ``(N, D)``.

    This is how a search sees latency (``model`` defaults to the shipped MetaPredictor): the bounds are the
    predictions' own min and max over all 15,625 architectures.
    """
    devices = nb201_devices()
    predictor = model if model is not None else get_problem("nb201").predictor
    emb = devices.embeddings(names)
    lat = over_all_archs(lambda x: predictor(x, emb), all_onehots()).numpy()
    return (lat - lat.min(axis=0)) / (lat.max(axis=0) - lat.min(axis=0))


def nb201_devices() -> NB201Devices:
    """The device set of the NB201 problem (the one :func:`modnas.problem.get_problem` returns)."""
    return get_problem("nb201").devices  # type: ignore[return-value]


def get_device(name: str) -> Device:
    """Shortcut for ``nb201_devices().get(name)``."""
    return nb201_devices().get(name)


def register_device(name: str, reference_latencies: Any, **kwargs: Any) -> Device:
    """Shortcut for :meth:`~modnas.hardware.devices.DeviceRegistry.register` on the NB201 device set."""
    return nb201_devices().register(name, reference_latencies, **kwargs)


def __getattr__(name: str) -> Any:
    # ``registry``: the NB201 problem's device set, created with the problem on first use
    if name == "registry":
        return nb201_devices()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
