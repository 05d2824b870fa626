"""What every MODNAS search loop shares, whatever supplies its accuracy signal.

:class:`HypernetSearch` owns the hypernetwork, its optimiser and LR schedule, the sampler, the frozen hardware
MetaPredictor with its per-device latency bounds, and the shared-scorer evaluation. Per step and training device t
(the MODNAS paper's algorithm):

* ``r ~ Dirichlet`` (P preferences), ``alpha = hypernet(r, h_t)``, ``a = sampler(alpha)`` (one-hot with gradient);
* ``err_n`` = the subclass's :meth:`~HypernetSearch.normalised_error` of the samples (benchmark mode: a fitted error
  predictor; one-shot mode: the supernet's cross-entropy);
* ``lat_n = (pred_lat - min_t) / (max_t - min_t)`` with the hardware predictor's min/max on device t over every
  architecture of an enumerable space (else its extremes and a fixed sample), computed once, so it is well
  defined from the first step (the official code normalises with bounds that are only known after the search);
* with three objectives also the third objective from the problem's exact model (NB201: HW-NAS-Bench energy),
  min-max normalised the same way;
* ``loss_t = mean_P s(r, (err_n, lat_n[, energy_n]))`` with the config's scalarisation ``s`` (MODNAS: linear,
  ``r . f``; or augmented Chebyshev, :func:`modnas.evaluation.scalarise`); the T per-device hypernetwork gradients
  are combined with :func:`modnas.mgd.aggregate` and one AdamW step is taken.

Every epoch ends with the shared scorer on the evaluation devices (:meth:`~HypernetSearch.evaluate`). The search
knows its space, ground truth and devices only through ``self.problem`` (:class:`~modnas.problem.Problem`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from modnas.config import SearchConfig
from modnas.distributed import SINGLE, Ranks
from modnas.evaluation import dirichlet, evaluation_preferences, scalarise, score_keys, to_simplex
from modnas.hypernet import HyperNetwork, make_hypernet
from modnas.mgd import aggregate, assign_flat_grad
from modnas.problem import Problem, get_problem
from modnas.samplers import Sampler, make_sampler


@dataclass
class EpochResult:
    """Scores of one epoch: one row per device and one row per (device, ray)."""

    epoch: int
    rows: list[dict[str, Any]]
    fronts: list[dict[str, Any]]
    seconds: float
    queries: int
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def mean_hv(self) -> float:
        return float(np.mean([r["hv"] for r in self.rows]))

    def mean_hv_split(self, split: str) -> float:
        values = [r["hv"] for r in self.rows if r["split"] == split]
        return float(np.mean(values)) if values else float("nan")


#: Predicted latency bounds by problem and training-device embeddings (see :meth:`HypernetSearch._latency_bounds`)
_LATENCY_BOUNDS: dict[tuple[str, bytes], tuple[Tensor, Tensor]] = {}


@torch.no_grad()
def over_archs(model: Callable[[Tensor], Tensor], onehots: Tensor, chunk: int = 4096) -> Tensor:
    """``model`` applied to one-hots in chunks without grad; outputs concatenated along the first dimension."""
    return torch.cat([model(onehots[i : i + chunk]) for i in range(0, len(onehots), chunk)])


class HypernetSearch:
    """The hypernetwork side of a MODNAS search; subclasses supply :meth:`normalised_error`.

    Use: build with a config, then call :meth:`run_epoch` ``config.epochs`` times (or :meth:`train_epoch` and
    :meth:`evaluate` by hand). :meth:`state_dict` / :meth:`load_state_dict` hold everything needed to continue.
    """

    def __init__(self, config: SearchConfig, problem: Problem | None = None, ranks: Ranks = SINGLE) -> None:
        self.config = config
        #: this process's part of a distributed run (:mod:`modnas.distributed`); one process does all the work
        self.ranks = ranks
        self.problem = problem if problem is not None else get_problem(config.space)
        self.space = self.problem.space
        self.train_devices: tuple[str, ...] = config.training_devices()
        self.eval_devices: tuple[str, ...] = config.evaluation_devices()
        self.num_objectives = len(config.objectives)
        self.problem.check_objectives(config.objectives)
        self.problem.check_devices((*self.train_devices, *self.eval_devices), config.objectives)
        #: the evaluation preferences, on the simplex: circle rays for 2 objectives, a simplex grid for 3
        self.eval_prefs = to_simplex(evaluation_preferences(self.num_objectives, config.eval_rays))
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.epoch = 0

        self.train_emb = self.problem.devices.embeddings(self.train_devices)
        #: the architectures over which normalisation bounds are taken (all of them in an enumerable space)
        self.bound_onehots = self.space.to_onehot(self.problem.bound_candidates())

        # Loaded afresh after seeding in every search, never the problem's cached copy: building it draws from
        # torch's global generator, so with a copy cached by an earlier search in the same process the same seed
        # would give another search (the first search of a process, as the CLI runs it, is the reference).
        self.predictor = self.problem.load_predictor(config.hardware_predictor)
        self.lat_low, self.lat_high = self._latency_bounds()
        # a third objective (NB201: energy) comes from the problem's exact, differentiable model per device
        self.energy = [self.problem.exact_model(o, n) for o in config.objectives[2:] for n in self.train_devices]
        self.energy_bounds = self._energy_bounds()

        self.hypernet: HyperNetwork = build_hypernet(config, self.problem)
        self.hypernet.pretrain_uniform(self.train_emb, steps=config.pretrain_steps, seed=config.seed)
        self.params = [p for p in self.hypernet.parameters() if p.requires_grad]
        self.optimiser = torch.optim.AdamW(
            self.params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        total = config.epochs * self.epoch_length()
        factor = (lambda _: 1.0) if config.experimental.lr_schedule == "constant" else (
            lambda i: 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * min(i, total) / total))
        )
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimiser, factor)
        sampler_kwargs: dict[str, Any] = (
            {"tau": config.tau} if config.sampler == "reinmax" else {"tau_max": config.tau_max, "tau_min": config.tau}
        )
        self.sampler: Sampler = make_sampler(config.sampler, generator=self.generator, **sampler_kwargs)

    @functools.cached_property
    def bound_keys(self) -> np.ndarray:
        """Canonical keys of the bound architectures, in the order of :attr:`bound_onehots`."""
        return np.asarray(self.space.keys(self.problem.bound_candidates()), dtype=object)

    # -- what a subclass supplies -------------------------------------------------------------------------------

    def normalised_error(self, onehot: Tensor) -> Tensor:
        """Normalised error ``(T, P)`` of sampled one-hots ``(T, P, D, O)``, differentiable in ``onehot``."""
        raise NotImplementedError

    def epoch_length(self) -> int:
        """Steps per epoch (one-shot mode: one pass over its weight-training images)."""
        return self.config.steps_per_epoch

    def preferences_per_step(self) -> int:
        """Preferences per training device and step (one-shot mode: 1, as each costs a supernet pass)."""
        return self.config.preferences_per_device

    def after_epoch(self) -> dict[str, float]:
        """Work due at the end of an epoch (benchmark mode: an adaptive query round); returns extra metrics."""
        return {}

    @property
    def queries_used(self) -> int:
        """Distinct architectures whose true accuracy this search has read (0 when it reads none)."""
        return 0

    # -- normalisation ------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _latency_bounds(self, chunk: int = 2048) -> tuple[Tensor, Tensor]:
        """The hardware predictor's min and max over the bound architectures on every training device.

        Cached per process by problem and the embeddings' bytes: the frozen predictor gives the same bounds every
        time, and computing them takes seconds (most of a small search's start-up).
        """
        key = (self.config.space, self.train_emb.numpy().tobytes())
        if key not in _LATENCY_BOUNDS:
            preds = over_archs(lambda x: self.predictor(x, self.train_emb), self.bound_onehots, chunk)
            low, high = preds.min(dim=0).values, preds.max(dim=0).values
            _LATENCY_BOUNDS[key] = (low, torch.maximum(high, low + 1e-6))
        low, high = _LATENCY_BOUNDS[key]
        return low.clone(), high.clone()

    def _energy_bounds(self) -> tuple[Tensor, Tensor] | None:
        """Exact models' min and max over the bound architectures on every training device."""
        if not self.energy:
            return None
        values = torch.stack([model(self.bound_onehots) for model in self.energy], dim=1)  # (N, T)
        low, high = values.min(dim=0).values, values.max(dim=0).values
        return low, torch.maximum(high, low + 1e-6)

    # -- training -----------------------------------------------------------------------------------------------

    def sample_preferences(self, count: int) -> Tensor:
        """``count`` Dirichlet preferences for every training device, ``(T, count, M)``."""
        t, m = len(self.train_devices), self.num_objectives
        r = dirichlet(t * count, m, self.rng, self.config.dirichlet_concentration)
        return torch.tensor(r, dtype=torch.float32).reshape(t, count, m)

    def losses(self) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
        """Per-training-device scalarised losses ``(T,)`` for fresh preferences and samples.

        Returns ``(loss, leaf, r, info)``: the losses are built on ``leaf``, a detached copy of the hypernetwork
        output alpha ``(T, P, D, O)`` for the preferences ``r`` ``(T, P, M)``, so one backward pass through the
        predictors gives every device's gradient at its own logits (device t's loss only reads device t's rows), and
        nothing outside the hypernetwork (a supernet, an error model) receives a gradient from this phase.
        """
        t, p = len(self.train_devices), self.preferences_per_step()
        r = self.sample_preferences(p)
        alpha = self.space.mask_logits(self.hypernet(r, self.train_emb[:, None, :]))  # (T, P, D, O)
        leaf = alpha.detach().requires_grad_(True)
        onehot = self.sampler(leaf)
        err_n = self.normalised_error(onehot)
        lat = self.predictor.forward_pairs(
            onehot.reshape(t * p, *onehot.shape[2:]), self.train_emb.repeat_interleave(p, dim=0)
        ).reshape(t, p)
        lat_n = (lat - self.lat_low[:, None]) / (self.lat_high - self.lat_low)[:, None]
        objectives = [err_n, lat_n]
        info = {"err_n": float(err_n.detach().mean()), "lat_n": float(lat_n.detach().mean())}
        if self.energy_bounds is not None:
            low, high = self.energy_bounds
            energy = torch.stack([model(onehot[i]) for i, model in enumerate(self.energy)])  # (T, P)
            energy_n = (energy - low[:, None]) / (high - low)[:, None]
            objectives.append(energy_n)
            info["energy_n"] = float(energy_n.detach().mean())
        loss = scalarise(r, torch.stack(objectives, dim=-1), self.config.scalarisation).mean(dim=1)
        info["loss"] = float(loss.detach().mean())
        return loss, leaf, r, info

    def device_gradients(self, r: Tensor, grad_alpha: Tensor) -> Tensor:
        """Flat hypernetwork gradients ``(T, num_params)``, row t = d loss_t / d params for the preferences ``r``
        ``(T, P, M)`` and the loss gradients at the logits ``grad_alpha`` ``(T, P, D, O)``.

        Device by device: device t's logits depend only on its own inputs, so a pass over its P rows gives its
        gradient, where one batched pass over all T * P rows (per-device gradient outputs that are zero elsewhere)
        would cost T times more; with large hypernetwork tables (OFA) that was most of a step. The logits are
        recomputed here rather than taken from :meth:`losses`, whose one batched forward the losses keep (a forward
        is cheap next to these backward passes). In a distributed run each rank computes its own devices' rows
        (:meth:`~modnas.distributed.Ranks.owned`) and the ranks sum them: every rank gets every row.
        """
        rows = torch.zeros(grad_alpha.shape[0], sum(p.numel() for p in self.params))
        # in a distributed run each rank fills its own devices' rows and the sum gives every rank all of them
        for i in self.ranks.owned(grad_alpha.shape[0]):
            alpha = self.space.mask_logits(self.hypernet(r[i], self.train_emb[i]))  # (P, D, O)
            grads = torch.autograd.grad(alpha, self.params, grad_outputs=grad_alpha[i], allow_unused=True)
            rows[i] = torch.cat([
                (g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, self.params)
            ])
        return self.ranks.sum(rows)

    def hypernet_step(self) -> dict[str, float]:
        """One hypernetwork update from the T per-device gradients combined by MGDA (or mean/sum)."""
        loss, leaf, r, info = self.losses()
        (grad_alpha,) = torch.autograd.grad(loss.sum(), leaf)  # (T, P, D, O); row block t = d loss_t / d alpha_t
        direction, _ = aggregate(self.device_gradients(r, grad_alpha), self.config.aggregation, normalise=True)
        self.optimiser.zero_grad(set_to_none=True)
        assign_flat_grad(self.params, direction)
        self.optimiser.step()
        self.schedule.step()
        return info

    def step(self) -> dict[str, float]:
        """One search step (here: the hypernetwork update; one-shot mode adds the supernet's weight update)."""
        return self.hypernet_step()

    def train_epoch(self, progress: Callable[[], None] | None = None) -> dict[str, float]:
        """``steps_per_epoch`` steps, then :meth:`after_epoch`. Returns the mean step info and its extras."""
        cfg = self.config
        self.sampler.set_progress(min(1.0, self.epoch / max(1, cfg.epochs - 1)))
        self.hypernet.train()
        infos = []
        for _ in range(self.epoch_length()):
            infos.append(self.step())
            if progress is not None:
                progress()
        self.epoch += 1
        out = {k: float(np.mean([i[k] for i in infos])) for k in infos[0]}
        out.update(self.after_epoch())
        self.ranks.check_replicas(self.replica_state(), self.epoch)
        return out

    def replica_state(self) -> dict[str, Tensor]:
        """What must be identical on every rank of a distributed run: the hypernetwork and the random streams."""
        state = {f"hypernet.{k}": v for k, v in self.hypernet.state_dict().items()}
        state["torch random state"] = torch.get_rng_state()
        state["sampler random state"] = self.generator.get_state()
        return state

    # -- evaluation ---------------------------------------------------------------------------------------------

    @torch.no_grad()
    def proposals(self, device_names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Argmax architecture (canonical key) per evaluation ray, for each named device."""
        names = device_names or self.eval_devices
        emb = self.problem.devices.embeddings(names)
        rays = torch.tensor(self.eval_prefs, dtype=torch.float32)
        was_training = self.hypernet.training
        self.hypernet.eval()
        alpha = self.hypernet(rays[None, :, :], emb[:, None, :])  # (D, R, decisions, options)
        self.hypernet.train(was_training)
        choices = self.space.from_logits(alpha)  # (D, R, decisions)
        keys = np.asarray(self.space.keys(choices.reshape(-1, self.space.num_decisions)), dtype=object)
        keys = keys.reshape(len(names), -1)
        return {n: keys[i] for i, n in enumerate(names)}

    def front_keys(self, device_names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """The architecture reported per evaluation ray, for each named device: the hypernetwork's argmax
        (benchmark mode can swap in a measured architecture that dominates it, see ``config.front``)."""
        return self.proposals(device_names)

    def evaluate(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Shared-scorer rows for every evaluation device and the (device, ray) -> architecture table."""
        prefs = self.eval_prefs
        rows, fronts = [], []
        for name, keys in self.front_keys(self.eval_devices).items():
            rows.append(self.score_front(name, keys))
            for k, key in enumerate(keys):
                fronts.append(
                    {
                        "device": name,
                        "ray": k,
                        "preference": ";".join(f"{v:.6f}" for v in prefs[k]),
                        "arch_str": str(key),
                    }
                )
        return rows, fronts

    def score_front(self, device: str, keys: Sequence[str] | np.ndarray) -> dict[str, Any]:
        """One evaluation device's row of an epoch: the shared scorer on the architectures reported for it."""
        s = score_keys(list(keys), device, self.config.objectives, self.problem)
        return {"device": device, "split": s.split, "hv": s.hv, "igd_plus": s.igd_plus, "n_front": s.n_front}

    def run_epoch(self, progress: Callable[[], None] | None = None) -> EpochResult:
        """Train one epoch, then score it on every evaluation device."""
        start = time.perf_counter()
        info = self.train_epoch(progress)
        rows, fronts = self.evaluate()
        return EpochResult(self.epoch, rows, fronts, time.perf_counter() - start, self.queries_used, extra=info)

    # -- checkpoints --------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Hypernetwork, optimiser, schedule, epoch and RNG states (subclasses add their own parts)."""
        return {
            "config": self.config.model_dump(mode="json"),
            "epoch": self.epoch,
            "hypernet": self.hypernet.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "schedule": self.schedule.state_dict(),
            "latency_bounds": {
                n: [float(lo), float(hi)] for n, lo, hi in zip(self.train_devices, self.lat_low, self.lat_high)
            },
            "rng": {
                "torch": torch.get_rng_state(),
                "sampler": self.generator.get_state(),
                "numpy": self.rng.bit_generator.state,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` taken from a search with the same configuration."""
        self.epoch = int(state["epoch"])
        self.hypernet.load_state_dict(state["hypernet"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["sampler"])
        self.rng.bit_generator.state = state["rng"]["numpy"]


def build_hypernet(config: SearchConfig, problem: Problem) -> HyperNetwork:
    """The configured hypernetwork, shaped for the problem's space (decisions x options) and device embeddings."""
    kwargs: dict[str, Any] = {"hidden": config.hypernet_hidden} if config.hypernet == "mlp" else {}
    return make_hypernet(
        config.hypernet,
        num_objectives=len(config.objectives),
        num_edges=problem.space.num_decisions,
        num_ops=problem.space.max_options,
        embedding_dim=problem.devices.embedding_dim,
        option_mask=problem.space.mask if problem.space.is_ragged else None,
        **kwargs,
    )
