"""MODNAS search in benchmark mode: the hypernetwork learns against a fitted error predictor and the frozen
hardware predictor, with accuracies read from the ground truth only through a :class:`QueryBudget`.

The loop itself (preferences, samples, per-device losses, MGD, evaluation) is :class:`~modnas.search.base.HypernetSearch`;
this mode supplies the error term: the error predictor's output, min-max normalised with the queried
(non-degenerate) errors' range.

Adaptive querying: part of the budget K goes to random architectures before the search; after
``query_start_epoch`` (then every ``query_every`` epochs) the distinct argmax architectures the hypernetwork
proposes for the evaluation rays on the training devices are queried (most-proposed first) and the error predictor
is refitted, until K is spent.
"""

from __future__ import annotations

import weakref
from collections import Counter
from typing import Any

import numpy as np
import torch
from torch import Tensor

from modnas.config import SearchConfig
from modnas.evaluation import scalarise, scalarised_argmin
from modnas.hardware.devices import Device
from modnas.hardware.training import to_device_unit
from modnas.problem import Problem, get_problem
from modnas.search.base import EpochResult, HypernetSearch, over_archs
from modnas.search.error_model import ErrorPredictor, QueryBudget

__all__ = ["BenchmarkSearch", "EpochResult"]


def prefer_measured(
    prefs: np.ndarray, proposed: np.ndarray, proposed_values: np.ndarray, measured: np.ndarray,
    measured_values: np.ndarray,
) -> np.ndarray:
    """Per preference, the hypernetwork's proposal, or a measured architecture that dominates it.

    ``prefs`` ``(R, M)``; ``proposed`` ``(R,)`` canonical keys with their (positive) objective values ``(R, M)``
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


def measured_architectures(budget: QueryBudget, degenerate_error: float) -> tuple[np.ndarray, np.ndarray]:
    """The queried architectures (keys) that are not degenerate, and their true errors (%)."""
    keys, err = np.asarray(budget.queried, dtype=object), np.asarray(budget.errors, dtype=np.float64)
    keep = err < degenerate_error
    return keys[keep], err[keep]


@torch.no_grad()
def candidate_values(
    keys: np.ndarray | list[str], device: Device, error_model: torch.nn.Module, predictor: torch.nn.Module,
    objectives: tuple[str, ...], problem: Problem, budget: QueryBudget | None = None,
    latency_source: str = "predicted",
) -> np.ndarray:
    """Objective values ``(N, M)`` of canonical keys on ``device``: error % (true where ``budget`` has read it,
    else predicted), latency in the device's unit (with ``latency_source="measured"``, the device's measurement
    where the problem's device set knows one; otherwise the hardware predictor's) and, with a third objective,
    the problem's exact model of it."""
    keys = [str(k) for k in keys]
    space = problem.space
    choices = space.parse_many(keys)
    onehot = space.to_onehot(choices)
    known = np.array([budget is not None and k in budget for k in keys], dtype=bool)
    error = np.zeros(len(keys))
    if known.any():
        error[known] = budget.query([k for k, m in zip(keys, known) if m])  # already read: costs nothing
    if not known.all():  # the error model runs only where no true error is known
        error[~known] = error_model.error(onehot[torch.from_numpy(~known)]).numpy()
    hardware = hardware_values(choices, onehot, device, predictor, objectives, problem)
    if latency_source == "measured" and len(keys):
        measured = problem.devices.known_latencies(device, keys)
        hardware[:, 0] = np.where(np.isnan(measured), hardware[:, 0], measured)
    return np.concatenate([error[:, None], hardware], axis=1)


@torch.no_grad()
def hardware_values(
    choices: np.ndarray, onehot: Tensor, device: Device, predictor: torch.nn.Module, objectives: tuple[str, ...],
    problem: Problem,
) -> np.ndarray:
    """The hardware objectives ``(N, M - 1)`` of choice indices ``(N, D)`` and their one-hots on ``device``: the
    predictor's latency in the device's unit, and a third objective's exact model."""
    if not len(choices):
        return np.zeros((0, len(objectives) - 1))
    emb = torch.tensor(device.embedding, dtype=torch.float32)[None]
    columns = [to_device_unit(predictor(onehot, emb)[:, 0].numpy(), device)]
    for objective in objectives[2:]:
        columns.append(problem.exact_model(objective, device.name).predict(choices))
    return np.stack(columns, axis=1)


def measured_front(
    prefs: np.ndarray, proposed: np.ndarray, device: Device, error_model: torch.nn.Module,
    predictor: torch.nn.Module, objectives: tuple[str, ...], problem: Problem, budget: QueryBudget,
    degenerate_error: float, latency_source: str = "measured",
) -> np.ndarray:
    """:func:`prefer_measured` on one device: the proposals ``(R,)`` for ``prefs`` ``(R, M)`` against every
    non-degenerate architecture ``budget`` has read (what ``front: hypernet+measured`` reports), compared by
    the latency of ``latency_source`` (see :func:`candidate_values`)."""
    measured, _ = measured_architectures(budget, degenerate_error)
    own = candidate_values(proposed, device, error_model, predictor, objectives, problem, budget, latency_source)
    known = candidate_values(measured, device, error_model, predictor, objectives, problem, budget, latency_source)
    return prefer_measured(prefs, proposed, own, measured, known)


#: per predictor (held weakly), then per (device, embedding, objectives): the predicted hardware objectives' range
#: over the bound candidates
_HARDWARE_BOUNDS: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]]] = (
    weakref.WeakKeyDictionary()
)


@torch.no_grad()
def _predicted_values(
    indices: np.ndarray, device: Device, error_model: torch.nn.Module, predictor: torch.nn.Module,
    objectives: tuple[str, ...], problem: Problem, known: dict[bytes, float],
) -> np.ndarray:
    """:func:`candidate_values` for canonical choice indices ``(N, D)`` rather than keys, with the true errors in
    ``known`` (keyed by the indices' bytes) and the predictor's latency: converting thousands of candidates to string
    keys would cost more than predicting them."""
    onehot = problem.space.to_onehot(indices)
    error = error_model.error(onehot).numpy().astype(np.float64)
    for i, row in enumerate(indices):
        error[i] = known.get(row.tobytes(), error[i])
    hardware = hardware_values(indices, onehot, device, predictor, objectives, problem)
    return np.concatenate([error[:, None], hardware], axis=1)


def refine_front(
    prefs: np.ndarray, proposed: np.ndarray, device: Device, error_model: torch.nn.Module,
    predictor: torch.nn.Module, objectives: tuple[str, ...], problem: Problem, budget: QueryBudget,
    degenerate_error: float, scalarisation: str, rounds: int,
) -> np.ndarray:
    """Per preference ``(R, M)``, steepest descent from the proposal (canonical key, ``(R,)``) over one-move
    neighbours of the search's own objectives, for at most ``rounds`` rounds or until no pick moves. Costs no
    queries.

    The objectives are the error (true where queried, else the error model's), the hardware predictor's latency and
    a third objective's exact model; normalised by the range of the non-degenerate queried errors (as the search's
    loss normalises the error) and by the predicted range over the problem's bound candidates; scalarised as the
    loss is. Measured latencies do not enter here; ``front: hypernet+measured`` swaps in afterwards.

    Why: the hypernetwork amortises the search over preferences and devices, but its argmax for a preference can
    stop short of the minimum of the objective it was trained on (docs/benchmarks.md, GPT-S); a few local moves on
    the same cheap objectives close most of that gap. Neighbours predicted to be degenerate are never moved to.
    """
    space = problem.space
    queried, errors = measured_architectures(budget, degenerate_error)
    known = {row.tobytes(): float(e) for row, e in zip(space.parse_many(list(queried)), errors)}

    # the hardware bounds depend on the frozen predictor and the device only: computed once per process
    cache = _HARDWARE_BOUNDS.setdefault(predictor, {})
    cache_key = (device.name, np.asarray(device.embedding, dtype=np.float64).tobytes(), objectives)
    if cache_key not in cache:
        bound = problem.bound_candidates()
        hardware = hardware_values(bound, space.to_onehot(bound), device, predictor, objectives, problem)
        cache[cache_key] = (hardware.min(axis=0), hardware.max(axis=0))
    error_range = (errors.min(), errors.max()) if len(errors) else (0.0, 1.0)
    low = np.array([error_range[0], *cache[cache_key][0]])
    high = np.maximum(np.array([error_range[1], *cache[cache_key][1]]), low + 1e-9)
    prefs = np.asarray(prefs, dtype=np.float64)
    current = space.parse_many([str(k) for k in proposed])
    moving = np.arange(len(current))  # a pick that stayed put has the same neighbours next round: it is done
    for _ in range(rounds):
        rows = [np.concatenate([current[r][None], space.neighbours(current[r])]) for r in moving]
        unique, inverse = np.unique(np.concatenate(rows), axis=0, return_inverse=True)
        raw = _predicted_values(unique, device, error_model, predictor, objectives, problem, known)
        scaled = (raw - low) / (high - low)
        still, start = [], 0
        for r, candidates in zip(moving, rows):
            idx = inverse.reshape(-1)[start : start + len(candidates)]
            start += len(candidates)
            score = scalarise(prefs[r][None], scaled[idx], scalarisation)
            score[1:] = np.where(raw[idx[1:], 0] >= degenerate_error, np.inf, score[1:])
            best = int(np.argmin(score))  # ties keep the current pick (it comes first)
            if best:
                current[r] = candidates[best]
                still.append(r)
        moving = np.asarray(still, dtype=np.int64)
        if not len(moving):
            break
    return np.asarray(space.keys(current), dtype=object)


class BenchmarkSearch(HypernetSearch):
    """One benchmark-mode search: build with a config, then :meth:`run_epoch` (or :meth:`train_epoch` by hand)."""

    def __init__(self, config: SearchConfig, problem: Problem | None = None) -> None:
        (problem or get_problem(config.space)).require_quality_truth("benchmark mode")
        super().__init__(config, problem)
        self.budget = QueryBudget(config.query_budget, self.problem)
        self.error_model = ErrorPredictor(config.error_predictor, self.space)
        self.fits = 0
        self.err_low = self.err_high = 0.0
        self.budget.query(self.initial_architectures(config.initial_queries))
        self._refit()

    def initial_architectures(self, count: int) -> list[str]:
        """``count`` distinct random architectures: drawn from the enumeration where the space has one (uniform
        over architectures), else sampled decision by decision."""
        archs = self.space.enumerate()
        if archs is not None:
            return self.space.keys(archs[self.rng.choice(len(archs), size=count, replace=False)])
        chosen: dict[str, None] = {}
        for _ in range(100):
            for key in self.space.keys(self.space.sample(count, self.rng)):
                chosen.setdefault(key, None)
            if len(chosen) >= count:
                break
        return list(chosen)[:count]

    @property
    def queries_used(self) -> int:
        return self.budget.used

    def _refit(self) -> None:
        """Fit the error predictor on every query so far; error bounds from the non-degenerate queries."""
        onehots = self.space.to_onehot(self.space.parse_many(self.budget.queried))
        errors = np.asarray(self.budget.errors)
        self.error_model.fit(onehots, errors, seed=self.config.seed * 1000 + self.fits)
        self.fits += 1
        valid = errors[errors < self.config.error_predictor.degenerate_error]
        self.err_low, self.err_high = float(valid.min()), float(max(valid.max(), valid.min() + 1e-6))

    def normalised_error(self, onehot: Tensor) -> Tensor:
        t, p = onehot.shape[:2]
        # pessimism only once no more queries can correct the predictor: before that, optimism finds what to query
        kappa = self.config.experimental.pessimism if self.budget.remaining == 0 else 0.0
        err = self.error_model.error(onehot.reshape(t * p, *onehot.shape[2:]), kappa).reshape(t, p)
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
        counts = Counter(str(k) for keys in proposed.values() for k in keys)
        if cfg.experimental.query_proposals == "hypernet+argmin":
            counts.update(str(k) for k in self.predicted_argmins().reshape(-1))
        order = dict(zip(counts, self.space.key_order(list(counts))))  # ties: the space's canonical order
        ranked = sorted(counts, key=lambda k: (-counts[k], order[k]))
        chosen = [k for k in ranked if k not in self.budget][:limit]
        if cfg.experimental.fill_with_neighbours and len(chosen) < limit:
            near = {n for k in ranked for n in self.space.keys(self.space.neighbours(self.space.parse(k)))}
            pool = [n for n in self.space.sort_keys(list(near - set(chosen))) if n not in self.budget]
            extra = self.rng.permutation(len(pool))[: limit - len(chosen)] if pool else []
            chosen += [pool[int(i)] for i in extra]
        if not chosen:
            return 0
        self.budget.query(chosen)
        self._refit()
        return len(chosen)

    # -- the reported front -------------------------------------------------------------------------------------

    def front_keys(
        self, device_names: tuple[str, ...] | None = None, refine: bool | None = None
    ) -> dict[str, np.ndarray]:
        """The hypernetwork's proposals, moved by :func:`refine_front` with ``refine_rounds`` > 0; with ``front:
        hypernet+measured``, measured ones swapped in where they dominate (see :func:`prefer_measured`).

        ``refine`` (default: from the final epoch on) applies the refinement. Earlier epochs report the
        hypernetwork's picks: refinement costs about a second per device and front on a CPU, and training never
        reads it (query rounds take the hypernetwork's own proposals), so the final front is the same either way.
        """
        cfg = self.config
        proposed = self.proposals(device_names)
        if cfg.refine_rounds and (self.epoch >= cfg.epochs if refine is None else refine):
            proposed = {
                name: refine_front(
                    self.eval_prefs, keys, self.problem.devices.get(name), self.error_model, self.predictor,
                    cfg.objectives, self.problem, self.budget, cfg.error_predictor.degenerate_error,
                    cfg.scalarisation, cfg.refine_rounds,
                )
                for name, keys in proposed.items()
            }
        if cfg.front == "hypernet":
            return proposed
        return {
            name: measured_front(
                self.eval_prefs, keys, self.problem.devices.get(name), self.error_model, self.predictor,
                cfg.objectives, self.problem, self.budget, cfg.error_predictor.degenerate_error, cfg.front_latency,
            )
            for name, keys in proposed.items()
        }

    def predicted_argmins(self) -> np.ndarray:
        """Per training device and evaluation ray, the key minimising the scalarised predicted objectives over the
        bound architectures (every architecture of an enumerable space): what an ideal hypernetwork would propose
        ``(T, R)``. The objectives are normalised as the search's loss normalises them (a third objective is
        exact)."""
        onehots = self.bound_onehots
        err_n = (over_archs(self.error_model.error, onehots) - self.err_low) / (self.err_high - self.err_low)
        lat = over_archs(lambda x: self.predictor(x, self.train_emb), onehots)  # (N, T)
        columns = [err_n[None].expand(lat.shape[1], -1), ((lat - self.lat_low) / (self.lat_high - self.lat_low)).T]
        if self.energy_bounds is not None:
            low, high = self.energy_bounds
            with torch.no_grad():
                energy = torch.stack([model(onehots) for model in self.energy], dim=1)  # (N, T)
            columns.append(((energy - low) / (high - low)).T)
        objectives = torch.stack(columns, dim=-1)  # (T, N, M)
        best = scalarised_argmin(
            self.eval_prefs.astype(np.float32), objectives.numpy(), method=self.config.scalarisation
        )
        return self.bound_keys[best]

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
        self.budget = QueryBudget.from_state_dict(state["budget"], self.problem)
