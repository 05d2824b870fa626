"""The one shared scorer: every method in modnas (MODNAS, baselines, random search) is scored only here.

For one device of a :class:`~modnas.problem.Problem` (e.g. the MODNAS NB201 protocol):

1. objectives, all minimised: ``error`` and the device's hardware objectives (``latency``, optionally ``energy``),
   with true values from the problem's ground truth;
2. drop architectures the ground truth marks invalid (degenerate cells with error >= 90 %, a missing value);
3. min-max normalise each objective with the problem's reference bounds for the device;
4. the candidates' non-dominated set is scored with hypervolume (reference point of ones, so the maximum is 1),
   IGD and IGD+ against the reference front, its size, and how many candidates lie on the reference front.

The reference front is the true front where the space can be enumerated (its HV is the upper bound any method can
reach) and a stored large-budget estimate otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from modnas.evaluation.pareto import hypervolume, igd, igd_plus, nondominated_mask, pareto_front
from modnas.problem import Normalisation, Objective, Problem, get_problem

__all__ = ["Normalisation", "Objective", "Score", "TrueFront", "check_objectives", "protocol", "score", "score_keys",
           "true_front"]


def check_objectives(objectives: Sequence[str], problem: Problem | str = "nb201") -> tuple[str, ...]:
    """Validate an objective list: it starts with ``error`` and names each objective once."""
    return get_problem(problem).check_objectives(objectives)


def protocol(
    device: str, objectives: tuple[str, ...] = ("error", "latency"), problem: Problem | str = "nb201"
) -> Normalisation:
    """Normalisation bounds and reference front of one device (cached by the problem's reference)."""
    prob = get_problem(problem)
    return prob.reference.normalisation(device, prob.check_objectives(objectives))


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
    archs: Sequence[str] | np.ndarray,
    device: str,
    objectives: Sequence[str] = ("error", "latency"),
    problem: Problem | str = "nb201",
) -> Score:
    """Score architectures (strings, or an ``(n, num_decisions)`` array of choice indices) on one device."""
    prob = get_problem(problem)
    if len(archs) and not isinstance(archs[0], str):  # choice indices, as an array or nested lists
        keys = prob.space.keys(prob.space.check_indices(np.asarray(archs)).reshape(-1, prob.space.num_decisions))
    else:
        keys = [prob.space.canonical_key(str(a)) for a in archs]
    return score_keys(keys, device, objectives, prob)


def score_keys(
    keys: Sequence[str] | np.ndarray,
    device: str,
    objectives: Sequence[str] = ("error", "latency"),
    problem: Problem | str = "nb201",
) -> Score:
    """Score architectures given by canonical keys (repeats count once)."""
    prob = get_problem(problem)
    norm = protocol(device, tuple(objectives), prob)
    unique = prob.space.sort_keys(list(dict.fromkeys(str(k) for k in keys)))
    raw = prob.truth.evaluate(unique, device, norm.objectives) if unique else np.zeros((0, len(norm.objectives)))
    valid = prob.truth.valid(raw) if len(unique) else np.zeros(0, dtype=bool)
    kept = [k for k, v in zip(unique, valid) if v]
    points = norm.normalise(raw[valid])
    mask = nondominated_mask(points, keep_duplicates=True)
    front_keys, front_pts = [k for k, m in zip(kept, mask) if m], points[mask]
    order = np.lexsort(front_pts.T[::-1])
    front_keys, front_pts = [front_keys[i] for i in order], front_pts[order]
    on_front = set(norm.front_keys)
    return Score(
        device=device,
        split=prob.devices.get(device).split,
        objectives=norm.objectives,
        hv=hypervolume(front_pts, 1.0),
        true_hv=norm.true_hv,
        igd=_finite_or_none(igd(pareto_front(front_pts), norm.reference_front) if len(front_pts) else math.nan),
        igd_plus=_finite_or_none(igd_plus(front_pts, norm.reference_front) if len(front_pts) else math.nan),
        n_candidates=len(unique),
        n_valid=len(kept),
        n_front=len(front_keys),
        n_on_true_front=sum(k in on_front for k in kept),
        front=tuple(front_keys),
    )


@dataclass(frozen=True)
class TrueFront:
    """The true Pareto front of one device: architectures, raw and normalised values, hypervolume."""

    device: str
    split: str
    objectives: tuple[str, ...]
    hv: float
    arch_strs: tuple[str, ...]
    raw: np.ndarray
    normalised: np.ndarray
    details: tuple[dict, ...] = ()  # per architecture, the ground truth's extra columns (NB201: arch_index)

    @property
    def indices(self) -> tuple[int, ...]:
        """Tabular indices of the front's architectures (tabular spaces only; empty otherwise)."""
        return tuple(d["arch_index"] for d in self.details if "arch_index" in d)

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
        for i, arch in enumerate(self.arch_strs):
            row: dict = {**(self.details[i] if self.details else {}), "arch_str": arch}
            for j, obj in enumerate(self.objectives):
                row[obj] = float(self.raw[i, j])
                row[f"{obj}_normalised"] = float(self.normalised[i, j])
            rows.append(row)
        return {
            "device": self.device,
            "split": self.split,
            "objectives": list(self.objectives),
            "hv": self.hv,
            "n_front": len(self.arch_strs),
            "front": rows,
        }


def true_front(
    device: str, objectives: Sequence[str] = ("error", "latency"), problem: Problem | str = "nb201"
) -> TrueFront:
    """The device's reference (NB201: true) Pareto front; its ``hv`` is the best any method can score."""
    prob = get_problem(problem)
    norm = protocol(device, tuple(objectives), prob)
    return TrueFront(
        device=device,
        split=prob.devices.get(device).split,
        objectives=norm.objectives,
        hv=norm.true_hv,
        arch_strs=norm.front_keys,
        raw=norm.front_raw,
        normalised=norm.front_points,
        details=tuple(prob.truth.describe(list(norm.front_keys))),
    )
