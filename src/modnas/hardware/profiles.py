"""Device profiles: latencies measured on the user's own hardware, saved as JSON and kept in a persistent store.

A profile belongs to one search space (its ``space`` field; files written before profiles named it are NB201's)
and holds the latencies of at least as many architectures of it as the space has reference architectures (NB201:
HELP's 10). When the reference architectures are among them they define the device embedding, and any further architectures are registered as ``Device.extra_latencies`` for
few-shot adaptation. Otherwise the embedding is fitted to all of them through the hardware predictor
(:mod:`modnas.hardware.embedding_fit`); the fit is stored in the profile's ``embedding_fit`` field (so loading
the profile needs no predictor) and all measurements are used for few-shot adaptation.

Profile files (format version 1)::

    {"name": "my_laptop", "space": "nb201", "latencies_ms": {"|arch|...": 7.56, ...}, "embedding": [0.16, ...], "batch_size": 1,
     "unit": "ms", "torch_version": "2.13.0", "processor": "...", "gpu": null, "threads": 8,
     "created": "2025-01-01T12:00:00+00:00", "source": "measured", "format_version": 1}

A profile without all reference architectures also has ``"embedding_fit": {"reference_ms": [...synthetic
reference latencies...], "measurements": 23, "digest": "...", "seed": 0, "rmse_ms": 0.4}``; a stored fit
whose ``digest`` no longer matches ``latencies_ms`` (the file was edited) is fitted again on load.

A profile of a GPT space measured by ``modnas device measure`` also has ``"table"``: the per-block latency table
(:meth:`modnas.spaces.gpt.latency.LatencyTable.to_json`) it was measured as. Its ``latencies_ms`` are then the
table's sums, and the registered device takes the table as its ground truth of every architecture.

Registered profiles live in ``$MODNAS_HOME/devices/<name>.json`` (``MODNAS_HOME`` defaults to ``~/.modnas``);
the device set of their space loads them on first use (:meth:`~modnas.hardware.devices.DeviceRegistry.get`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator, model_validator

from modnas.errors import ModnasError, UnknownDeviceError, validation_error_line
from modnas.hardware.devices import Device, DeviceRegistry, normalise_reference_latencies
from modnas.io import atomic_write_json, read_user_text
from modnas.problem import DEFAULT_SPACE, get_problem

_log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: How closely an embedding stored in a file must match the one its reference latencies define.
EMBEDDING_TOLERANCE = 1e-4
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

# Strict: a latency written as a string or a boolean is a mistake, not something to coerce (ints are fine).
_Latency = Annotated[float, Strict()]


def check_device_name(name: object) -> str:
    """Validate a device name (it becomes a file name): letters, digits, '_', '-', '.'; at most 64 characters."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.endswith("."):
        raise ModnasError(
            f"invalid device name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def space_devices(space: str = DEFAULT_SPACE) -> DeviceRegistry:
    """The device set of the search space called ``space``."""
    devices = get_problem(space).devices
    if not isinstance(devices, DeviceRegistry):
        raise ModnasError(f"search space {space!r} takes no device profiles")
    return devices


def builtin_device_names(space: str = DEFAULT_SPACE) -> frozenset[str]:
    """Names of the built-in devices of ``space``; a profile can never take one of them."""
    return space_devices(space).builtin_names()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def canonical_latencies(latencies: dict[str, float], devices: DeviceRegistry) -> dict[str, float]:
    """Canonicalise ``{arch_str: ms}``: when all reference architectures are present, they come first (in their
    order), then the rest as given; otherwise all as given.

    Refuses malformed architecture strings, architectures listed twice (e.g. once with stray spaces) and
    latencies that are not finite and > 0, each message naming the architecture, and too few architectures.
    """
    canonical = devices.canonical_measurements(latencies)
    references = devices.reference_keys
    if len(canonical) < devices.min_measurements:
        missing = [k for k in references if k not in canonical]
        raise ModnasError(
            f"{len(canonical)} measured architectures; a device needs at least {devices.min_measurements}: the "
            f"{len(references)} reference architectures (first missing: {missing[0]}) or any "
            f"{devices.min_measurements} others"
        )
    if not devices.has_all_references(canonical):
        return canonical
    ordered = {k: canonical[k] for k in references}
    ordered.update({k: v for k, v in canonical.items() if k not in ordered})
    return ordered


class EmbeddingFitRecord(BaseModel):
    """How the embedding of a profile without all reference architectures was fitted (see the module doc)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Synthetic reference latencies ``a + b * e`` (ms): they define the embedding ``e`` and the unit conversion.
    reference_ms: list[_Latency]
    measurements: int = Field(ge=2)
    #: :func:`measurements_digest` of the ``latencies_ms`` it was fitted to.
    digest: str
    seed: int = 0
    #: Root mean square error of the fitted latencies on the measurements.
    rmse_ms: float = Field(ge=0)

    @field_validator("reference_ms")
    @classmethod
    def _check_reference(cls, value: list[float]) -> list[float]:
        normalise_reference_latencies(value)  # 10 finite values > 0, not all equal
        return value


def measurements_digest(latencies: dict[str, float]) -> str:
    """A short fingerprint of canonical measurements, to tell whether a stored fit still belongs to them."""
    text = "\n".join(f"{arch}={float(value)!r}" for arch, value in sorted(latencies.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fit_record(latencies: dict[str, float], devices: DeviceRegistry, seed: int = 0) -> EmbeddingFitRecord:
    """Fit the embedding of measurements without all reference architectures (loads torch and the predictor)."""
    fit = devices.fit_embedding(latencies, seed=seed)
    return EmbeddingFitRecord(
        reference_ms=list(fit.reference_latencies),
        measurements=fit.n_measurements,
        digest=measurements_digest(latencies),
        seed=seed,
        rmse_ms=round(fit.rmse, 6),
    )


class DeviceProfile(BaseModel):
    """Latencies of one user device (ms), with the embedding they define and how they were obtained.

    Constructing one validates everything and raises a one-line :class:`ModnasError` on bad input.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    #: the search space of the measured architectures
    space: str = DEFAULT_SPACE
    latencies_ms: dict[str, _Latency]
    # Only for profiles without all reference architectures: given (from a file) or fitted on construction.
    embedding_fit: EmbeddingFitRecord | None = Field(default=None, validate_default=True)
    # Always the embedding the reference latencies (measured or fitted) define; a value given in a file is only
    # checked against it.
    embedding: list[float] = Field(default=None, validate_default=True)  # type: ignore[assignment]
    batch_size: int | None = Field(default=None, ge=1)
    unit: Literal["ms"] = "ms"
    description: str | None = None
    torch_version: str | None = None
    processor: str | None = None
    gpu: str | None = None
    threads: int | None = Field(default=None, ge=1)
    warmup: int | None = Field(default=None, ge=0)
    repeats: int | None = Field(default=None, ge=1)
    created: str = Field(default_factory=_now)
    source: str = "user"
    #: GPT spaces: the per-block latency table whose sums ``latencies_ms`` are (its JSON form)
    table: dict[str, Any] | None = None
    format_version: Literal[1] = FORMAT_VERSION

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ModnasError(validation_error_line(exc, "profile")) from None

    @field_validator("name", mode="before")
    @classmethod
    def _check_name(cls, value: Any) -> str:
        return check_device_name(value)

    @field_validator("space", mode="before")
    @classmethod
    def _check_space(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ModnasError(f"space must be the name of a search space, got {value!r}")
        space_devices(value)  # an unknown space is a one-line error naming it
        return value

    @field_validator("latencies_ms")
    @classmethod
    def _check_latencies(cls, value: dict[str, float], info: Any) -> dict[str, float]:
        if "space" not in info.data:  # already reported as a space error
            return value
        return canonical_latencies(value, space_devices(info.data["space"]))

    @field_validator("embedding_fit", mode="before")
    @classmethod
    def _check_fit(cls, given: Any, info: Any) -> Any:
        latencies = info.data.get("latencies_ms")
        if latencies is None:  # already reported as a latency error
            return given
        devices = space_devices(info.data["space"])
        if devices.has_all_references(latencies):
            if given is not None:
                raise ModnasError("embedding_fit is only for profiles without all reference architectures")
            return None
        record = given.model_dump() if isinstance(given, EmbeddingFitRecord) else given
        if isinstance(record, dict) and record.get("digest") == measurements_digest(latencies):
            return record
        if record is not None:
            _log.warning("embedding_fit does not belong to these latencies (edited?): fitting it again")
        seed = record.get("seed", 0) if isinstance(record, dict) else 0
        return _fit_record(latencies, devices, seed=seed if type(seed) is int else 0)

    @field_validator("embedding", mode="before")
    @classmethod
    def _derive_embedding(cls, given: Any, info: Any) -> Any:
        latencies = info.data.get("latencies_ms")
        if latencies is None or "embedding_fit" not in info.data:  # already reported as an error
            return given
        fit = info.data["embedding_fit"]
        dim = space_devices(info.data["space"]).embedding_dim
        # canonical order puts the references first
        ref = list(latencies.values())[:dim] if fit is None else fit.reference_ms
        derived = [round(float(x), 6) for x in normalise_reference_latencies(ref)]
        if given is None:
            return derived
        if not isinstance(given, (list, tuple)) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in given
        ):
            raise ModnasError("embedding must be a list of numbers")
        if len(given) != dim:
            raise ModnasError(f"embedding has {len(given)} values, a device embedding has {dim}")
        worst = int(np.argmax(np.abs(np.asarray(given, dtype=np.float64) - derived)))
        if not abs(given[worst] - derived[worst]) <= EMBEDDING_TOLERANCE:  # `not <=` also catches NaN
            raise ModnasError(
                f"embedding value {worst + 1} is {given[worst]:g} but the reference latencies give "
                f"{derived[worst]:g}"
            )
        return derived

    @field_validator("created")
    @classmethod
    def _check_created(cls, value: str) -> str:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ModnasError(f"created {value!r} is not an ISO date") from None
        return value

    @field_validator("table")
    @classmethod
    def _check_table(cls, value: dict[str, Any] | None, info: Any) -> dict[str, Any] | None:
        latencies = info.data.get("latencies_ms")
        if value is None or latencies is None:  # no table, or already reported as a latency error
            return value
        from modnas.spaces.gpt.arch import VARIANTS, GPTArch
        from modnas.spaces.gpt.latency import LatencyTable

        space = info.data["space"]
        if space not in VARIANTS:
            raise ModnasError(f"only a GPT space's profile holds a latency table, not a {space} one")
        table = LatencyTable.from_json(value, origin="table")
        if table.space != space:
            raise ModnasError(f"the table is a {table.space} table, not a {space} one")
        keys = list(latencies)
        sums = table.predict([GPTArch.from_key(k, table.variant) for k in keys])
        for key, total in zip(keys, sums):
            if not abs(latencies[key] - total) <= 1e-6 * total:
                raise ModnasError(f"latency of {key} is {latencies[key]:g} ms but the table sums to {total:g} ms")
        return table.to_json()

    @model_validator(mode="before")
    @classmethod
    def _check_object(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ModnasError(f"a device profile must be a JSON object, got {type(data).__name__}")
        return data

    @property
    def reference_latencies(self) -> list[float]:
        """The reference latencies in the order of the space's reference architectures (fitted ones without
        them)."""
        if self.embedding_fit is not None:
            return list(self.embedding_fit.reference_ms)
        return list(self.latencies_ms.values())[: len(self.embedding)]

    @property
    def extra_latencies(self) -> dict[str, float]:
        """Measurements beyond the reference architectures, or all of them for a fitted embedding."""
        if self.embedding_fit is not None:
            return dict(self.latencies_ms)
        return dict(list(self.latencies_ms.items())[len(self.embedding) :])

    @property
    def latency_table(self) -> Any:
        """The profile's :class:`~modnas.spaces.gpt.latency.LatencyTable`, or None."""
        if self.table is None:
            return None
        from modnas.spaces.gpt.latency import LatencyTable

        return LatencyTable.from_json(self.table, origin=f"table of {self.name!r}")

    def to_json(self) -> dict[str, Any]:
        """The profile as a JSON-ready dict (the file format)."""
        # embedding_fit and table are written only where there is one, so other files are as they were
        exclude = {k for k in ("embedding_fit", "table") if getattr(self, k) is None}
        return self.model_dump(mode="json", exclude=exclude or None)


def parse_profile(data: Any, origin: str | Path = "device profile") -> DeviceProfile:
    """Validate a profile given as a dict (e.g. parsed JSON); errors name ``origin``."""
    try:
        if isinstance(data, dict):
            return DeviceProfile(**data)
        return DeviceProfile.model_validate(data)
    except ValidationError as exc:
        raise ModnasError(f"{origin}: {validation_error_line(exc, 'profile')}") from None
    except ModnasError as exc:
        raise ModnasError(f"{origin}: {exc}") from None


def profile_from_table(
    name: str, table: Any, archs: Sequence[str] = (), n_extra: int = 0, seed: int = 0, **fields: Any
) -> DeviceProfile:
    """The profile of a measured GPT latency table (:class:`~modnas.spaces.gpt.latency.LatencyTable`): the
    table's sums for the space's reference architectures, for ``archs`` and for ``n_extra`` seeded random
    architectures (few-shot measurements), with the table itself. ``fields`` are further profile fields."""
    from modnas.hardware.measure import extra_architectures  # measure imports this module
    from modnas.spaces.gpt.arch import GPTArch

    devices = space_devices(table.space)
    keys = list(devices.reference_keys)
    for arch in archs:
        key = devices.space.canonical_key(arch)
        if key not in keys:
            keys.append(key)
    keys += extra_architectures(n_extra, seed, exclude=keys, space=table.space)
    sums = table.predict([GPTArch.from_key(k, table.variant) for k in keys])
    meta = table.meta
    data = {
        "name": name, "space": table.space, "latencies_ms": {k: float(v) for k, v in zip(keys, sums)},
        "batch_size": table.setting.batch_size, "torch_version": meta.get("torch"), "processor": meta.get("processor"),
        "gpu": meta.get("gpu"), "threads": meta.get("threads") or table.setting.threads, "warmup": meta.get("warmup"),
        "repeats": meta.get("repeats"), "source": "measured", "table": table.to_json(),
        "description": f"{meta.get('gpu') or meta.get('processor') or 'user device'}, {table.setting.label} table",
        **fields,
    }  # fmt: skip
    return parse_profile(data, origin=f"measured profile of {name!r}")


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads would keep the last of two equal keys silently: a latency measured twice must not be lost
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ModnasError(f"{key} is listed twice")
        out[key] = value
    return out


def load_profile(path: str | Path) -> DeviceProfile:
    """Read and validate a profile JSON file; any problem is a one-line :class:`ModnasError` naming the file."""
    file = Path(path)
    text = read_user_text(file, "device profile")
    try:
        data = json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
    except json.JSONDecodeError as exc:
        # some messages end in "at" ("Unterminated string starting at"): do not say "at at line"
        reason = exc.msg.removesuffix(" at")
        raise ModnasError(f"{file}: invalid JSON ({reason} at line {exc.lineno}, column {exc.colno})") from None
    except ModnasError as exc:
        raise ModnasError(f"{file}: {exc}") from None
    return parse_profile(data, origin=file)


def save_profile(profile: DeviceProfile, path: str | Path, force: bool = False) -> Path:
    """Write ``profile`` as JSON, atomically; an existing file is only replaced with ``force``."""
    file = Path(path)
    if file.is_dir():
        raise ModnasError(f"{str(file)!r} is a directory, not a profile file")
    if file.exists() and not force:
        raise ModnasError(f"{str(file)!r} already exists (use --force to overwrite it)")
    atomic_write_json(file, profile.to_json())
    return file


def profile_from_csv(name: str, path: str | Path, space: str = DEFAULT_SPACE, **fields: Any) -> DeviceProfile:
    """Build a profile from a CSV with columns ``arch_str`` and ``latency_ms`` (one row per architecture).

    It must hold at least as many architectures of ``space`` as it has reference architectures; an architecture
    given twice is refused, naming both rows. ``fields`` are further profile fields (``batch_size``, ...).
    """
    check_device_name(name)
    devices = space_devices(space)
    file = Path(path)
    if not file.is_file():
        raise ModnasError(f"latency file {str(file)!r} does not exist")
    try:
        text = file.read_text(encoding="utf-8-sig")  # tolerate the BOM spreadsheets write
    except (OSError, UnicodeDecodeError) as exc:
        raise ModnasError(f"cannot read latency file {str(file)!r}: {exc}") from None
    reader = csv.DictReader(line for line in text.splitlines() if line.strip() and not line.startswith("#"))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    for needed in ("arch_str", "latency_ms"):
        if needed not in columns:
            found = ", ".join(columns) or "none"
            raise ModnasError(f"{file}: needs columns 'arch_str' and 'latency_ms', found {found}")
    latencies: dict[str, float] = {}
    first_row: dict[str, int] = {}
    for row_no, raw in enumerate(reader, start=2):  # row 1 is the header
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        try:
            arch = devices.space.canonical_key(row["arch_str"])
        except ModnasError as exc:
            raise ModnasError(f"{file}: row {row_no}: {exc}") from None
        if arch in first_row:
            raise ModnasError(f"{file}: row {row_no}: {arch} is already given in row {first_row[arch]}")
        try:
            latencies[arch] = float(row["latency_ms"])
        except ValueError:
            raise ModnasError(f"{file}: row {row_no}: latency {row['latency_ms']!r} is not a number") from None
        first_row[arch] = row_no
    if not latencies:
        raise ModnasError(f"{file}: holds no latencies")
    data = {"name": name, "space": space, "latencies_ms": latencies, "source": "csv", **fields}
    return parse_profile(data, origin=file)


# -- the persistent store ---------------------------------------------------------------------------------------


def modnas_home() -> Path:
    """``$MODNAS_HOME``, or ``~/.modnas``."""
    env = os.environ.get("MODNAS_HOME")
    return Path(env).expanduser() if env else Path.home() / ".modnas"


class ProfileStore:
    """Registered custom devices: one profile JSON per device in ``<root>`` (default ``$MODNAS_HOME/devices``)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else modnas_home() / "devices"

    def path(self, name: str) -> Path:
        """Where the profile of ``name`` is (or would be) stored."""
        return self.root / f"{check_device_name(name)}.json"

    def names(self) -> tuple[str, ...]:
        """Stored device names, sorted."""
        if not self.root.is_dir():
            return ()
        # dot-files are the temporary files of atomic writes
        files = (p for p in self.root.glob("*.json") if not p.name.startswith(".") and p.is_file())
        return tuple(sorted(p.stem for p in files))

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def load(self, name: str) -> DeviceProfile:
        """The stored profile of ``name``."""
        file = self.root / f"{name}.json"
        try:
            check_device_name(name)
        except ModnasError as exc:
            if file.is_file():  # a hand-made file whose name can never be a device
                raise ModnasError(f"{file}: {exc}") from None
            raise
        if not file.is_file():
            raise UnknownDeviceError(f"no stored device called {name!r} (in {self.root})")
        profile = load_profile(file)
        if profile.name != name:  # a renamed file would register under a name nobody asked for
            raise ModnasError(f"{file}: holds device {profile.name!r}, not {name!r}")
        return profile

    def all(self) -> list[DeviceProfile]:
        """Every stored profile (a corrupt one raises, naming its file)."""
        return [self.load(n) for n in self.names()]

    def add(self, profile: DeviceProfile, force: bool = False) -> Path:
        """Store ``profile``; a stored name is only replaced with ``force``; built-in names are always refused."""
        if profile.name in builtin_device_names(profile.space):
            raise ModnasError(f"device name {profile.name!r} is taken by a built-in device; choose another name")
        file = self.path(profile.name)
        if file.exists() and not force:
            raise ModnasError(f"device {profile.name!r} is already stored in {file} (use --force to replace it)")
        return save_profile(profile, file, force=True)

    def remove(self, name: str) -> Path:
        """Delete the stored profile of ``name``."""
        if name in builtin_device_names():  # a built-in name can never have been stored
            raise ModnasError(f"{name!r} is a built-in device and cannot be removed")
        file = self.path(name)
        if not file.is_file():
            raise UnknownDeviceError(f"no stored device called {name!r} (in {self.root})")
        file.unlink()
        return file


# -- registry integration ---------------------------------------------------------------------------------------


def profile_description(profile: DeviceProfile) -> str:
    """A one-line description for the device list."""
    if profile.description:
        return profile.description
    hardware = profile.gpu or profile.processor or "user device"
    batch = "" if profile.batch_size is None else f", batch {profile.batch_size}"
    return f"{hardware}{batch} ({profile.source})"


def register_profile(profile: DeviceProfile, registry: DeviceRegistry, force: bool = False) -> Device:
    """Register ``profile`` as a custom device; architectures beyond the references land in
    ``Device.extra_latencies``.

    A profile with a fitted embedding registers its stored fit (no predictor is loaded) and all its measurements.
    """
    if profile.space != registry.space_name:
        raise ModnasError(f"device {profile.name!r} is a {profile.space} device, not {registry.space_name}")
    fields: dict[str, Any] = {
        "table": profile.latency_table,
        "batch_size": profile.batch_size,
        "description": profile_description(profile),
        "kind": "custom",
        "unit": profile.unit,
        "force": force,
    }
    if profile.embedding_fit is not None:
        return registry.register(
            profile.name,
            profile.embedding_fit.reference_ms,
            extra_latencies=dict(profile.latencies_ms),
            references_measured=False,
            **fields,
        )
    return registry.register(profile.name, dict(profile.latencies_ms), **fields)


def load_stored_devices(
    registry: DeviceRegistry, store: ProfileStore | None = None, skip_broken: bool = False
) -> list[Device]:
    """Register every stored profile of ``registry``'s space in it (stored profiles replace custom devices of the
    same name; profiles of other spaces are left to theirs).

    A corrupt profile, or one named like a built-in device, raises naming its file; with ``skip_broken`` it is
    skipped with a logged warning instead, and only asking ``registry`` for that device raises.
    """
    store = store or ProfileStore()
    devices = []
    for name in store.names():
        try:
            profile = store.load(name)
            if profile.space != registry.space_name:
                continue
            try:
                devices.append(register_profile(profile, registry, force=True))
            except ModnasError as exc:
                raise ModnasError(f"{store.path(name)}: {exc}") from None
        except ModnasError as exc:
            if not skip_broken:
                raise
            reason = str(exc)
            _log.warning("ignoring stored device %r (fix it, or `modnas device remove %s`): %s", name, name, reason)
            registry.mark_unavailable(name, f"stored device {name!r} cannot be used: {reason}")
    return devices


def sync_stored_device(store: ProfileStore, name: str, space: str = DEFAULT_SPACE) -> None:
    """After ``name`` was stored in or removed from ``store``, update the device set of ``space``."""
    space_devices(space).sync_profile(store, name)
