"""Preference vectors over objectives: evaluation grids, random draws and validation."""

from __future__ import annotations

import itertools
import math
from typing import TypeVar

import numpy as np
import torch

from modnas.errors import ModnasError


def circle_rays(n: int = 24, eps: float = 1e-6) -> np.ndarray:
    """MODNAS' 2-objective evaluation rays ``(cos t, sin t)`` with ``t`` evenly spaced in ``[eps, pi/2 - eps]``.

    The rays lie on the unit circle, not the simplex; :func:`to_simplex` rescales them when needed.
    """
    if n < 1:
        raise ModnasError(f"number of rays must be >= 1, got {n}")
    angles = np.linspace(eps, math.pi / 2 - eps, n)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def simplex_grid(n_objectives: int, n_partitions: int) -> np.ndarray:
    """All points of the simplex with coordinates in multiples of ``1/n_partitions`` (Das and Dennis 1998)."""
    if n_objectives < 1 or n_partitions < 1:
        raise ModnasError(f"simplex grid needs n_objectives >= 1 and n_partitions >= 1, got {n_objectives}, {n_partitions}")
    points = [
        c for c in itertools.product(range(n_partitions + 1), repeat=n_objectives - 1) if sum(c) <= n_partitions
    ]
    grid = np.array([[*c, n_partitions - sum(c)] for c in points], dtype=np.float64) / n_partitions
    return grid[np.lexsort(grid.T)][::-1]


def evaluation_preferences(n_objectives: int, n: int = 24) -> np.ndarray:
    """The protocol's evaluation grid: ``n`` circle rays for 2 objectives, a simplex grid of about ``n`` points above."""
    if n_objectives < 2:
        raise ModnasError(f"a preference grid needs at least 2 objectives, got {n_objectives}")
    if n_objectives == 2:
        return circle_rays(n)
    partitions = 1
    while math.comb(partitions + 1 + n_objectives - 1, n_objectives - 1) <= n:
        partitions += 1
    return simplex_grid(n_objectives, partitions)


def dirichlet(n: int, n_objectives: int, rng: np.random.Generator, concentration: float = 1.0) -> np.ndarray:
    """``n`` preferences drawn from a symmetric Dirichlet (``concentration=1`` is uniform on the simplex)."""
    if concentration <= 0 or not math.isfinite(concentration):
        raise ModnasError(f"Dirichlet concentration must be a positive number, got {concentration}")
    return rng.dirichlet(np.full(n_objectives, concentration), size=n)


#: weight of the linear term in the augmented Chebyshev scalarisation: small enough that the max decides, large
#: enough that of two points with the same max the one that is better in the other objectives wins (a plain max is
#: minimised by weakly dominated points too)
CHEBYSHEV_AUGMENTATION = 0.05

SCALARISATIONS = ("linear", "chebyshev")

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def scalarise(preferences: Array, objectives: Array, method: str = "linear") -> Array:
    """Scalarised objectives ``(...)`` of preferences ``(..., M)`` and normalised objectives ``(..., M)`` (minimised,
    ideal point at 0), NumPy arrays or torch tensors alike.

    ``linear``: ``r . f`` (MODNAS). Its minimisers are the supported points of the front only, so on a front that is
    close to straight many preferences share the same few architectures. ``chebyshev``: the augmented Chebyshev
    ``max_i r_i f_i + 0.05 r . f``, whose minimiser for ``r`` lies where ``r_i f_i`` are equal, i.e. on the front
    where it crosses the direction ``1 / r``: preferences spread along any front, non-convex parts included.
    """
    weighted = preferences * objectives
    linear = weighted.sum(-1)
    if method == "linear":
        return linear
    if method == "chebyshev":
        peak = weighted.amax(-1) if isinstance(weighted, torch.Tensor) else weighted.max(-1)
        return peak + CHEBYSHEV_AUGMENTATION * linear
    raise ModnasError(f"unknown scalarisation {method!r}: use one of {', '.join(SCALARISATIONS)}")


def scalarised_argmin(
    preferences: np.ndarray, objectives: np.ndarray, allowed: np.ndarray | None = None, method: str = "linear"
) -> np.ndarray:
    """Per preference, the row of ``objectives`` minimising the scalarisation ``method`` (see :func:`scalarise`).

    ``preferences`` ``(R, M)``; ``objectives`` ``(..., N, M)`` for N candidates (leading dimensions, e.g. devices,
    are kept); ``allowed`` an optional boolean ``(..., N)`` mask of candidates that may be chosen. Returns indices
    ``(..., R)``; ties go to the lowest index.
    """
    prefs = np.asarray(preferences)
    values = np.asarray(objectives)
    if prefs.ndim != 2 or values.ndim < 2 or prefs.shape[1] != values.shape[-1]:
        raise ModnasError(
            f"preferences (R, M) and objectives (..., N, M) must agree on M, got {prefs.shape} and {values.shape}"
        )
    if method == "linear":  # one einsum: the (..., R, N, M) product below can be large for enumerable spaces
        scalarised = np.einsum("rm,...nm->...rn", prefs.astype(values.dtype), values)
    else:
        scalarised = scalarise(prefs.astype(values.dtype)[:, None, :], values[..., None, :, :], method)
    if allowed is not None:
        scalarised = np.where(np.asarray(allowed)[..., None, :], scalarised, np.inf)
    return scalarised.argmin(axis=-1)


def to_simplex(preferences: np.ndarray) -> np.ndarray:
    """Rescale non-negative preference vectors to sum to one."""
    pref = validate_preference(preferences, require_simplex=False)
    return pref / pref.sum(axis=-1, keepdims=True)


def validate_preference(
    preference: np.ndarray | list[float] | tuple[float, ...],
    n_objectives: int | None = None,
    require_simplex: bool = True,
    atol: float = 1e-6,
) -> np.ndarray:
    """Check a preference vector (or a batch): right length, finite, non-negative, and summing to one if required."""
    try:
        pref = np.asarray(preference, dtype=np.float64)
    except (TypeError, ValueError):
        raise ModnasError(f"preference {preference!r} is not a list of numbers") from None
    if pref.ndim not in (1, 2) or pref.shape[-1] == 0:
        raise ModnasError(f"preference must be a vector or a batch of vectors, got shape {pref.shape}")
    shown = np.array2string(pref.ravel(), precision=4, separator=",") if pref.ndim == 1 else f"of shape {pref.shape}"
    if n_objectives is not None and pref.shape[-1] != n_objectives:
        raise ModnasError(f"preference {shown} has {pref.shape[-1]} entries, expected {n_objectives} (one per objective)")
    if np.isnan(pref).any() or np.isinf(pref).any():
        raise ModnasError(f"preference {shown} contains NaN or infinite values")
    if (pref < 0).any():
        raise ModnasError(f"preference {shown} has negative entries")
    sums = pref.sum(axis=-1)
    if (sums <= 0).any():
        raise ModnasError(f"preference {shown} is all zeros")
    if require_simplex and (np.abs(sums - 1) > atol).any():
        bad = int(np.flatnonzero(np.abs(np.ravel(sums) - 1) > atol)[0])
        where = f" (row {bad})" if pref.ndim == 2 else ""
        raise ModnasError(f"preference {shown}{where} must sum to 1 (sums to {float(np.ravel(sums)[bad]):.6g})")
    return pref


def parse_preference(text: str, n_objectives: int | None = None, require_simplex: bool = True) -> np.ndarray:
    """Parse ``"0.3,0.7"`` into a validated preference vector."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ModnasError(f"preference {text!r} is not a comma-separated list of numbers") from None
    return validate_preference(values, n_objectives=n_objectives, require_simplex=require_simplex)
