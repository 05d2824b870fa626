"""The device registry: every hardware target modnas knows, with its split, unit and HELP-style embedding.

A device is described to the hypernetwork and the hardware predictor only through its *embedding*: the latencies of
the 10 HELP reference architectures on that device, min-max normalised within those 10 (HELP, Lee et al. 2021).
So a new device needs nothing but 10 measurements (see :func:`register_device`): those 10, or any 10 or more other
architectures, from which the embedding is fitted through the hardware predictor
(:mod:`modnas.hardware.embedding_fit`).

Built-in devices are the 27 HELP latency settings of NB201 (19 used by the MODNAS protocol: 13 training devices,
6 zero-shot test devices; the other 8 are marked ``other``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from modnas.errors import ModnasError, UnknownDeviceError

Split = Literal["train", "test", "other", "custom"]

#: Canonical NB201 indices of HELP's 10 reference architectures (HELP ``hardware_embedding_index.pt``).
REFERENCE_ARCH_INDICES: tuple[int, ...] = (11982, 431, 55, 9, 14451, 8636, 9881, 13479, 6196, 1462)
EMBEDDING_DIM = len(REFERENCE_ARCH_INDICES)
#: Fewest measured architectures a device can be defined by (the references, or as many others).
MIN_MEASUREMENTS = EMBEDDING_DIM

#: The MODNAS NB201 protocol: HELP meta-train (9) + meta-valid (4) devices train the hypernetwork...
TRAIN_DEVICES: tuple[str, ...] = (
    "1080ti_1", "1080ti_32", "1080ti_256", "silver_4114", "silver_4210r", "samsung_a50", "pixel3",
    "essential_ph_1", "samsung_s7", "titanx_1", "titanx_32", "titanx_256", "gold_6240",
)
#: ...and HELP's 6 meta-test devices are only ever used zero-shot.
TEST_DEVICES: tuple[str, ...] = ("titan_rtx_256", "gold_6226", "fpga", "pixel2", "raspi4", "eyeriss")
PROTOCOL_DEVICES: tuple[str, ...] = TRAIN_DEVICES + TEST_DEVICES

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
#: Devices for which HW-NAS-Bench also gives energy (mJ), for the three-objective setting.
ENERGY_DEVICES: tuple[str, ...] = ("eyeriss", "fpga")


@dataclass(frozen=True)
class Device:
    """One hardware target. ``reference_latencies`` are in ``unit`` for the 10 reference architectures.

    When the device was defined by other architectures, ``references_measured`` is False: ``reference_latencies``
    are then the fitted model's values for the references (see :mod:`modnas.hardware.embedding_fit`) and the
    measurements are all in ``extra_latencies``.
    """

    name: str
    split: Split
    kind: str
    description: str
    source: str
    batch_size: int | None
    reference_latencies: tuple[float, ...]
    unit: str = "ms"
    has_table: bool = False
    energy_metric: str | None = None
    extra_latencies: Mapping[str, float] = field(default_factory=dict)
    #: canonical keys of the reference architectures, in the order of ``reference_latencies`` (empty: NB201's)
    reference_keys: tuple[str, ...] = ()
    references_measured: bool = True

    @property
    def embedding(self) -> np.ndarray:
        """HELP device embedding: reference latencies min-max normalised among themselves (float32)."""
        return normalise_reference_latencies(self.reference_latencies, expected=None)

    def known_latencies(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Measured latency (``unit``) of canonical NB201 indices where this device has a measurement, else NaN.

        Measurements are the 10 reference architectures (when measured), the profile's ``extra_latencies`` and,
        for the 13 training devices only, their whole bundled table: the data the shipped MetaPredictor was fitted
        on. A zero-shot test device's table is never read here (it is what the scorer judges against), so a test
        device is known exactly as well as a new device with the same profile would be.
        """
        from modnas.spaces.nb201 import to_index
        from modnas.tables.nb201 import nb201_tables

        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if self.split == "train" and self.has_table:
            return np.asarray(nb201_tables.latency(self.name, idx), dtype=np.float64)
        known = dict(zip(REFERENCE_ARCH_INDICES, self.reference_latencies)) if self.references_measured else {}
        if self.extra_latencies:
            extra_idx = np.atleast_1d(to_index(list(self.extra_latencies)))
            known.update(zip(extra_idx.tolist(), map(float, self.extra_latencies.values())))
        return np.array([known.get(int(i), np.nan) for i in idx], dtype=np.float64)


def normalise_reference_latencies(
    latencies: Sequence[float] | np.ndarray, expected: int | None = EMBEDDING_DIM
) -> np.ndarray:
    """Min-max normalise the reference latencies into ``[0, 1]``; the device embedding.

    ``expected`` is the number of reference architectures (NB201: 10; None accepts any number >= 2).
    """
    lat = validate_latencies(latencies, what="reference latencies")
    if expected is not None and lat.shape != (expected,):
        raise ModnasError(f"a device embedding needs exactly {expected} reference latencies, got {lat.size}")
    if lat.size < 2:
        raise ModnasError(f"a device embedding needs at least 2 reference latencies, got {lat.size}")
    span = lat.max() - lat.min()
    if span <= 0:
        raise ModnasError("reference latencies are all equal: the device embedding would be undefined")
    return ((lat - lat.min()) / span).astype(np.float32)


def validate_latencies(values: Iterable[float] | np.ndarray, what: str = "latencies") -> np.ndarray:
    """Check measured latencies are finite and strictly positive; return them as float64."""
    try:
        arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ModnasError(f"{what} must be numbers ({exc})") from None
    if arr.ndim != 1:
        raise ModnasError(f"{what} must be a flat list of numbers, got shape {arr.shape}")
    for i, v in enumerate(arr):
        if math.isnan(v):
            raise ModnasError(f"{what}: value {i + 1} is NaN")
        if math.isinf(v):
            raise ModnasError(f"{what}: value {i + 1} is infinite")
        if v <= 0:
            raise ModnasError(f"{what}: value {i + 1} is {v:g}, latencies must be > 0")
    return arr


def _builtin_devices() -> dict[str, Device]:
    from modnas.tables.nb201 import nb201_tables

    ref = np.asarray(REFERENCE_ARCH_INDICES)
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
        )
    return devices


class DeviceRegistry:
    """Built-in devices plus devices registered at run time (user profiles)."""

    def __init__(self) -> None:
        self._builtin: dict[str, Device] | None = None
        self._custom: dict[str, Device] = {}
        #: names of stored devices whose profile could not be loaded, with the reason: an error only when used
        self._unavailable: dict[str, str] = {}

    @property
    def _devices(self) -> dict[str, Device]:
        if self._builtin is None:
            self._builtin = _builtin_devices()
        return {**self._builtin, **self._custom}

    def get(self, name: str) -> Device:
        """The device called ``name``; unknown names raise a one-line error listing close matches."""
        devices = self._devices
        if name in devices:
            return devices[name]
        if name in self._unavailable:
            raise UnknownDeviceError(self._unavailable[name])
        import difflib

        close = difflib.get_close_matches(name, devices, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else "; run `modnas devices` to list them"
        raise UnknownDeviceError(f"unknown device {name!r}{hint}")

    def names(self, split: Split | Literal["protocol", "all"] = "all") -> tuple[str, ...]:
        """Device names of one split; ``protocol`` is the 19 MODNAS devices (train then test)."""
        if split == "protocol":
            return PROTOCOL_DEVICES
        if split == "train":
            return TRAIN_DEVICES
        if split == "test":
            return TEST_DEVICES
        return tuple(n for n, d in self._devices.items() if split == "all" or d.split == split)

    def register(
        self,
        name: str,
        reference_latencies: Sequence[float] | Mapping[str, float] | np.ndarray,
        *,
        description: str = "user device",
        kind: str = "custom",
        batch_size: int | None = None,
        unit: str = "ms",
        extra_latencies: Mapping[str, float] | None = None,
        force: bool = False,
        references_measured: bool = True,
    ) -> Device:
        """Register a custom device from its measured latencies.

        ``reference_latencies`` is either 10 numbers in the order of :data:`REFERENCE_ARCH_INDICES` or a mapping
        from architecture string to latency. A mapping that contains all 10 reference architectures defines the
        embedding by them (further entries are kept in ``extra_latencies`` for few-shot adaptation); any other
        mapping of at least :data:`MIN_MEASUREMENTS` architectures (together with ``extra_latencies``) has the
        embedding fitted through the shipped hardware predictor (:func:`modnas.hardware.embedding_fit.fit_embedding`,
        seed 0), and all its entries are kept as ``extra_latencies``. ``references_measured=False`` with 10 numbers
        registers the synthetic reference latencies of such a fit (``EmbeddingFit.reference_latencies``) computed
        before; ``extra_latencies`` must then hold the measurements. A name that is already taken is refused unless
        ``force``; built-in devices can never be replaced.
        """
        if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise ModnasError(f"invalid device name {name!r}: use letters, digits, '_', '-' or '.'")
        devices = self._devices
        if name in devices and (devices[name].split != "custom" or not force):
            why = "a built-in device" if devices[name].split != "custom" else "already registered (use force)"
            raise ModnasError(f"device name {name!r} is taken: {why}")
        extra: dict[str, float] = {}
        if extra_latencies:
            _, extra = split_reference_latencies(extra_latencies, require_reference=False)
        if isinstance(reference_latencies, Mapping):
            _, measured = split_reference_latencies(reference_latencies, require_reference=False)
            references_measured = has_all_references(measured)
            if references_measured:
                reference, more = split_reference_latencies(reference_latencies)
                extra.update(more)
            else:
                from modnas.hardware.embedding_fit import fit_embedding

                extra.update(measured)
                reference = np.asarray(fit_embedding(extra).reference_latencies)
        else:
            reference = validate_latencies(reference_latencies, what=f"reference latencies of {name!r}")
            if not references_measured and len(extra) < MIN_MEASUREMENTS:
                raise ModnasError(
                    f"device {name!r} without measured reference latencies needs at least {MIN_MEASUREMENTS} "
                    f"measured architectures in extra_latencies, got {len(extra)}"
                )
        normalise_reference_latencies(reference)  # validates length and spread
        validate_latencies(extra.values(), what=f"latencies of {name!r}")
        device = Device(
            name=name,
            split="custom",
            kind=kind,
            description=description,
            source="user",
            batch_size=batch_size,
            reference_latencies=tuple(float(x) for x in reference),
            unit=unit,
            extra_latencies=extra,
            references_measured=references_measured,
        )
        self._custom[name] = device
        self._unavailable.pop(name, None)
        return device

    def mark_unavailable(self, name: str, reason: str) -> None:
        """Make :meth:`get` of ``name`` raise ``reason`` (a stored profile that could not be loaded)."""
        self._unavailable[name] = reason

    def unregister(self, name: str) -> None:
        """Forget a custom device (built-in devices cannot be removed)."""
        if name not in self._custom:
            raise UnknownDeviceError(f"no custom device called {name!r}")
        del self._custom[name]


def has_all_references(latencies: Mapping[str, float]) -> bool:
    """Whether canonical ``{arch_str: latency}`` (as :func:`split_reference_latencies` returns) holds all 10
    reference architectures."""
    from modnas.spaces.nb201 import index_to_string

    return all(index_to_string(i) in latencies for i in REFERENCE_ARCH_INDICES)


def split_reference_latencies(
    latencies: Mapping[str, float], require_reference: bool = True
) -> tuple[np.ndarray, dict[str, float]]:
    """Split ``{arch_str: latency}`` into the 10 reference latencies (in order) and the other measurements.

    Keys are parsed and canonicalised; an architecture given twice (e.g. with stray spaces) is refused.
    """
    from modnas.spaces.nb201 import index_to_string, to_index

    by_index: dict[int, float] = {}
    rest: dict[str, float] = {}
    reference = set(REFERENCE_ARCH_INDICES)
    for arch, value in latencies.items():
        idx = int(to_index(arch))
        if idx in by_index or index_to_string(idx) in rest:
            raise ModnasError(f"architecture {index_to_string(idx)} is listed twice")
        if idx in reference and require_reference:
            by_index[idx] = value
        else:
            rest[index_to_string(idx)] = value
    if not require_reference:
        return np.zeros(0), rest
    missing = [i for i in REFERENCE_ARCH_INDICES if i not in by_index]
    if missing:
        raise ModnasError(
            f"{len(missing)} of the {EMBEDDING_DIM} reference architectures are missing, first: "
            f"{index_to_string(missing[0])} (index {missing[0]})"
        )
    return validate_latencies([by_index[i] for i in REFERENCE_ARCH_INDICES], what="reference latencies"), rest


#: The process-wide registry.
registry = DeviceRegistry()


def get_device(name: str) -> Device:
    """Shortcut for ``registry.get(name)``."""
    return registry.get(name)


def register_device(name: str, reference_latencies: Sequence[float] | Mapping[str, float], **kwargs: object) -> Device:
    """Shortcut for :meth:`DeviceRegistry.register` on the process-wide registry."""
    return registry.register(name, reference_latencies, **kwargs)  # type: ignore[arg-type]
