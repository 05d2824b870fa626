"""The one shared scorer: every method in modnas (MODNAS, baselines, random search) is scored only here.

MODNAS NB201 protocol (spec section 9), for one device:

1. objectives, all minimised: ``error`` = 100 - CIFAR-10 test accuracy after 200 epochs (NB201), the device
   ``latency`` (ms, HELP tables) and optionally ``energy`` (mJ, HW-NAS-Bench, eyeriss and fpga only);
2. drop architectures with error >= 90 % (degenerate cells) and architectures with a missing value;
3. min-max normalise each objective over *all* architectures of the space that pass the same filter;
4. the candidates' non-dominated set is scored with hypervolume (reference point of ones, so the maximum is 1),
   IGD and IGD+ against the true front, its size, and how many candidates lie on the true front.

The same code gives the true front of each device (all 15,625 architectures as candidates) and its hypervolume,
the upper bound any method can reach.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from modnas.errors import ModnasError
from modnas.evaluation.pareto import hypervolume, igd, igd_plus, nondominated_mask, pareto_front
from modnas.hardware.devices import ENERGY_DEVICES, registry
from modnas.spaces.nb201 import ArchLike, index_to_string, to_index
from modnas.tables.nb201 import check_index, nb201_tables

#: Architectures at or above this error (%) are degenerate and excluded, as in the MODNAS protocol.
ERROR_CUTOFF = 90.0


@dataclass(frozen=True)
class Objective:
    """A named objective with its unit; every objective is minimised."""

    name: str
    unit: str
    description: str


OBJECTIVES: dict[str, Objective] = {
    "error": Objective("error", "%", "100 - NB201 CIFAR-10 test accuracy (200 epochs, mean over seeds)"),
    "latency": Objective("latency", "ms", "device latency from the HELP tables"),
    "energy": Objective("energy", "mJ", "energy per inference from HW-NAS-Bench (eyeriss, fpga)"),
}


def objective_values(objective: str, device: str) -> np.ndarray:
    """True values of one objective for all 15,625 architectures on ``device`` (NaN where unknown)."""
    if objective == "error":
        return 100.0 - nb201_tables.full_column("accuracy", "cifar10_test_acc_200ep")
    dev = registry.get(device)
    if objective == "latency":
        if not dev.has_table:
            raise ModnasError(f"device {device!r} has no ground-truth latency table, so it cannot be scored")
        return nb201_tables.full_column("latency", device)
    if objective == "energy":
        if dev.energy_metric is None:
            raise ModnasError(f"no energy data for device {device!r}; energy exists for: {', '.join(ENERGY_DEVICES)}")
        return nb201_tables.full_column("hwnasbench", dev.energy_metric)
    raise ModnasError(f"unknown objective {objective!r}; choose from: {', '.join(OBJECTIVES)}")


def check_objectives(objectives: Sequence[str]) -> tuple[str, ...]:
    """Validate an objective list: it starts with ``error`` and names each objective once."""
    objs = tuple(objectives)
    unknown = [o for o in objs if o not in OBJECTIVES]
    if unknown:
        raise ModnasError(f"unknown objective {unknown[0]!r}; choose from: {', '.join(OBJECTIVES)}")
    if len(objs) < 2 or objs[0] != "error" or len(set(objs)) != len(objs):
        raise ModnasError(f"objectives must be 'error' followed by distinct hardware objectives, got {list(objs)}")
    return objs


@dataclass(frozen=True)
class Normalisation:
    """Per-device protocol state: valid architectures, min-max bounds, and the true front."""

    device: str
    objectives: tuple[str, ...]
    raw: np.ndarray  # (15625, M) raw objective values
    valid: np.ndarray  # (15625,) bool: passes the error filter and has every value
    lower: np.ndarray  # (M,)
    upper: np.ndarray  # (M,)
    true_front_indices: np.ndarray  # canonical indices on the true front, sorted by error
    true_front_points: np.ndarray  # their normalised objective values
    reference_front: np.ndarray  # the distinct true-front points: what IGD/IGD+ measure against
    true_hv: float

    def normalise(self, values: np.ndarray) -> np.ndarray:
        return (values - self.lower) / (self.upper - self.lower)


@functools.lru_cache(maxsize=128)
def protocol(device: str, objectives: tuple[str, ...] = ("error", "latency")) -> Normalisation:
    """Normalisation bounds and true front of one device under the MODNAS protocol (cached)."""
    objs = check_objectives(objectives)
    raw = np.stack([objective_values(o, device) for o in objs], axis=1)
    valid = (raw[:, 0] < ERROR_CUTOFF) & np.isfinite(raw).all(axis=1)
    pool = raw[valid]
    lower, upper = pool.min(axis=0), pool.max(axis=0)
    if (upper <= lower).any():
        raise ModnasError(f"objective values on {device!r} are constant; the protocol's normalisation is undefined")
    normalised = (pool - lower) / (upper - lower)
    on_front = nondominated_mask(normalised, keep_duplicates=True)
    front_idx = np.flatnonzero(valid)[on_front]
    front_pts = normalised[on_front]
    order = np.lexsort(front_pts.T[::-1])
    return Normalisation(
        device=device,
        objectives=objs,
        raw=raw,
        valid=valid,
        lower=lower,
        upper=upper,
        true_front_indices=front_idx[order],
        true_front_points=front_pts[order],
        reference_front=pareto_front(front_pts),
        true_hv=hypervolume(front_pts, 1.0),
    )


@dataclass(frozen=True)
class Score:
    """How good a set of architectures is on one device under the shared protocol."""

    device: str
    split: str
    objectives: tuple[str, ...]
    hv: float
    true_hv: float
    igd: float | None
    igd_plus: float | None
    n_candidates: int  # distinct architectures handed in
    n_valid: int  # of those, passing the error filter with every value known
    n_front: int  # distinct architectures on the candidates' own non-dominated set
    n_on_true_front: int  # candidates that lie on the device's true Pareto front
    front: tuple[str, ...]  # arch strings of the candidates' front, sorted by error

    @property
    def hv_ratio(self) -> float:
        """HV as a fraction of the true front's HV."""
        return self.hv / self.true_hv if self.true_hv > 0 else float("nan")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["objectives"] = list(self.objectives)
        out["front"] = list(self.front)
        out["hv_ratio"] = self.hv_ratio
        return out


def _finite_or_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def score(
    archs: Sequence[ArchLike] | np.ndarray | Sequence[str],
    device: str,
    objectives: Sequence[str] = ("error", "latency"),
) -> Score:
    """Score architectures (arch strings or an ``(n, 6)`` array of op indices) on one device.

    Use :func:`score_indices` for canonical NB201 indices.
    """
    indices = _as_canonical(archs)
    return score_indices(indices, device, objectives)


def score_indices(indices: np.ndarray, device: str, objectives: Sequence[str] = ("error", "latency")) -> Score:
    """Score architectures given by canonical NB201 indices."""
    norm = protocol(device, check_objectives(objectives))
    idx = np.unique(check_index(np.asarray(indices, dtype=np.int64)))
    kept = idx[norm.valid[idx]]
    points = norm.normalise(norm.raw[kept])
    mask = nondominated_mask(points, keep_duplicates=True)
    front_idx, front_pts = kept[mask], points[mask]
    order = np.lexsort(front_pts.T[::-1])
    front_idx, front_pts = front_idx[order], front_pts[order]
    return Score(
        device=device,
        split=registry.get(device).split,
        objectives=norm.objectives,
        hv=hypervolume(front_pts, 1.0),
        true_hv=norm.true_hv,
        igd=_finite_or_none(igd(pareto_front(front_pts), norm.reference_front) if len(front_pts) else math.nan),
        igd_plus=_finite_or_none(igd_plus(front_pts, norm.reference_front) if len(front_pts) else math.nan),
        n_candidates=int(idx.size),
        n_valid=int(kept.size),
        n_front=int(front_idx.size),
        n_on_true_front=int(np.isin(kept, norm.true_front_indices).sum()),
        front=tuple(index_to_string(int(i)) for i in front_idx),
    )


def _as_canonical(archs: Sequence[ArchLike] | np.ndarray | Sequence[str]) -> np.ndarray:
    if isinstance(archs, np.ndarray) and archs.dtype.kind in "iu" and archs.ndim == 2:
        return to_index(archs)
    if len(archs) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.atleast_1d(to_index(list(archs) if not isinstance(archs, np.ndarray) else archs))


@dataclass(frozen=True)
class TrueFront:
    """The true Pareto front of one device: architectures, raw and normalised values, hypervolume."""

    device: str
    split: str
    objectives: tuple[str, ...]
    hv: float
    indices: tuple[int, ...]
    arch_strs: tuple[str, ...]
    raw: np.ndarray
    normalised: np.ndarray

    def best_for(self, preference: Sequence[float] | np.ndarray) -> int:
        """Position in the front of the architecture minimising ``preference . normalised objectives``.

        This is the ground-truth answer to "which architecture for this trade-off on this device", the one a
        trained hypernetwork should return for the same preference.
        """
        from modnas.evaluation.preferences import validate_preference

        pref = validate_preference(preference, n_objectives=len(self.objectives))
        return int(np.argmin(self.normalised @ pref))

    def to_dict(self) -> dict:
        rows = []
        for i, (idx, arch) in enumerate(zip(self.indices, self.arch_strs)):
            row: dict = {"arch_index": idx, "arch_str": arch}
            for j, obj in enumerate(self.objectives):
                row[obj] = float(self.raw[i, j])
                row[f"{obj}_normalised"] = float(self.normalised[i, j])
            rows.append(row)
        return {
            "device": self.device,
            "split": self.split,
            "objectives": list(self.objectives),
            "hv": self.hv,
            "n_front": len(self.indices),
            "front": rows,
        }


def true_front(device: str, objectives: Sequence[str] = ("error", "latency")) -> TrueFront:
    """The device's true Pareto front under the protocol; its ``hv`` is the best any method can score."""
    norm = protocol(device, check_objectives(objectives))
    idx = norm.true_front_indices
    return TrueFront(
        device=device,
        split=registry.get(device).split,
        objectives=norm.objectives,
        hv=norm.true_hv,
        indices=tuple(int(i) for i in idx),
        arch_strs=tuple(index_to_string(int(i)) for i in idx),
        raw=norm.raw[idx],
        normalised=norm.true_front_points,
    )
