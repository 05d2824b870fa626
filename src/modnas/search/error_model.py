"""Benchmark mode's accuracy signal: a differentiable error predictor fitted on a budget of ground-truth queries.

* :class:`QueryBudget` is the only way the search reads true accuracies. It counts every *distinct* architecture
  (canonical key) whose accuracy was read and refuses to go past its limit K, so a search can never see more of the
  ground truth than it paid for.
* :class:`ErrorPredictor` maps a one-hot ``(B, decisions, options)`` to a standardised (log-)error ``(B,)``: an
  ensemble of independently initialised members, each built by the space (NB201: a GCN over the HELP graph plus
  flat and path-encoding MLPs) or, for a space without its own, an MLP on the space's gated features.
  Everything is differentiable in the one-hot, so the hypernetwork gets gradients through it.

Errors near the Pareto front differ by a few percent while degenerate architectures (NB201: output cut off from
the input) sit near 90 %. The fit works on ``log(error)`` standardised with the non-degenerate queries'
statistics, so the differences that matter near the front (6 % vs 7 %) are not drowned by the gap to 90 %;
degenerate errors are clipped to the cutoff and down-weighted so the few of them cannot dominate the loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from modnas.config import ErrorPredictorConfig
from modnas.errors import ModnasError

if TYPE_CHECKING:
    from modnas.problem import Problem
    from modnas.spaces.base import SearchSpace


class QueryBudget:
    """Reads true errors from the problem's ground truth, at most ``limit`` distinct architectures (keys)."""

    def __init__(self, limit: int, problem: Problem | str = "nb201") -> None:
        from modnas.problem import get_problem

        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
            raise ModnasError(f"query budget must be an integer >= 1, got {limit!r}")
        self.limit = int(limit)
        self.problem = get_problem(problem)
        self.queried: list[str] = []  # canonical keys, in the order they were first read
        self.errors: list[float] = []  # their true errors
        self._seen: dict[str, float] = {}

    @property
    def used(self) -> int:
        return len(self.queried)

    @property
    def remaining(self) -> int:
        return self.limit - self.used

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._seen

    def query(self, keys: Sequence[str] | np.ndarray) -> np.ndarray:
        """True errors of canonical ``keys`` (repeats are free); raises before reading anything if K would be
        exceeded."""
        wanted = [str(k) for k in (keys.tolist() if isinstance(keys, np.ndarray) else keys)]
        new = [k for k in dict.fromkeys(wanted) if k not in self._seen]
        if len(new) > self.remaining:
            raise ModnasError(
                f"query budget exceeded: {len(new)} new architectures requested, {self.remaining} of {self.limit} left"
            )
        if new:
            errors = self.problem.truth.evaluate(new, None, ("error",))[:, 0]
            for k, e in zip(new, errors.tolist()):
                self._seen[k] = float(e)
                self.queried.append(k)
                self.errors.append(float(e))
        return np.asarray([self._seen[k] for k in wanted], dtype=np.float64)

    def state_dict(self) -> dict:
        return {"limit": self.limit, "queried": list(self.queried), "errors": list(self.errors)}

    @classmethod
    def from_state_dict(cls, state: dict, problem: Problem | str = "nb201") -> QueryBudget:
        budget = cls(int(state["limit"]), problem)
        queried = list(state["queried"])
        if queried and not isinstance(queried[0], str):
            # checkpoints written before keys were the identity hold positions in the enumerated (tabular) space
            archs = budget.problem.space.enumerate()
            queried = budget.problem.space.keys(archs[np.asarray(queried, dtype=np.int64)])
        for k, e in zip(queried, state["errors"]):
            budget._seen[str(k)] = float(e)
            budget.queried.append(str(k))
            budget.errors.append(float(e))
        return budget


class FeatureMLPMember(nn.Module):
    """The error model member of a space without its own: an MLP on the space's gated flat features."""

    def __init__(self, config: ErrorPredictorConfig, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        width = config.flat_hidden or config.head_hidden
        self.net = nn.Sequential(
            nn.Linear(space.num_features, width), nn.ReLU(), nn.Linear(width, config.head_hidden), nn.ReLU(),
            nn.Linear(config.head_hidden, 1),
        )

    def forward(self, onehot: Tensor) -> Tensor:
        return self.net(self.space.features(onehot)).squeeze(-1)


def make_member(config: ErrorPredictorConfig, space: SearchSpace) -> nn.Module:
    """One ensemble member: the space's own error model (``space.error_model_member``) or a feature MLP."""
    own = getattr(space, "error_model_member", None)
    return own(config) if own is not None else FeatureMLPMember(config, space)


class ErrorPredictor(nn.Module):
    """Predicts an architecture's CIFAR-10 error from its one-hot; differentiable w.r.t. the one-hot.

    ``forward`` gives the standardised log-error ``z``; :meth:`error` converts to percent,
    ``exp(mean + std * z)``. Call :meth:`fit` before use.
    """

    def __init__(self, config: ErrorPredictorConfig | None = None, space: SearchSpace | None = None) -> None:
        super().__init__()
        if space is None:
            from modnas.problem import get_problem

            space = get_problem("nb201").space
        self.config = config or ErrorPredictorConfig()
        self.space = space
        self.members = nn.ModuleList(make_member(self.config, space) for _ in range(self.config.ensemble))
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def forward(self, onehot: Tensor) -> Tensor:
        """Standardised log-error ``(B,)`` of one-hots ``(B, decisions, options)`` (the ensemble mean)."""
        shape = (self.space.num_decisions, self.space.max_options)
        if onehot.dim() < 2 or tuple(onehot.shape[-2:]) != shape:
            raise ModnasError(f"expected one-hots of shape (B, {shape[0]}, {shape[1]}), got {tuple(onehot.shape)}")
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
        """(Re)fit every member from a fresh seeded initialisation on ``(onehot (N, D, O), error % (N,))``.

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
            fresh = [make_member(cfg, self.space) for _ in range(cfg.ensemble)]
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
