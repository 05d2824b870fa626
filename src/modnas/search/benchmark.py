"""MODNAS search in benchmark mode: the hypernetwork learns against a fitted error predictor and the frozen
hardware MetaPredictor, with accuracies read from the table only through a :class:`QueryBudget`.

The loop itself (preferences, samples, per-device losses, MGD, evaluation) is :class:`~modnas.search.base.HypernetSearch`;
this mode supplies the error term: the error predictor's output, min-max normalised with the queried
(non-degenerate) errors' range.

Adaptive querying: part of the budget K goes to random architectures before the search; after
``query_start_epoch`` (then every ``query_every`` epochs) the distinct argmax architectures the hypernetwork
proposes for the evaluation rays on the training devices are queried (most-proposed first) and the error predictor
is refitted, until K is spent.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import torch
from torch import Tensor

from modnas.config import SearchConfig
from modnas.evaluation import scalarised_argmin
from modnas.hardware.devices import Device, registry
from modnas.hardware.energy import energy_model
from modnas.hardware.training import over_all_archs, to_device_unit
from modnas.search.base import EpochResult, HypernetSearch
from modnas.search.error_model import ErrorPredictor, QueryBudget
from modnas.spaces.nb201.encoding import NUM_EDGES, NUM_OPS, index_to_string, to_index, to_onehot
from modnas.tables.nb201 import NUM_ARCHS, nb201_tables

__all__ = ["BenchmarkSearch", "EpochResult"]


def prefer_measured(
    prefs: np.ndarray, proposed: np.ndarray, proposed_values: np.ndarray, measured: np.ndarray,
    measured_values: np.ndarray,
) -> np.ndarray:
    """Per preference, the hypernetwork's proposal, or a measured architecture that dominates it.

    ``prefs`` ``(R, M)``; ``proposed`` ``(R,)`` canonical indices with their (positive) objective values ``(R, M)``
    (error %, latency ms[, energy]); ``measured`` ``(Q,)`` with values ``(Q, M)``, their errors being true ones.
    Among the measured architectures that dominate a proposal, the one with the largest preference-weighted
    *relative* improvement over it wins: relative, so that no normalisation bounds are needed and any device,
    custom ones included, is handled the same way. A proposal that nothing dominates is kept.
    """
    prefs, values = np.asarray(prefs, dtype=np.float64), np.asarray(proposed_values, dtype=np.float64)
    measured_values = np.asarray(measured_values, dtype=np.float64)
    proposed = np.asarray(proposed)
    if len(measured) == 0:
        return proposed.copy()
    scale = np.maximum(np.abs(values), 1e-9)[:, None, :]
    relative = (measured_values[None] - values[:, None]) / scale  # (R, Q, M), <= 0 where the measured one is better
    dominates = (relative <= 0).all(-1) & (relative < 0).any(-1)
    gain = np.where(dominates, (relative * prefs[:, None, :]).sum(-1), np.inf)
    best = gain.argmin(axis=1)
    return np.where(dominates.any(axis=1), np.asarray(measured)[best], proposed)


def _one_edge_neighbours(index: int) -> list[int]:
    """Canonical indices of the 24 architectures that differ from ``index`` on exactly one edge."""
    ops = np.asarray(to_onehot(index_to_string(index)).argmax(-1))
    out = []
    for edge in range(NUM_EDGES):
        for op in range(NUM_OPS):
            if op != ops[edge]:
                other = ops.copy()
                other[edge] = op
                out.append(int(to_index(other[None])[0]))
    return out


def measured_architectures(budget: QueryBudget, degenerate_error: float) -> tuple[np.ndarray, np.ndarray]:
    """The queried architectures that are not degenerate cells, and their true errors (%)."""
    idx, err = np.asarray(budget.queried, dtype=np.int64), np.asarray(budget.errors, dtype=np.float64)
    keep = err < degenerate_error
    return idx[keep], err[keep]


@torch.no_grad()
def candidate_values(
    indices: np.ndarray, device: Device, error_model: torch.nn.Module, predictor: torch.nn.Module,
    objectives: tuple[str, ...], budget: QueryBudget | None = None, latency_source: str = "predicted",
) -> np.ndarray:
    """Objective values ``(N, M)`` of canonical indices on ``device``: error % (true where ``budget`` has read it,
    else predicted), latency in the device's unit (with ``latency_source="measured"``, the device's measurement
    where :meth:`~modnas.hardware.devices.Device.known_latencies` has one; otherwise the MetaPredictor's) and,
    with three objectives, exact energy in mJ."""
    indices = np.asarray(indices, dtype=np.int64)
    onehot = to_onehot(nb201_tables.ops_codes[indices])
    known = np.array([budget is not None and int(i) in budget for i in indices], dtype=bool)
    error = np.zeros(len(indices))
    if known.any():
        error[known] = budget.query(indices[known])  # already read: costs nothing
    if not known.all():  # the error model runs only where no true error is known
        error[~known] = error_model.error(onehot[torch.from_numpy(~known)]).numpy()
    emb = torch.tensor(device.embedding, dtype=torch.float32)[None]
    latency = to_device_unit(predictor(onehot, emb)[:, 0].numpy(), device) if len(indices) else np.zeros(0)
    if latency_source == "measured" and len(indices):
        measured = device.known_latencies(indices)
        latency = np.where(np.isnan(measured), latency, measured)
    columns = [error, latency]
    if "energy" in objectives:
        columns.append(energy_model(device.name).predict(nb201_tables.ops_codes[indices]))
    return np.stack(columns, axis=1)


def measured_front(
    prefs: np.ndarray, proposed: np.ndarray, device: Device, error_model: torch.nn.Module,
    predictor: torch.nn.Module, objectives: tuple[str, ...], budget: QueryBudget, degenerate_error: float,
    latency_source: str = "measured",
) -> np.ndarray:
    """:func:`prefer_measured` on one device: the proposals ``(R,)`` for ``prefs`` ``(R, M)`` against every
    non-degenerate architecture ``budget`` has read (what ``front: hypernet+measured`` reports), compared by
    the latency of ``latency_source`` (see :func:`candidate_values`)."""
    measured, _ = measured_architectures(budget, degenerate_error)
    own = candidate_values(proposed, device, error_model, predictor, objectives, budget, latency_source)
    known = candidate_values(measured, device, error_model, predictor, objectives, budget, latency_source)
    return prefer_measured(prefs, proposed, own, measured, known)


class BenchmarkSearch(HypernetSearch):
    """One benchmark-mode search: build with a config, then :meth:`run_epoch` (or :meth:`train_epoch` by hand)."""

    def __init__(self, config: SearchConfig) -> None:
        super().__init__(config)
        self.budget = QueryBudget(config.query_budget)
        self.error_model = ErrorPredictor(config.error_predictor)
        self.fits = 0
        self.err_low = self.err_high = 0.0
        initial = self.rng.choice(NUM_ARCHS, size=config.initial_queries, replace=False)
        self.budget.query(initial)
        self._refit()

    @property
    def queries_used(self) -> int:
        return self.budget.used

    def _refit(self) -> None:
        """Fit the error predictor on every query so far; error bounds from the non-degenerate queries."""
        idx = np.asarray(self.budget.queried, dtype=np.int64)
        errors = np.asarray(self.budget.errors)
        self.error_model.fit(self.onehots[idx], errors, seed=self.config.seed * 1000 + self.fits)
        self.fits += 1
        valid = errors[errors < self.config.error_predictor.degenerate_error]
        self.err_low, self.err_high = float(valid.min()), float(max(valid.max(), valid.min() + 1e-6))

    def normalised_error(self, onehot: Tensor) -> Tensor:
        t, p = onehot.shape[:2]
        # pessimism only once no more queries can correct the predictor: before that, optimism finds what to query
        kappa = self.config.error_predictor.pessimism if self.budget.remaining == 0 else 0.0
        err = self.error_model.error(onehot.reshape(t * p, NUM_EDGES, NUM_OPS), kappa).reshape(t, p)
        return (err - self.err_low) / (self.err_high - self.err_low)

    def after_epoch(self) -> dict[str, float]:
        cfg = self.config
        due = self.epoch >= cfg.query_start_epoch and (self.epoch - cfg.query_start_epoch) % cfg.query_every == 0
        if due and self.budget.remaining > 0:
            return {"new_queries": float(self.query_round())}
        return {}

    # -- adaptive querying --------------------------------------------------------------------------------------

    def query_round(self) -> int:
        """Query the most-proposed new architectures of the training devices (topped up with neighbours)."""
        cfg = self.config
        limit = min(cfg.queries_per_round, self.budget.remaining)
        proposed = self.proposals(self.train_devices)
        counts = Counter(int(i) for idx in proposed.values() for i in idx)
        if cfg.query_proposals == "hypernet+argmin":
            counts.update(int(i) for i in self.predicted_argmins().reshape(-1))
        ranked = sorted(counts, key=lambda i: (-counts[i], i))
        chosen = [i for i in ranked if i not in self.budget][:limit]
        if cfg.fill_with_neighbours and len(chosen) < limit:
            pool = sorted({n for i in ranked for n in _one_edge_neighbours(i)} - set(chosen))
            pool = [n for n in pool if n not in self.budget]
            extra = self.rng.permutation(pool)[: limit - len(chosen)] if pool else []
            chosen += [int(i) for i in extra]
        if not chosen:
            return 0
        self.budget.query(chosen)
        self._refit()
        return len(chosen)

    # -- the reported front -------------------------------------------------------------------------------------

    def front_indices(self, device_names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """The hypernetwork's proposals; with ``front: hypernet+measured``, measured ones swapped in where they
        dominate (see :func:`prefer_measured`)."""
        proposed = self.proposals(device_names)
        if self.config.front == "hypernet":
            return proposed
        cfg = self.config
        return {
            name: measured_front(
                self.eval_prefs, idx, registry.get(name), self.error_model, self.predictor, cfg.objectives,
                self.budget, cfg.error_predictor.degenerate_error, cfg.front_latency,
            )
            for name, idx in proposed.items()
        }

    def predicted_argmins(self) -> np.ndarray:
        """Per training device and evaluation ray, the architecture minimising the scalarised predicted objectives
        over all 15,625: what an ideal hypernetwork would propose ``(T, R)``. The objectives are normalised as
        the search's loss normalises them (energy, with three objectives, is exact)."""
        err_n = (over_all_archs(self.error_model.error, self.onehots) - self.err_low) / (self.err_high - self.err_low)
        lat = over_all_archs(lambda x: self.predictor(x, self.train_emb), self.onehots)  # (N, T)
        columns = [err_n[None].expand(lat.shape[1], -1), ((lat - self.lat_low) / (self.lat_high - self.lat_low)).T]
        if self.energy_bounds is not None:
            low, high = self.energy_bounds
            with torch.no_grad():
                energy = torch.stack([model(self.onehots) for model in self.energy], dim=1)  # (N, T)
            columns.append(((energy - low) / (high - low)).T)
        objectives = torch.stack(columns, dim=-1)  # (T, N, M)
        return scalarised_argmin(self.eval_prefs.astype(np.float32), objectives.numpy())

    # -- checkpoints --------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The base state plus the error predictor, its normalisation and the query budget."""
        return {
            **super().state_dict(),
            "error_model": self.error_model.state_dict(),
            "error_fits": self.fits,
            "error_bounds": [self.err_low, self.err_high],
            "budget": self.budget.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.error_model.load_state_dict(state["error_model"])
        for p in self.error_model.parameters():
            p.requires_grad_(False)
        self.fits = int(state["error_fits"])
        self.err_low, self.err_high = (float(v) for v in state["error_bounds"])
        self.budget = QueryBudget.from_state_dict(state["budget"])
