"""Picking one architecture from a front: the most accurate one under limits, or the knee.

Two rules, both free of any search-space detail (they see arrays of objective values):

* ``accuracy``: among the candidates that meet every limit (``latency <= X ms``, ``energy <= Y mJ``,
  ``accuracy >= Z %``), the one of lowest error. When none meets them all, the *closest* one: the smallest
  largest relative violation ``max_j excess_j / |limit_j|`` (a latency of 2.2 ms under a 2 ms limit is 10 % over),
  ties broken by the smaller sum of relative violations, then by the lower error. Relative, so that limits in
  different units (ms, mJ, %) weigh alike; the largest one, so that a pick that misses one limit badly is not
  preferred to one that misses two slightly.
* ``knee``: the point of the non-dominated set farthest, on the side of the ideal point, from the hyperplane
  through the extreme points (each best in one objective), with every objective min-max normalised over the set.
  With two objectives that hyperplane is the line between the most accurate and the fastest architecture, and the
  knee is where trading one objective for the other stops paying (Das 1999; Branke et al. 2004). It needs no
  preference; ties go to the lower error. With limits, the knee is taken among the candidates that meet them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from modnas.errors import ModnasError
from modnas.evaluation.pareto import nondominated_mask

Rule = Literal["accuracy", "knee"]
RULES: tuple[str, ...] = ("accuracy", "knee")


@dataclass(frozen=True)
class Limit:
    """One bound on a value: ``value <= bound`` (``upper``) or ``value >= bound``."""

    key: str  # which value array it bounds, e.g. "latency_ms"
    bound: float
    upper: bool
    label: str  # for messages: "latency", "energy", "accuracy"
    unit: str

    def violation(self, values: np.ndarray) -> np.ndarray:
        """Relative amount by which ``values`` break the limit (0 where they meet it)."""
        excess = values - self.bound if self.upper else self.bound - values
        return np.maximum(excess, 0.0) / abs(self.bound)

    def describe(self) -> str:
        return f"{self.label} {'<=' if self.upper else '>='} {self.bound:g} {self.unit}".rstrip()


def make_limits(
    max_latency_ms: float | None = None, max_energy_mj: float | None = None, min_accuracy: float | None = None
) -> list[Limit]:
    """The limits a user gave, validated (positive finite latency and energy, accuracy in (0, 100] %)."""
    limits = []
    for value, name in ((max_latency_ms, "max-latency-ms"), (max_energy_mj, "max-energy-mj")):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ModnasError(f"--{name} must be a positive number, got {value}")
    if min_accuracy is not None and not (math.isfinite(min_accuracy) and 0 < min_accuracy <= 100):
        raise ModnasError(f"--min-accuracy is a percentage in (0, 100], got {min_accuracy}")
    if max_latency_ms is not None:
        limits.append(Limit("latency_ms", float(max_latency_ms), True, "latency", "ms"))
    if max_energy_mj is not None:
        limits.append(Limit("energy_mJ", float(max_energy_mj), True, "energy", "mJ"))
    if min_accuracy is not None:
        limits.append(Limit("accuracy", float(min_accuracy), False, "accuracy", "%"))
    return limits


def check_rule(rule: str) -> Rule:
    """``rule`` if it is one of :data:`RULES`, else a one-line error."""
    if rule not in RULES:
        raise ModnasError(f"unknown pick rule {rule!r}; choose {' or '.join(RULES)}")
    return rule  # type: ignore[return-value]


def knee_index(points: np.ndarray | Sequence[Sequence[float]]) -> int:
    """Row of ``points`` (to minimise, shape ``(n, m)``) at the knee of their non-dominated set (see module doc)."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or len(pts) == 0:
        raise ModnasError("the knee needs a non-empty (n, m) array of objective values")
    if not np.isfinite(pts).all():
        raise ModnasError("the knee needs finite objective values")
    front = np.flatnonzero(nondominated_mask(pts))
    if len(front) == 1:
        return int(front[0])
    sub = pts[front]
    low, high = sub.min(axis=0), sub.max(axis=0)
    z = (sub - low) / np.where(high > low, high - low, 1.0)
    # extreme point of objective j: best in j, ties broken by the smallest sum of the others
    extremes = [int(np.lexsort((z.sum(axis=1), z[:, j]))[0]) for j in range(z.shape[1])]
    normal = np.ones(z.shape[1])
    try:
        solved = np.linalg.solve(z[extremes], np.ones(z.shape[1]))
        if np.isfinite(solved).all() and (solved > 0).all():
            normal = solved
    except np.linalg.LinAlgError:
        pass  # extremes not in general position (e.g. one shared by two objectives): the plane sum(z) = 1
    distance = (1.0 - z @ normal) / np.linalg.norm(normal)
    best = np.lexsort((np.arange(len(sub)), sub[:, 0], -np.round(distance, 12)))[0]
    return int(front[best])


@dataclass
class Selection:
    """The outcome of :func:`select`: which candidate, by which rule, and whether it meets the limits."""

    index: int
    rule: Rule
    limits: list[Limit]
    satisfied: bool
    violation: float  # largest relative violation of the pick (0 when satisfied)
    n_candidates: int
    n_feasible: int
    values: dict[str, float] = field(default_factory=dict)  # the pick's bounded values

    @property
    def note(self) -> str:
        """One line saying what was picked and why."""
        wanted = ", ".join(limit.describe() for limit in self.limits)
        if not self.satisfied:
            misses = []
            for limit in self.limits:
                value = self.values[limit.key]
                over = float(limit.violation(np.array([value]))[0])
                if over > 0:
                    misses.append(f"{limit.label} {value:.4g} {limit.unit} ({100 * over:.1f} % past the limit)")
            return (
                f"no architecture of the {self.n_candidates} meets {wanted}; picked the closest (smallest relative "
                f"violation): {', '.join(misses)}"
            )
        what = (
            "the knee (farthest from the line between the extremes, normalised objectives)"
            if self.rule == "knee"
            else "the most accurate"
        )
        among = f"{self.n_feasible} of {self.n_candidates} architectures meeting {wanted}" if self.limits else (
            f"{self.n_candidates} architectures"
        )
        return f"{what} of {among}"

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "limits": [limit.describe() for limit in self.limits],
            "satisfied": self.satisfied,
            "violation": round(self.violation, 6),
            "n_candidates": self.n_candidates,
            "n_feasible": self.n_feasible,
            "note": self.note,
        }


def select(
    error: np.ndarray,
    values: Mapping[str, np.ndarray],
    limits: Sequence[Limit] = (),
    rule: str = "accuracy",
    objectives: np.ndarray | None = None,
) -> Selection:
    """Pick one of ``len(error)`` candidates (see the module doc).

    ``error`` is minimised by the ``accuracy`` rule; ``values`` holds an array per limit key; ``objectives``
    (``(n, m)``, to minimise; default ``error`` alone) is what the ``knee`` rule looks at.
    """
    rule = check_rule(rule)
    err = np.asarray(error, dtype=np.float64)
    n = len(err)
    if n == 0:
        raise ModnasError("there is no architecture to pick from")
    for limit in limits:
        if limit.key not in values:
            raise ModnasError(f"no {limit.label} values to apply {limit.describe()} to")
    columns = {limit.key: np.asarray(values[limit.key], dtype=np.float64) for limit in limits}
    if limits:
        per_limit = np.stack([limit.violation(columns[limit.key]) for limit in limits], axis=1)
    else:
        per_limit = np.zeros((n, 1))
    worst, total = per_limit.max(axis=1), per_limit.sum(axis=1)
    feasible = np.flatnonzero(worst == 0)
    if len(feasible) == 0:
        pick = int(np.lexsort((np.arange(n), err, total, worst))[0])
    elif rule == "knee":
        obj = err[:, None] if objectives is None else np.asarray(objectives, dtype=np.float64)
        pick = int(feasible[knee_index(obj[feasible])])
    else:
        pick = int(feasible[np.lexsort((feasible, err[feasible]))[0]])
    return Selection(
        index=pick,
        rule=rule,
        limits=list(limits),
        satisfied=len(feasible) > 0,
        violation=float(worst[pick]),
        n_candidates=n,
        n_feasible=len(feasible),
        values={key: float(col[pick]) for key, col in columns.items()},
    )


__all__ = ["RULES", "Limit", "Rule", "Selection", "check_rule", "knee_index", "make_limits", "select"]
