"""Benchmark mode's accuracy signal: a differentiable error predictor fitted on a budget of table queries.

* :class:`QueryBudget` is the only way the search reads true accuracies. It counts every *distinct* architecture
  whose accuracy was read and refuses to go past its limit K, so a search can never see more of the table than
  it paid for.
* :class:`ErrorPredictor` maps a one-hot ``(B, 6, 5)`` to a standardised (log-)error ``(B,)``: a small GCN over
  the HELP graph of :func:`modnas.spaces.nb201.graph_encoding` plus an MLP on the flat one-hot (optionally plus an
  MLP on the :func:`~modnas.spaces.nb201.path_encoding`), averaged over a few independently initialised members.
  Everything is differentiable in the one-hot, so the hypernetwork gets gradients through it.

Errors span 5.6 % to 54 % on valid cells and ~90 % on degenerate ones (output cut off from the input). The fit
works on ``log(error)`` standardised with the non-degenerate queries' statistics, so the differences that matter
near the Pareto front (6 % vs 7 %) are not drowned by the gap to 90 %; degenerate errors are clipped to the cutoff
and down-weighted so the few of them cannot dominate the loss.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from modnas.config import ErrorPredictorConfig
from modnas.errors import ModnasError
from modnas.hardware.predictor import GraphConv
from modnas.spaces.nb201.encoding import (
    NUM_EDGES,
    NUM_NODE_FEATURES,
    NUM_OPS,
    NUM_PATH_FEATURES,
    graph_encoding,
    path_encoding,
)
from modnas.tables.nb201 import NUM_ARCHS, nb201_tables

#: The accuracy column benchmark mode queries: CIFAR-10 test accuracy after 200 epochs, as the scorer uses.
ACCURACY_COLUMN = "cifar10_test_acc_200ep"


class QueryBudget:
    """Reads true errors (``100 - CIFAR-10 test accuracy``) from the table, at most ``limit`` distinct archs."""

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
            raise ModnasError(f"query budget must be an integer >= 1, got {limit!r}")
        self.limit = int(limit)
        self.queried: list[int] = []  # canonical indices, in the order they were first read
        self.errors: list[float] = []  # their true errors (%)
        self._seen: dict[int, float] = {}

    @property
    def used(self) -> int:
        return len(self.queried)

    @property
    def remaining(self) -> int:
        return self.limit - self.used

    def __contains__(self, index: object) -> bool:
        return isinstance(index, (int, np.integer)) and int(index) in self._seen

    def query(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """True errors of ``indices`` (repeats are free); raises before reading anything if K would be exceeded."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= NUM_ARCHS):
            raise ModnasError(f"architecture index {int(idx[(idx < 0) | (idx >= NUM_ARCHS)][0])} is out of range")
        new = [int(i) for i in dict.fromkeys(idx.tolist()) if int(i) not in self._seen]
        if len(new) > self.remaining:
            raise ModnasError(
                f"query budget exceeded: {len(new)} new architectures requested, {self.remaining} of {self.limit} left"
            )
        if new:
            errors = 100.0 - nb201_tables.accuracy(np.asarray(new, dtype=np.int64))
            for i, e in zip(new, errors.tolist()):
                self._seen[i] = float(e)
                self.queried.append(i)
                self.errors.append(float(e))
        return np.asarray([self._seen[int(i)] for i in idx], dtype=np.float64)

    def state_dict(self) -> dict:
        return {"limit": self.limit, "queried": list(self.queried), "errors": list(self.errors)}

    @classmethod
    def from_state_dict(cls, state: dict) -> QueryBudget:
        budget = cls(int(state["limit"]))
        for i, e in zip(state["queried"], state["errors"]):
            budget._seen[int(i)] = float(e)
            budget.queried.append(int(i))
            budget.errors.append(float(e))
        return budget


class _Member(nn.Module):
    """One network of the ensemble: GCN read-out at the global node, concatenated with a flat one-hot MLP."""

    def __init__(self, config: ErrorPredictorConfig) -> None:
        super().__init__()
        dims = [NUM_NODE_FEATURES] + [config.gcn_hidden] * config.gcn_layers
        self.gcn = nn.ModuleList(GraphConv(a, b) for a, b in itertools.pairwise(dims))
        width = config.gcn_hidden
        self.flat: nn.Module | None = None
        if config.flat_hidden:
            self.flat = nn.Sequential(nn.Linear(NUM_EDGES * NUM_OPS, config.flat_hidden), nn.ReLU())
            width += config.flat_hidden
        self.head = nn.Sequential(
            nn.Linear(width, config.head_hidden), nn.ReLU(), nn.Linear(config.head_hidden, 1)
        )
        self.path: nn.Module | None = None
        if config.path_hidden:
            h = config.path_hidden
            self.path = nn.Sequential(
                nn.Linear(NUM_PATH_FEATURES + NUM_EDGES * NUM_OPS, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                nn.Linear(h, 1),
            )

    def forward(self, onehot: Tensor) -> Tensor:
        x, adj = graph_encoding(onehot)
        for layer in self.gcn:
            x = layer(x, adj)
        features = x[..., -1, :]
        if self.flat is not None:
            features = torch.cat([features, self.flat(onehot.flatten(-2))], dim=-1)
        out = self.head(features).squeeze(-1)
        if self.path is not None:  # a residual model on path features, summed with the graph model's output
            out = out + self.path(torch.cat([path_encoding(onehot), onehot.flatten(-2)], dim=-1)).squeeze(-1)
        return out


class ErrorPredictor(nn.Module):
    """Predicts an architecture's CIFAR-10 error from its one-hot; differentiable w.r.t. the one-hot.

    ``forward`` gives the standardised log-error ``z``; :meth:`error` converts to percent,
    ``exp(mean + std * z)``. Call :meth:`fit` before use.
    """

    def __init__(self, config: ErrorPredictorConfig | None = None) -> None:
        super().__init__()
        self.config = config or ErrorPredictorConfig()
        self.members = nn.ModuleList(_Member(self.config) for _ in range(self.config.ensemble))
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def forward(self, onehot: Tensor) -> Tensor:
        """Standardised log-error ``(B,)`` of one-hots ``(B, 6, 5)`` (the ensemble mean)."""
        if onehot.dim() < 2 or onehot.shape[-2:] != (NUM_EDGES, NUM_OPS):
            raise ModnasError(f"expected one-hots of shape (B, {NUM_EDGES}, {NUM_OPS}), got {tuple(onehot.shape)}")
        return torch.stack([m(onehot) for m in self.members]).mean(dim=0)

    def error(self, onehot: Tensor, pessimism: float = 0.0) -> Tensor:
        """Predicted error in percent ``(B,)``, differentiable in ``onehot``.

        ``pessimism`` > 0 adds that many ensemble standard deviations (in standardised log space): the members agree
        on the architectures they were fitted on and disagree elsewhere, so a search then prefers measured
        architectures over ones the predictor merely guesses to be good.
        """
        z = self(onehot)
        if pessimism and len(self.members) > 1:
            z = z + pessimism * torch.stack([m(onehot) for m in self.members]).std(dim=0)
        return torch.exp(self.target_mean + self.target_std * z)

    def fit(self, onehot: Tensor, errors: Sequence[float] | np.ndarray, seed: int = 0) -> float:
        """(Re)fit every member from a fresh seeded initialisation on ``(onehot (N, 6, 5), error % (N,))``.

        Returns the final weighted training MSE in standardised units. The global torch RNG is left untouched.
        """
        cfg = self.config
        err = np.asarray(errors, dtype=np.float64).reshape(-1)
        if onehot.shape[0] != err.size or err.size < 2:
            raise ModnasError(f"error predictor needs >= 2 (architecture, error) pairs, got {err.size}")
        if not np.isfinite(err).all() or (err <= 0).any():
            raise ModnasError("errors to fit must be finite and positive")
        degenerate = err >= cfg.degenerate_error
        if degenerate.all():
            raise ModnasError("every queried architecture is degenerate; the error predictor cannot be fitted")
        target = np.log(np.minimum(err, cfg.degenerate_error))
        mean, std = float(target[~degenerate].mean()), float(target[~degenerate].std())
        std = std if std > 1e-6 else 1.0
        y = torch.tensor((target - mean) / std, dtype=torch.float32)
        w = torch.tensor(np.where(degenerate, cfg.degenerate_weight, 1.0), dtype=torch.float32)
        w = w / w.sum()
        x = onehot.detach().to(torch.float32)
        self.target_mean.fill_(mean)
        self.target_std.fill_(std)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            fresh = [_Member(cfg) for _ in range(cfg.ensemble)]
        self.members = nn.ModuleList(fresh)
        self.train()
        loss = torch.zeros(())
        for member in self.members:
            opt = torch.optim.AdamW(member.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=cfg.lr * 0.05)
            for _ in range(cfg.steps):
                loss = (w * (member(x) - y) ** 2).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            opt.zero_grad(set_to_none=True)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)  # frozen between fits: gradients flow to the one-hot only
        self.fitted.fill_(True)
        with torch.no_grad():
            final = float((w * (self(x) - y) ** 2).sum())
        return final if math.isfinite(final) else float("nan")
