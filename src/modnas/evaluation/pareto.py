"""Pareto fronts and quality indicators (all objectives minimised), as thin checked wrappers over moocore."""

from __future__ import annotations

import moocore
import numpy as np

from modnas.errors import ModnasError


def _points(points: np.ndarray | list, name: str = "points") -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2:
        raise ModnasError(f"{name} must be a 2-D array (n_points, n_objectives), got shape {arr.shape}")
    if arr.size and not np.isfinite(arr).all():
        raise ModnasError(f"{name} contain NaN or infinite values")
    return arr


def _reference(front: np.ndarray) -> np.ndarray:
    ref = _points(front, "reference front")
    if len(ref) == 0:
        raise ModnasError("reference front is empty")
    return ref


def nondominated_mask(points: np.ndarray, keep_duplicates: bool = True) -> np.ndarray:
    """Boolean mask of the non-dominated points; identical points are all kept unless ``keep_duplicates=False``."""
    arr = _points(points)
    if len(arr) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(moocore.is_nondominated(arr, keep_weakly=keep_duplicates), dtype=bool)


def pareto_front(points: np.ndarray) -> np.ndarray:
    """The distinct non-dominated points, sorted by the first objective."""
    arr = _points(points)
    front = np.unique(arr[nondominated_mask(arr, keep_duplicates=False)], axis=0)
    return front[np.lexsort(front.T[::-1])] if len(front) else front


def hypervolume(points: np.ndarray, ref: np.ndarray | list | float = 1.0) -> float:
    """Hypervolume dominated by ``points`` up to the reference point; points not better than ``ref`` add nothing."""
    arr = _points(points)
    ref_arr = np.asarray(ref, dtype=np.float64)
    if ref_arr.ndim > 1 or (ref_arr.ndim == 1 and ref_arr.size != arr.shape[1]):
        raise ModnasError(f"reference point has {ref_arr.size} entries for {arr.shape[1]} objectives")
    if not np.isfinite(ref_arr).all():
        raise ModnasError("reference point contains NaN or infinite values")
    ref_arr = np.broadcast_to(ref_arr, (arr.shape[1],))
    if len(arr) == 0:
        return 0.0
    inside = (arr < ref_arr).all(axis=1)
    if not inside.any():
        return 0.0
    return float(moocore.hypervolume(arr[inside], ref=ref_arr))


def igd(points: np.ndarray, reference_front: np.ndarray) -> float:
    """Inverted generational distance of ``points`` to ``reference_front`` (NaN when ``points`` is empty)."""
    arr, ref = _points(points), _reference(reference_front)
    return float(moocore.igd(arr, ref=ref)) if len(arr) else float("nan")


def igd_plus(points: np.ndarray, reference_front: np.ndarray) -> float:
    """IGD+ (Ishibuchi et al. 2015), weakly Pareto-compliant; NaN when ``points`` is empty."""
    arr, ref = _points(points), _reference(reference_front)
    return float(moocore.igd_plus(arr, ref=ref)) if len(arr) else float("nan")
