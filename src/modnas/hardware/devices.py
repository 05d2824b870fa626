"""Devices of a search space: every hardware target it knows, with its split, unit and HELP-style embedding.

A device is described to the hypernetwork and the hardware predictor only through its *embedding*: the latencies of
the space's reference architectures on that device, min-max normalised within them (HELP, Lee et al. 2021). So a
new device needs nothing but as many measurements as there are references (see :meth:`DeviceRegistry.register`):
the references themselves, or at least as many other architectures, from which the embedding is fitted through the
space's hardware predictor (:mod:`modnas.hardware.embedding_fit`).

Each :class:`~modnas.problem.Problem` owns one :class:`DeviceRegistry`: its built-in devices (with their train /
test split) plus the user's profiles of that space (:mod:`modnas.hardware.profiles`). Nothing here knows a
particular space; NB201's 27 HELP latency settings are defined in its space folder (``devices.py``).
"""

from __future__ import annotations

import copy
import difflib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from modnas.errors import ModnasError, UnknownDeviceError

if TYPE_CHECKING:
    from modnas.hardware.profiles import ProfileStore
    from modnas.spaces.base import SearchSpace

Split = Literal["train", "test", "other", "custom"]


@dataclass(frozen=True)
class Device:
    """One hardware target. ``reference_latencies`` are in ``unit``, for ``reference_keys`` in that order.

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
    #: canonical keys of the space's reference architectures, in the order of ``reference_latencies``
    reference_keys: tuple[str, ...] = ()
    references_measured: bool = True
    #: the search space the device's architectures belong to
    space: str = "nb201"
    #: a profile's ground-truth model of every architecture (a GPT :class:`~modnas.spaces.gpt.latency.LatencyTable`),
    #: or None; a device with one has ``has_table``
    latency_table: Any = field(default=None, compare=False, repr=False)

    @property
    def embedding(self) -> np.ndarray:
        """HELP device embedding: reference latencies min-max normalised among themselves (float32)."""
        return normalise_reference_latencies(self.reference_latencies, expected=None)

    def measured(self) -> dict[str, float]:
        """Every measurement of the device by canonical key: its references (when measured) and extra ones."""
        known = dict(zip(self.reference_keys, self.reference_latencies)) if self.references_measured else {}
        known.update(self.extra_latencies)
        return known


def normalise_reference_latencies(latencies: Sequence[float] | np.ndarray, expected: int | None = None) -> np.ndarray:
    """Min-max normalise the reference latencies into ``[0, 1]``; the device embedding.

    ``expected`` is the number of reference architectures (None accepts any number >= 2).
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


def check_latency(key: str, value: Any) -> float:
    """One measured latency: a finite number > 0 (the message names the architecture)."""
    try:
        bad = not math.isfinite(value) or value <= 0
    except TypeError:
        raise ModnasError(f"latency of {key} is {value!r}, not a number") from None
    if bad:
        shown = "NaN" if math.isnan(value) else f"{value:g}"
        raise ModnasError(f"latency of {key} is {shown}; latencies must be finite and > 0")
    return float(value)


class DeviceSet(ABC):
    """The devices of one space: built-in ones with splits and embeddings, plus custom ones (profiles)."""

    @abstractmethod
    def get(self, name: str) -> Device:
        """The device called ``name``; an unknown name is a one-line error listing close matches."""

    @abstractmethod
    def names(self, split: str = "all") -> tuple[str, ...]:
        """Device names of a split: ``train``, ``test``, ``protocol`` (train then test), ``other``, ``custom``,
        ``all``."""

    def embeddings(self, names: Sequence[str]) -> torch.Tensor:
        """The devices' embeddings as a ``(D, embedding_dim)`` float tensor."""
        return torch.tensor(np.stack([self.get(n).embedding for n in names]), dtype=torch.float32)

    @property
    def embedding_dim(self) -> int:
        return len(self.get(self.names("train")[0]).embedding)

    def known_latencies(self, device: Device, keys: Sequence[str]) -> np.ndarray:
        """Measured latency of ``keys`` where ``device`` has a measurement (its references and a profile's extra
        measurements), else NaN. Never a zero-shot test device's ground-truth table."""
        known = device.measured()
        return np.array([known.get(k, np.nan) for k in keys], dtype=np.float64)


class DeviceRegistry(DeviceSet):
    """The devices of one search space: built-in ones plus custom ones registered at run time (user profiles).

    ``builtin`` builds the built-in devices on first use; ``splits`` fixes the order of the ``train`` and ``test``
    names (default: the built-in devices of that split, in their order). Stored profiles of this space
    (``$MODNAS_HOME/devices``) are loaded on the first :meth:`get` when ``load_profiles``.
    """

    def __init__(
        self,
        space_name: str,
        space: SearchSpace,
        builtin: Callable[[], dict[str, Device]] | None = None,
        splits: Mapping[str, Sequence[str]] | None = None,
        load_profiles: bool = True,
    ) -> None:
        self.space_name = space_name
        self.space = space
        self._builtin_factory = builtin
        self._builtin: dict[str, Device] | None = None
        self._splits = {k: tuple(v) for k, v in (splits or {}).items()}
        self._custom: dict[str, Device] = {}
        #: names of stored devices whose profile could not be loaded, with the reason: an error only when used
        self._unavailable: dict[str, str] = {}
        self.load_profiles = load_profiles
        #: profile stores already loaded into this registry
        self._loaded_roots: set[Path] = set()

    @property
    def reference_keys(self) -> tuple[str, ...]:
        """Canonical keys of the space's reference architectures (the embedding's coordinates, in order)."""
        return tuple(self.space.reference_architectures())

    @property
    def embedding_dim(self) -> int:
        return len(self.reference_keys)

    @property
    def min_measurements(self) -> int:
        """Fewest measured architectures a device can be defined by (the references, or as many others)."""
        return self.embedding_dim

    @property
    def _devices(self) -> dict[str, Device]:
        if self._builtin is None:
            self._builtin = self._builtin_factory() if self._builtin_factory is not None else {}
        return {**self._builtin, **self._custom}

    def builtin_names(self) -> frozenset[str]:
        """Names of the built-in devices; a profile can never take one of them."""
        if self._builtin is None:
            self._builtin = self._builtin_factory() if self._builtin_factory is not None else {}
        return frozenset(self._builtin)

    def ensure_profiles_loaded(self, store: ProfileStore | None = None) -> None:
        """Register the stored profiles of this space, once per store (idempotent).

        A stored profile that cannot be loaded is skipped with a warning naming its file, so it breaks only the
        commands that use that device.
        """
        from modnas.hardware.profiles import ProfileStore, load_stored_devices

        store = store or ProfileStore()
        key = store.root.expanduser().resolve()
        if key in self._loaded_roots:
            return
        self._loaded_roots.add(key)  # first, so that loading a profile (which may fit) does not recurse
        load_stored_devices(self, store, skip_broken=True)

    def sync_profile(self, store: ProfileStore, name: str) -> None:
        """After ``name`` was stored in or removed from ``store``, update this registry if it has loaded it."""
        from modnas.hardware.profiles import register_profile

        if store.root.expanduser().resolve() not in self._loaded_roots:
            return  # it will see the change when it loads the store
        if store.path(name).is_file():
            profile = store.load(name)
            if profile.space == self.space_name:
                register_profile(profile, self, force=True)
        elif name in self._custom:
            self.unregister(name)

    def get(self, name: str) -> Device:
        """The device called ``name``; unknown names raise a one-line error listing close matches."""
        if self.load_profiles:
            self.ensure_profiles_loaded()
        devices = self._devices
        if name in devices:
            return devices[name]
        if name in self._unavailable:
            raise UnknownDeviceError(self._unavailable[name])
        close = difflib.get_close_matches(name, devices, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else "; run `modnas devices` to list them"
        raise UnknownDeviceError(f"unknown device {name!r}{hint}")

    def names(self, split: str = "all") -> tuple[str, ...]:
        """Device names of one split; ``protocol`` is the training then the test devices."""
        if split == "protocol":
            return self.names("train") + self.names("test")
        if split in self._splits:
            return self._splits[split]
        if split in ("all", "custom") and self.load_profiles:
            self.ensure_profiles_loaded()
        return tuple(n for n, d in self._devices.items() if split == "all" or d.split == split)

    # -- measurements ---------------------------------------------------------------------------------------------

    def canonical_measurements(self, latencies: Mapping[str, Any]) -> dict[str, float]:
        """``{arch_str: latency}`` with canonical keys; a malformed key, an architecture given twice (e.g. with stray
        spaces) and a latency that is not finite and > 0 are refused, each naming the architecture."""
        out: dict[str, float] = {}
        for arch, value in latencies.items():
            key = self.space.canonical_key(str(arch))
            if key in out:
                raise ModnasError(f"architecture {key} is listed twice")
            out[key] = check_latency(key, value)
        return out

    def has_all_references(self, latencies: Mapping[str, float]) -> bool:
        """Whether canonical ``{arch_str: latency}`` holds every reference architecture."""
        return all(k in latencies for k in self.reference_keys)

    def split_reference_latencies(self, latencies: Mapping[str, float]) -> tuple[np.ndarray, dict[str, float]]:
        """Split ``{arch_str: latency}`` into the reference latencies (in order) and the other measurements."""
        canonical = self.canonical_measurements(latencies)
        missing = [k for k in self.reference_keys if k not in canonical]
        if missing:
            raise ModnasError(
                f"{len(missing)} of the {self.embedding_dim} reference architectures are missing, first: {missing[0]}"
            )
        reference = [canonical.pop(k) for k in self.reference_keys]
        return validate_latencies(reference, what="reference latencies"), canonical

    def fit_embedding(self, measurements: Mapping[str, float], seed: int = 0) -> Any:
        """The embedding of measurements without all reference architectures, fitted through this space's frozen
        hardware predictor (:func:`modnas.hardware.embedding_fit.fit_embedding`)."""
        from modnas.hardware.embedding_fit import fit_embedding

        return fit_embedding(measurements, self, seed=seed)

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
        table: Any = None,
    ) -> Device:
        """Register a custom device from its measured latencies.

        ``reference_latencies`` is either one number per reference architecture (in the order of
        :attr:`reference_keys`) or a mapping from architecture string to latency. A mapping that contains every
        reference architecture defines the embedding by them (further entries are kept in ``extra_latencies`` for
        few-shot adaptation); any other mapping of at least :attr:`min_measurements` architectures (together with
        ``extra_latencies``) has the embedding fitted through the space's hardware predictor (seed 0), and all its
        entries are kept as ``extra_latencies``. ``references_measured=False`` with numbers registers the synthetic
        reference latencies of such a fit computed before; ``extra_latencies`` must then hold the measurements.
        A name that is already taken is refused unless ``force``; built-in devices can never be replaced.
        ``table`` is the device's ground truth of every architecture (a measured GPT latency table), if it has one.
        """
        if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise ModnasError(f"invalid device name {name!r}: use letters, digits, '_', '-' or '.'")
        devices = self._devices
        if name in devices and (devices[name].split != "custom" or not force):
            why = "a built-in device" if devices[name].split != "custom" else "already registered (use force)"
            raise ModnasError(f"device name {name!r} is taken: {why}")
        extra = self.canonical_measurements(extra_latencies) if extra_latencies else {}
        if isinstance(reference_latencies, Mapping):
            measured = self.canonical_measurements(reference_latencies)
            references_measured = self.has_all_references(measured)
            if references_measured:
                reference, more = self.split_reference_latencies(measured)
                extra.update(more)
            else:
                extra.update(measured)
                reference = np.asarray(self.fit_embedding(extra).reference_latencies)
        else:
            reference = validate_latencies(reference_latencies, what=f"reference latencies of {name!r}")
            if not references_measured and len(extra) < self.min_measurements:
                raise ModnasError(
                    f"device {name!r} without measured reference latencies needs at least {self.min_measurements} "
                    f"measured architectures in extra_latencies, got {len(extra)}"
                )
        normalise_reference_latencies(reference, expected=self.embedding_dim)  # validates length and spread
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
            reference_keys=self.reference_keys,
            references_measured=references_measured,
            space=self.space_name,
            has_table=table is not None,
            latency_table=table,
        )
        self._custom[name] = device
        self._unavailable.pop(name, None)
        return device

    def scratch(self) -> DeviceRegistry:
        """A registry of the same space and built-in devices without custom ones and without the stored profiles:
        for a device that is used but not stored (``modnas front --profile``)."""
        out = copy.copy(self)
        out._custom, out._unavailable, out._loaded_roots, out.load_profiles = {}, {}, set(), False
        return out

    def mark_unavailable(self, name: str, reason: str) -> None:
        """Make :meth:`get` of ``name`` raise ``reason`` (a stored profile that could not be loaded)."""
        self._unavailable[name] = reason

    def unregister(self, name: str) -> None:
        """Forget a custom device (built-in devices cannot be removed)."""
        if name not in self._custom:
            raise UnknownDeviceError(f"no custom device called {name!r}")
        del self._custom[name]
