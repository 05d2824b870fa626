"""Device embeddings from any measured architectures, fitted through the frozen MetaPredictor.

A device embedding is the latencies of the space's reference architectures (NB201: HELP's 10), min-max normalised
(HELP, Lee et al. 2021). A user who has latencies of *other* architectures (a table someone measured, a phone's logs) can still get
one: the MetaPredictor is differentiable in its embedding input, so the embedding ``e`` is found by gradient
descent such that an affine map of the predictions matches the measurements,

    latency(x) ~= a + b * f(x, e),   b > 0,

where ``f`` is the predictor's reference-normalised output. ``a`` and ``b`` are solved in closed form (least
squares) for every ``e``, so the descent only moves ``e``. It minimises the squared error divided by the
measurements' variance plus ``PRIOR`` times the mean squared distance of ``e`` from its starting embedding: with 10
measurements and 11 free numbers (NB201) an unpenalised fit matches the measurements exactly and ranks the rest worse.

``e`` is parametrised as the min-max normalisation of a free vector, so that like every real embedding (and every
embedding the predictor was trained on) its smallest value is 0 and its largest 1. Then the *synthetic* reference
latencies ``a + b * e`` define exactly this embedding under :func:`normalise_reference_latencies`, and converting
predictions to milliseconds from them (:func:`modnas.hardware.training.to_device_unit`) gives exactly
``a + b * f``: the rest of modnas treats the device like one whose 10 references were measured, while
:attr:`~modnas.hardware.devices.Device.references_measured` records that they were not.

The descent starts from the training devices' embeddings (and a few seeded random mixtures of them) and keeps the
start with the smallest objective; the result is deterministic for a given seed, predictor and thread count.
These choices (squared error in the device's unit rather than relative error, the penalty, min-max rather than
free embeddings or mixtures of the training ones) were made on held-out training devices:
``benchmarks/embedding_from_measurements.py validate`` and ``docs/experiments.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from modnas.errors import ModnasError
from modnas.hardware.devices import DeviceRegistry
from modnas.hardware.predictor import MetaPredictor

logger = logging.getLogger(__name__)

#: Descent steps and Adam learning rate of the fit.
FIT_STEPS = 100
FIT_LR = 0.05
#: Weight of the penalty on the mean squared distance of the embedding from its start.
PRIOR = 1.0
#: Smallest offset ``a`` (the fastest reference architecture's latency) as a fraction of the fastest measurement.
FLOOR = 0.01
#: Seeded random mixtures of the training embeddings used as further starting points.
RANDOM_STARTS = 8


@dataclass(frozen=True)
class EmbeddingFit:
    """A device embedding fitted to measurements: ``latency ~= offset + scale * f(x, embedding)``."""

    embedding: tuple[float, ...]
    offset: float
    scale: float
    #: Root mean square error of the fitted latencies on the measurements (in their unit).
    rmse: float
    n_measurements: int
    seed: int

    @property
    def reference_latencies(self) -> tuple[float, ...]:
        """Synthetic latencies of the 10 reference architectures, ``offset + scale * embedding``.

        Min-max normalised they give back :attr:`embedding`, and the device unit conversion based on them is the
        fitted affine map, so a :class:`~modnas.hardware.devices.Device` built from them predicts as fitted.
        """
        return tuple(float(self.offset + self.scale * x) for x in self.embedding)


def check_measurements(measurements: Mapping[str, float], devices: DeviceRegistry) -> tuple[list[str], np.ndarray]:
    """Canonical keys and latencies of ``{arch_str: latency}``; refuses what an embedding cannot be fitted to.

    At least ``devices.min_measurements`` architectures, each once (non-canonical spellings of one architecture
    count as the same), every latency finite and > 0, and not all equal.
    """
    canonical = devices.canonical_measurements(measurements)
    if len(canonical) < devices.min_measurements:
        raise ModnasError(
            f"{len(canonical)} measured architectures; a device needs at least {devices.min_measurements} "
            f"(the {devices.embedding_dim} reference architectures, or any {devices.min_measurements} others)"
        )
    values = np.asarray(list(canonical.values()), dtype=np.float64)
    if values.max() <= values.min():
        raise ModnasError("measured latencies are all equal: no device embedding can be fitted to them")
    return list(canonical), values


def _minmax(z: torch.Tensor) -> torch.Tensor:
    low = z.min(dim=-1, keepdim=True).values
    high = z.max(dim=-1, keepdim=True).values
    return (z - low) / (high - low).clamp_min(1e-6)


def _affine_fit(
    predicted: torch.Tensor, latency: torch.Tensor, weight: torch.Tensor, floor: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted least squares ``latency ~= a + b * predicted`` per column, with ``b >= 0`` and ``a >= floor``.

    ``predicted`` is ``(N, R)``, ``latency`` and ``weight`` ``(N,)``. Returns the weighted sum of squared
    residuals, ``a`` and ``b``, each ``(R,)``. ``a`` is the latency at predicted 0, the fastest reference
    architecture's, so it must stay positive; the problem is convex, so when the free optimum has ``a < floor``
    the constrained one has ``a = floor``.
    """
    share = weight / weight.sum()
    p_mean = share @ predicted
    y_mean = share @ latency
    p_centred = predicted - p_mean
    cov = share @ (p_centred * (latency - y_mean)[:, None])
    var = (share @ p_centred**2).clamp_min(1e-12)
    # b < 0 would say the device is fastest where the predictor says it is slowest: clamp, such starts lose.
    b = torch.relu(cov) / var
    a = y_mean - b * p_mean
    b_floor = torch.relu(share @ (predicted * (latency - floor)[:, None])) / (share @ predicted**2).clamp_min(1e-12)
    low = a < floor
    a = torch.where(low, torch.full_like(a, floor), a)
    b = torch.where(low, b_floor, b)
    residual = latency[:, None] - a - b * predicted
    return weight @ residual**2, a, b


def starting_embeddings(
    seed: int, devices: DeviceRegistry, random_starts: int = RANDOM_STARTS, names: Sequence[str] | None = None
) -> np.ndarray:
    """The starts of the descent: the embeddings of ``names`` (default: the training devices) and
    ``random_starts`` seeded Dirichlet mixtures of them.

    A mixture is formed like the predictor's synthetic training devices: reference latencies mixed, then min-max
    normalised.
    """
    names = devices.names("train") if names is None else names
    base = np.stack([devices.get(d).embedding for d in names]).astype(np.float64)
    rng = np.random.default_rng(seed)
    mixed = rng.dirichlet(np.full(len(base), 0.5), size=random_starts) @ base
    mixed = (mixed - mixed.min(1, keepdims=True)) / (mixed.max(1, keepdims=True) - mixed.min(1, keepdims=True))
    return np.concatenate([base, mixed])


def fit_embedding(
    measurements: Mapping[str, float],
    devices: DeviceRegistry,
    predictor: MetaPredictor | None = None,
    *,
    seed: int = 0,
    steps: int = FIT_STEPS,
    lr: float = FIT_LR,
    prior: float = PRIOR,
    starts: np.ndarray | None = None,
) -> EmbeddingFit:
    """Fit a device embedding to measured latencies ``{arch_str: latency}`` of architectures of ``devices``' space
    (at least as many as it has reference architectures).

    ``predictor`` defaults to the space's shipped MetaPredictor, which stays frozen; ``starts``
    (``(R, embedding_dim)``) defaults to :func:`starting_embeddings` of ``seed``. Refuses bad measurements with a
    one-line :class:`ModnasError`.
    """
    keys, values = check_measurements(measurements, devices)
    if predictor is None:
        from modnas.problem import get_problem

        predictor = get_problem(devices.space_name).predictor  # type: ignore[assignment]
    dim = devices.embedding_dim
    initial = starting_embeddings(seed, devices) if starts is None else np.asarray(starts, dtype=np.float64)
    if initial.ndim != 2 or initial.shape[1] != dim:
        raise ModnasError(f"starting embeddings must have shape (R, {dim}), got {initial.shape}")
    space = devices.space
    onehot = space.to_onehot(space.parse_many(keys))
    # float64 keeps the closed-form affine fit exact on latencies far from 1 (microseconds or seconds)
    latency = torch.tensor(values, dtype=torch.float64)
    weight = torch.full_like(latency, 1.0 / len(values))  # the weighted sum of squares is then the mean
    variance = float(latency.var(unbiased=False))
    floor = FLOOR * float(values.min())
    # The starts are min-max normalised already, so each is its own free vector.
    start = _minmax(torch.tensor(initial))
    free = start.float().requires_grad_(True)
    frozen = [p.requires_grad for p in predictor.parameters()]
    was_training = predictor.training
    predictor.eval()

    def objective(embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        error, a, b = _affine_fit(predictor(onehot, embedding).double(), latency, weight, floor)
        distance = ((embedding.double() - start) ** 2).mean(-1)
        return error / variance + prior * distance, error, a, b

    try:
        for p in predictor.parameters():
            p.requires_grad_(False)
        optimiser = torch.optim.Adam([free], lr=lr)
        for _ in range(steps):
            loss = objective(_minmax(free))[0]
            optimiser.zero_grad()
            loss.sum().backward()  # the starts are independent: one backward moves them all
            optimiser.step()
        with torch.no_grad():
            embedding = _minmax(free)
            loss, error, a, b = objective(embedding)
    finally:
        for p, flag in zip(predictor.parameters(), frozen):
            p.requires_grad_(flag)
        predictor.train(was_training)
    loss = torch.where(b > 0, loss, torch.full_like(loss, torch.inf))
    best = int(torch.argmin(loss))
    if not torch.isfinite(loss[best]):
        raise ModnasError("the measured latencies do not fit the latency predictor on any device embedding")
    fit = EmbeddingFit(
        embedding=tuple(float(x) for x in embedding[best]),
        offset=float(a[best]),
        scale=float(b[best]),
        rmse=float(error[best].sqrt()),
        n_measurements=len(values),
        seed=seed,
    )
    logger.info("device embedding fitted from %d measurements (RMS error %.4g)", len(values), fit.rmse)
    return fit
