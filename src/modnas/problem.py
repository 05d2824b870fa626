"""The one object a search, a baseline, the scorer and the CLI receive: a :class:`Problem`.

``Problem = (space, truth, devices, reference)`` plus the hardware predictor of that space:

* ``space`` -- a :class:`~modnas.spaces.base.SearchSpace` (decisions, keys, encodings, networks);
* ``truth`` -- a :class:`GroundTruth`: true objective values of architectures on a device, from tables or
  surrogates, and which objectives cost a query (accuracy) and which do not (hardware);
* ``devices`` -- a :class:`DeviceSet`: built-in devices with their splits and embeddings, plus custom ones;
* ``reference`` -- a :class:`Reference`: explicit normalisation bounds per device and objective and a reference
  front (enumerated for tabular spaces, stored for the others).

Problems are looked up by name (:func:`get_problem`): a built-in name such as ``nb201``, or ``package.module:attr``
naming a problem object or a function that returns one, so a space that lives outside modnas needs no edit here.
The name is recorded in every run directory, so ``front``/``export``/``evaluate``/``plot``/``--resume`` reload it.
"""

from __future__ import annotations

import functools
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from modnas.errors import ModnasError
from modnas.hardware.devices import Device, DeviceSet

if TYPE_CHECKING:
    from modnas.spaces.base import SearchSpace


@dataclass(frozen=True)
class Objective:
    """A named objective with its unit; every objective is minimised. ``costs_query``: reading its true value
    costs one query of the budget (accuracy does, hardware measurements do not)."""

    name: str
    unit: str
    description: str
    costs_query: bool = False


class GroundTruth(ABC):
    """True objective values of a space's architectures (a table or a surrogate)."""

    #: The objectives this truth knows, by name; the first is the quality objective (``error``).
    objectives: dict[str, Objective]
    #: Architectures at or above this error are degenerate and excluded from scoring (None: no cut-off).
    error_cutoff: float | None = None

    @abstractmethod
    def evaluate(self, keys: Sequence[str], device: str | None, objectives: Sequence[str]) -> np.ndarray:
        """Raw values ``(N, M)`` of ``objectives`` for canonical ``keys`` on ``device`` (NaN where unknown).

        ``device`` may be None when only device-free objectives (error) are asked for.
        """

    def supports(self, objective: str, device: str) -> bool:
        """Whether ``objective`` has true values on ``device``."""
        return objective in self.objectives

    @property
    def query_objectives(self) -> tuple[str, ...]:
        """Objectives whose true value costs a query."""
        return tuple(n for n, o in self.objectives.items() if o.costs_query)

    def valid(self, values: np.ndarray) -> np.ndarray:
        """Rows that take part in scoring: every value known and the error below the cut-off."""
        ok = np.isfinite(values).all(axis=1)
        if self.error_cutoff is not None:
            ok &= values[:, 0] < self.error_cutoff
        return ok

    def details(self, arch: str) -> dict[str, Any]:
        """Everything known about one architecture (``modnas arch``): its key, its error, and its value of every
        other objective on every device that has one."""
        raise ModnasError("this ground truth gives no details of single architectures")

    def describe(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        """Extra per-architecture columns for tables and exports (e.g. a tabular index); empty by default."""
        return [{} for _ in keys]


@dataclass(frozen=True)
class Normalisation:
    """Protocol state of one device: min-max bounds and the reference front."""

    device: str
    objectives: tuple[str, ...]
    lower: np.ndarray  # (M,)
    upper: np.ndarray  # (M,)
    front_keys: tuple[str, ...]  # architectures of the reference front, sorted by error
    front_raw: np.ndarray  # their raw values
    front_points: np.ndarray  # their normalised values
    reference_front: np.ndarray  # the distinct front points: what IGD / IGD+ measure against
    true_hv: float  # HV of the reference front (the best any method can reach when the front is exact)
    exact: bool = True  # True when the front is the true front (enumerated), False for a stored estimate

    def normalise(self, values: np.ndarray) -> np.ndarray:
        return (values - self.lower) / (self.upper - self.lower)


class Reference(ABC):
    """Normalisation bounds and reference fronts per device and objectives."""

    @abstractmethod
    def normalisation(self, device: str, objectives: tuple[str, ...]) -> Normalisation:
        """Bounds and reference front of one device (implementations cache)."""


class EnumeratedReference(Reference):
    """Bounds and true fronts by enumerating a small space through its ground truth (as the MODNAS NB201 protocol
    does): min-max over every valid architecture, the true Pareto front of all of them."""

    def __init__(self, space: SearchSpace, truth: GroundTruth) -> None:
        self.space, self.truth = space, truth
        self._cache: dict[tuple[str, tuple[str, ...]], Normalisation] = {}

    @functools.cached_property
    def keys(self) -> list[str]:
        archs = self.space.enumerate()
        if archs is None:
            raise ModnasError(f"search space {self.space.name!r} cannot be enumerated")
        return self.space.keys(archs)

    def normalisation(self, device: str, objectives: tuple[str, ...]) -> Normalisation:
        cache_key = (device, tuple(objectives))
        if cache_key in self._cache:
            return self._cache[cache_key]
        raw = self.truth.evaluate(self.keys, device, objectives)
        valid = self.truth.valid(raw)
        pool = raw[valid]
        lower, upper = pool.min(axis=0), pool.max(axis=0)
        if (upper <= lower).any():
            raise ModnasError(f"objective values on {device!r} are constant; the protocol's normalisation is undefined")
        keys = [self.keys[i] for i in np.flatnonzero(valid)]
        norm = front_normalisation(device, objectives, keys, pool, lower, upper, exact=True)
        self._cache[cache_key] = norm
        return norm


def front_normalisation(
    device: str,
    objectives: Sequence[str],
    keys: Sequence[str],
    raw: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    exact: bool,
) -> Normalisation:
    """The :class:`Normalisation` of ``device`` from explicit bounds and the raw values of candidate architectures
    (the non-dominated ones among them form the reference front)."""
    from modnas.evaluation.pareto import hypervolume, nondominated_mask, pareto_front

    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    if lower.shape != (len(objectives),) or upper.shape != lower.shape or (upper <= lower).any():
        raise ModnasError(f"bounds of {device!r} must be one lower < upper pair per objective")
    raw = np.asarray(raw, dtype=np.float64).reshape(len(keys), len(objectives))
    normalised = (raw - lower) / (upper - lower)
    on_front = nondominated_mask(normalised, keep_duplicates=True)
    front_pts = normalised[on_front]
    positions = np.flatnonzero(on_front)
    order = np.lexsort(front_pts.T[::-1])
    return Normalisation(
        device=device,
        objectives=tuple(objectives),
        lower=lower,
        upper=upper,
        front_keys=tuple(keys[i] for i in positions[order]),
        front_raw=raw[positions[order]],
        front_points=front_pts[order],
        reference_front=pareto_front(front_pts),
        true_hv=hypervolume(front_pts, 1.0),
        exact=exact,
    )


#: The file format of a stored reference (:class:`StoredReference`).
REFERENCE_FORMAT = "modnas-reference"


class StoredReference(Reference):
    """Bounds and reference fronts read from a JSON file shipped with a space that cannot be enumerated.

    The file holds, per device and objective tuple, explicit bounds (``lower``/``upper``) and the reference front's
    architectures with their raw values, and the command that regenerates it (``provenance.command``). The front
    is an estimate (``Normalisation.exact`` is False): its HV is the reference HV, not a proven maximum.
    :func:`write_reference` writes such a file from any reference.
    """

    def __init__(self, source: Any) -> None:
        import json
        from importlib import resources

        self.source = source
        try:
            if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
                from pathlib import Path

                text = Path(source).read_text(encoding="utf-8")
            else:
                with resources.as_file(source) as path:
                    text = path.read_text(encoding="utf-8")
            data = json.loads(text)
        except (OSError, ValueError) as exc:
            raise ModnasError(f"reference file {source}: cannot be read ({type(exc).__name__}: {exc})") from None
        if not isinstance(data, dict) or data.get("format") != REFERENCE_FORMAT:
            raise ModnasError(f"reference file {source}: not a {REFERENCE_FORMAT} file")
        self.space = str(data.get("space", ""))
        self.provenance: dict[str, Any] = dict(data.get("provenance") or {})
        self._entries = {(e["device"], tuple(e["objectives"])): e for e in data.get("fronts", [])}
        self._cache: dict[tuple[str, tuple[str, ...]], Normalisation] = {}

    def devices(self) -> tuple[str, ...]:
        """Devices with a stored front."""
        return tuple(dict.fromkeys(d for d, _ in self._entries))

    def normalisation(self, device: str, objectives: tuple[str, ...]) -> Normalisation:
        key = (device, tuple(objectives))
        if key in self._cache:
            return self._cache[key]
        entry = self._entries.get(key)
        if entry is None:
            how = self.provenance.get("command")
            hint = f"; regenerate it with `{how}`" if how else ""
            raise ModnasError(
                f"no stored reference front for {device!r} with objectives {','.join(objectives)} in "
                f"{self.source}{hint}"
            )
        keys = [str(f["arch_str"]) for f in entry["front"]]
        raw = np.asarray([f["values"] for f in entry["front"]], dtype=np.float64)
        norm = front_normalisation(device, objectives, keys, raw, entry["lower"], entry["upper"], exact=False)
        self._cache[key] = norm
        return norm


def write_reference(
    reference: Reference,
    space: str,
    pairs: Sequence[tuple[str, Sequence[str]]],
    path: Any,
    command: str,
) -> None:
    """Write the bounds and fronts of ``reference`` for ``(device, objectives)`` pairs as a stored reference file
    (atomically), with ``command`` as the way to regenerate it."""
    import datetime

    from modnas import __version__
    from modnas.io import atomic_write_json

    fronts = []
    for device, objectives in pairs:
        norm = reference.normalisation(device, tuple(objectives))
        fronts.append({
            "device": device,
            "objectives": list(objectives),
            "lower": [float(x) for x in norm.lower],
            "upper": [float(x) for x in norm.upper],
            "front": [{"arch_str": k, "values": [float(v) for v in row]} for k, row in zip(norm.front_keys, norm.front_raw)],
        })  # fmt: skip
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    atomic_write_json(path, {
        "format": REFERENCE_FORMAT,
        "version": 1,
        "space": space,
        "provenance": {"command": command, "created": created, "modnas": __version__},
        "fronts": fronts,
    })  # fmt: skip


@dataclass
class Problem:
    """A search space with its ground truth, devices, reference and hardware models (see the module docstring)."""

    name: str
    space: SearchSpace
    truth: GroundTruth
    devices: DeviceSet
    reference: Reference
    #: builds the frozen hardware predictor ``f(onehot (B, D, O), embeddings (E, k)) -> (B, E)``
    predictor_factory: Callable[[], torch.nn.Module]
    #: exact, differentiable models of hardware objectives other than latency: (objective, device) -> model with
    #: ``__call__(onehot) -> tensor`` and ``predict(choice indices) -> array`` (NB201: HW-NAS-Bench energy)
    exact_models: Callable[[str, str], Any] | None = None
    #: the default devices of a search and its default evaluation devices, per objective tuple
    default_devices: Callable[[tuple[str, ...]], tuple[tuple[str, ...], tuple[str, ...]]] | None = None
    #: the hardware predictor's training and evaluation data (:class:`modnas.hardware.training.LatencyData`)
    latency_data: Callable[[], Any] | None = None
    #: one-shot mode: dataset presets and the caveat printed with a one-shot HV
    extras: dict[str, Any] = field(default_factory=dict)
    #: benchmark-mode settings this space needs other than the global defaults (dotted config keys -> values);
    #: a config file or option that sets one wins (see :func:`modnas.config.load_config`)
    search_defaults: dict[str, Any] = field(default_factory=dict)
    #: the same for one-shot mode (OFA: Fashion-MNIST and a CPU-sized supernet and schedule)
    oneshot_defaults: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def predictor(self) -> torch.nn.Module:
        """The frozen hardware predictor (loaded once per problem)."""
        return self.load_predictor()

    def load_predictor(self, checkpoint: str | None = None) -> torch.nn.Module:
        """A freshly loaded, frozen copy of the hardware predictor, or of the ``modnas predictor train``
        ``checkpoint`` for this space (a search config's ``hardware_predictor``)."""
        if checkpoint is None:
            model = self.predictor_factory()
        else:
            from modnas.hardware.predictor import load_predictor

            model = load_predictor(checkpoint, self.name)[0]
        for p in model.parameters():
            p.requires_grad_(False)
        return model.eval()

    def require_quality_truth(self, what: str) -> None:
        """Refuse ``what`` (benchmark mode, the baselines) on a space whose quality has no ground truth (gpt-tiny:
        only its supernet can rate an architecture)."""
        if self.extras.get("quality") == "inherited":
            raise ModnasError(
                f"{self.name} has no quality ground truth, so {what} cannot run on it; it searches in one-shot "
                "mode only (--mode oneshot)"
            )

    def check_objectives(self, objectives: Sequence[str]) -> tuple[str, ...]:
        """Validate an objective list: ``error`` first, then distinct hardware objectives this truth knows."""
        objs = tuple(objectives)
        unknown = [o for o in objs if o not in self.truth.objectives]
        if unknown:
            raise ModnasError(f"unknown objective {unknown[0]!r}; choose from: {', '.join(self.truth.objectives)}")
        if len(objs) < 2 or objs[0] != "error" or len(set(objs)) != len(objs):
            raise ModnasError(f"objectives must be 'error' followed by distinct hardware objectives, got {list(objs)}")
        return objs

    def check_devices(self, names: Sequence[str], objectives: Sequence[str]) -> None:
        """Every device must exist, and have values for every hardware objective beyond latency."""
        for name in names:
            self.devices.get(name)
        for objective in objectives[2:]:
            missing = [n for n in names if not self.truth.supports(objective, n)]
            if missing:
                has = [n for n in self.devices.names("all") if self.truth.supports(objective, n)]
                raise ModnasError(
                    f"{objective} is an objective, but {', '.join(missing)} has no {objective} data "
                    f"(only {', '.join(has)})"
                )

    def exact_model(self, objective: str, device: str) -> Any:
        """The exact model of a hardware objective other than latency on ``device``."""
        if self.exact_models is None:
            raise ModnasError(f"problem {self.name!r} has no model for {objective!r}")
        return self.exact_models(objective, device)

    def bound_candidates(self, samples: int = 4096, seed: int = 0) -> np.ndarray:
        """Architectures over which predicted bounds are taken: every one when the space can be enumerated,
        else its two extremes plus a fixed uniform sample."""
        archs = self.space.enumerate()
        if archs is not None:
            return archs
        extremes = self.space.parse_many(list(self.space.extremes()))
        drawn = self.space.sample(samples, np.random.default_rng(seed))
        return np.concatenate([extremes, drawn])

    def true_latencies(self, device: Device, keys: Sequence[str]) -> np.ndarray:
        """True latency of ``keys`` on ``device``: the ground truth where the device has one, else its own
        measurements (profiles); NaN where unknown."""
        if device.has_table:
            return self.truth.evaluate(keys, device.name, ("latency",))[:, 0]
        return self.devices.known_latencies(device, keys)


# -- the registry of problems -------------------------------------------------------------------------------------

#: Built-in problems: name -> "module:attribute" of a function returning the :class:`Problem`.
BUILTIN_PROBLEMS: dict[str, str] = {
    "nb201": "modnas.spaces.nb201.problem:make_problem",
    "ofa": "modnas.spaces.ofa.problem:make_problem",
    "gpt-s": "modnas.spaces.gpt.problem:make_problem",
    "gpt-tiny": "modnas.spaces.gpt.problem:make_tiny_problem",
}
#: The space of runs, profiles and predictor checkpoints written before they named one.
DEFAULT_SPACE = "nb201"

_LOADED: dict[str, Problem] = {}


def get_problem(name: str | Problem = "nb201") -> Problem:
    """The problem called ``name``: a built-in name, or ``package.module:attr`` (a :class:`Problem` or a function
    returning one). Loaded once per process."""
    if isinstance(name, Problem):
        return name
    if not isinstance(name, str) or not name.strip():
        raise ModnasError(f"search space must be a name, got {name!r}")
    name = name.strip()
    if name in _LOADED:
        return _LOADED[name]
    target = BUILTIN_PROBLEMS.get(name, name)
    if ":" not in target:
        raise ModnasError(
            f"unknown search space {name!r}; available: {', '.join(BUILTIN_PROBLEMS)} (or package.module:attr)"
        )
    module_name, _, attr = target.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModnasError(f"search space {name!r} cannot be loaded ({type(exc).__name__}: {exc})") from None
    problem = obj() if callable(obj) and not isinstance(obj, Problem) else obj
    if not isinstance(problem, Problem):
        raise ModnasError(f"search space {name!r} does not name a modnas Problem")
    _LOADED[name] = problem
    # also by its own name, which is what its devices and profiles record
    _LOADED.setdefault(problem.name, problem)
    return problem


def register_problem(name: str, target: str | Problem | Callable[[], Problem]) -> None:
    """Make ``name`` usable as ``--space``/``space:`` in this process: a ``module:attr`` string, a problem, or a
    function returning one. Built-in names cannot be replaced."""
    if name in BUILTIN_PROBLEMS and BUILTIN_PROBLEMS[name] != target:
        raise ModnasError(f"search space name {name!r} is taken by a built-in space")
    _LOADED.pop(name, None)
    if isinstance(target, str):
        BUILTIN_PROBLEMS[name] = target
    else:
        _LOADED[name] = target if isinstance(target, Problem) else target()


def problem_names() -> tuple[str, ...]:
    """Names of the built-in problems."""
    return tuple(BUILTIN_PROBLEMS)
