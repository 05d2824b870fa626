"""One-shot MODNAS: the space's supernet trained on real images jointly with the hypernetwork (the MODNAS paper's
one-shot search; NB201's cell supernet, OFA's elastic MobileNetV3, any space's :meth:`build_supernet`).

Per step (the hypernetwork first, then the weights, as in the original):

1. **Hypernetwork update** (:meth:`HypernetSearch.hypernet_step` with :meth:`OneShotSearch.normalised_error` as the
   error term): for each of the 13 training devices a fresh preference ``r`` and a fresh ReinMax sample (or P of
   them, each scored on 1/P of the batch); the supernet's cross-entropy of that sample on one hypernetwork-training
   batch (shared by the devices), normalised with the minimum and a quantile of the last ``ce_window`` steps' values
   *including the current ones* (so it is defined from the first step); MGD over the devices; one AdamW
   step. Optional warm-up epochs skip this phase.
   Only the derivative with respect to the one-hot is taken (``torch.autograd.grad``), so no supernet weight receives
   a gradient from this phase and nothing leaks into the weight update.
2. **Weight update**: for each device a fresh preference and sample (without gradient to the hypernetwork); the mean
   over devices of the cross-entropy on one weight-training batch; global-norm clip; SGD with momentum, cosine
   schedule over the epochs.

Batches are a pure function of ``(seed, epoch, step)`` (per-epoch permutations of the two halves, per-step
augmentation), so a checkpoint needs only the epoch and step counters besides the networks, optimisers and RNG states;
on the CPU a resumed run reproduces an uninterrupted one bit for bit.

The error term is the supernet's, but every epoch is scored with the shared scorer (the space's ground truth, NB201:
CIFAR-10 table accuracy, and device latency), exactly like benchmark mode. On digits or Fashion-MNIST that accuracy is a proxy for the
dataset searched on.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from modnas.config import SearchConfig
from modnas.datasets import ImageData, augment, augmentation_for, load_dataset, search_split
from modnas.distributed import SINGLE, Ranks, to_global_batchnorm, use_global_batchnorm
from modnas.errors import ModnasError
from modnas.problem import get_problem
from modnas.search.base import HypernetSearch
from modnas.spaces.base import SearchSpace
from modnas.train import autocast_for, resolve_device, token_loss

__all__ = ["OneShotSearch", "SupernetError"]

#: smallest min-max range of the cross-entropy window: keeps the normalised error finite when all values coincide
MIN_CE_RANGE = 1e-3


def _seeded(*parts: int) -> torch.Generator:
    """A CPU generator seeded by a tuple of integers (a fixed mixing, independent of Python's hash seed)."""
    seed = 0
    for part in parts:
        seed = (seed * 1_000_003 + int(part)) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def supernet_scores(
    net: nn.Module, space: SearchSpace, key: str, x: Tensor, y: Tensor, batch_size: int,
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> tuple[int, float]:  # fmt: skip
    """Correct predictions and summed cross-entropy (nats) of one architecture (canonical key) over ``(x, y)``
    through a supernet with its current weights, in batches (text: every token counts)."""
    choices = space.parse(key)
    onehot = space.to_onehot(torch.as_tensor(choices)[None])[0].to(x.device)
    ops = [int(c) for c in choices]
    correct, loss = 0, 0.0
    for i in range(0, len(y), batch_size):
        with autocast():
            logits = net(x[i : i + batch_size], onehot, ops)
        correct += int((logits.argmax(dim=-1) == y[i : i + batch_size]).sum())
        loss += float(token_loss(logits, y[i : i + batch_size], reduction="sum"))
    return correct, loss


def build_supernet(space: SearchSpace, settings: dict[str, Any], num_classes: int, in_channels: int) -> nn.Module:
    """The space's supernet for resolved one-shot ``settings``: its :attr:`~SearchSpace.supernet_options` and the
    entries of ``oneshot.supernet``."""
    kwargs = {k: settings[k] for k in space.supernet_options}
    clash = sorted(set(kwargs) & set(settings["supernet"]))
    if clash:
        raise ModnasError(f"oneshot.supernet.{clash[0]} is a setting of its own: give it as oneshot.{clash[0]}")
    return space.build_supernet(num_classes=num_classes, in_channels=in_channels, **kwargs, **settings["supernet"])


def trained_supernet(config: SearchConfig, supernet_state: dict[str, Tensor]) -> tuple[nn.Module, ImageData]:
    """A one-shot run's supernet holding its trained weights, and the run's dataset (read without downloading: a
    finished run's data is on disk)."""
    s = config.oneshot.resolved()
    data = load_dataset(s["dataset"], s["data_dir"], download=False)
    net = build_supernet(get_problem(config.space).space, s, data.num_classes, data.in_channels)
    net.load_state_dict(supernet_state)
    return net, data


class OneShotSearch(HypernetSearch):
    """One-shot search: build with a config whose ``mode`` is ``oneshot``, then :meth:`run_epoch` per epoch."""

    def __init__(self, config: SearchConfig, data: ImageData | None = None, ranks: Ranks = SINGLE) -> None:
        self.settings = config.oneshot.resolved()
        s = self.settings
        # the data first: the number of steps per epoch (one pass over the weight half) sizes the LR schedules
        if data is None:
            data = load_dataset(s["dataset"], s["data_dir"], download=s["download"])
        self.data = data.limit_train(s["train_limit"])
        weight_idx, hyper_idx = search_split(len(self.data.train_y), s["train_portion"])
        self.batch_size = int(s["batch_size"])
        if len(weight_idx) < self.batch_size or len(hyper_idx) < 2:
            raise ModnasError(
                f"{len(weight_idx)} weight-training images are fewer than one batch of {self.batch_size}; "
                f"lower oneshot.batch_size or raise oneshot.train_limit"
            )
        if self.batch_size // int(s["preferences_per_device"]) < 2:
            raise ModnasError(
                f"oneshot.batch_size {self.batch_size} leaves fewer than 2 images for each of the "
                f"{s['preferences_per_device']} preferences per device; raise it or lower preferences_per_device"
            )
        if ranks.world_size > self.batch_size:
            raise ModnasError(
                f"{ranks.world_size} processes share a batch of {self.batch_size} images: each needs at least one; "
                f"raise oneshot.batch_size or use fewer processes"
            )
        self._steps = len(weight_idx) // self.batch_size
        super().__init__(config, ranks=ranks)

        self.device = resolve_device(s["device"])
        cuda = self.device.type == "cuda"
        self.amp = bool(s["amp"]) and cuda
        images = not getattr(self.data, "is_text", False)
        self.memory_format = torch.channels_last if (cuda and s["channels_last"] and images) else torch.contiguous_format
        if cuda:
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
        self.x_weights = self._to_device(self.data.train_x[weight_idx])
        self.y_weights = self.data.train_y[weight_idx].to(self.device)
        self.x_hyper = self._to_device(self.data.train_x[hyper_idx])
        self.y_hyper = self.data.train_y[hyper_idx].to(self.device)
        augment_on = s["augment"] if s["augment"] is not None else augmentation_for(s["dataset"]) != (0, False)
        self.crop_pad, self.flip = augmentation_for(s["dataset"]) if augment_on else (0, False)

        supernet = build_supernet(self.problem.space, s, self.data.num_classes, self.data.in_channels)
        if ranks.active:
            # batch split: normalise over the whole batch; either split: the same running statistics on every rank
            supernet = to_global_batchnorm(supernet)
        self.supernet = supernet.to(self.device, memory_format=self.memory_format)
        self._weight_split = self.weight_split()
        self.onehot_shape = (self.problem.space.num_decisions, self.problem.space.max_options)
        self.supernet.train()  # always batch statistics, as in the original search
        self.weights = [p for p in self.supernet.parameters() if p.requires_grad]
        self.w_optimiser: torch.optim.Optimizer
        if s["optimizer"] == "adamw":
            self.w_optimiser = torch.optim.AdamW(self.weights, lr=s["lr"], weight_decay=s["weight_decay"])
        else:
            self.w_optimiser = torch.optim.SGD(
                self.weights, lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"]
            )
        self.w_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.w_optimiser, T_max=config.epochs, eta_min=s["eta_min"]
        )
        self.step_in_epoch = 0
        self._last_ce = float("nan")
        self.ce_window: deque[list[float]] = deque(maxlen=int(s["ce_window"]))
        self._perm_cache: tuple[int, Tensor, Tensor] | None = None
        self._loss_cache: tuple[int, dict[str, float]] = (-1, {})

    # -- what the base loop asks for ----------------------------------------------------------------------------

    def epoch_length(self) -> int:
        """Steps per epoch: one pass over the weight-training half (last partial batch dropped)."""
        return self._steps

    def preferences_per_step(self) -> int:
        """Preferences per device and step (``oneshot.preferences_per_device``; the paper: 1).

        With P > 1 the hypernetwork batch is split into P parts and each preference's sample is scored on its own
        part, so a device still costs one batch of supernet compute while P preference bins learn per step.
        """
        return int(self.settings["preferences_per_device"])

    def normalised_error(self, onehot: Tensor) -> Tensor:
        """Supernet cross-entropy of each sample ``(T, P, decisions, options)`` on this step's hypernetwork batch,
        normalised.

        Each sample runs once; the value and its derivative with respect to the one-hot are combined into a
        surrogate ``ce + <g, onehot - onehot.detach()>``, so the hypernetwork backward pass needs no supernet graph.
        """
        x, y = self._hyper_batch()
        prefs = onehot.shape[-3]
        parts = list(zip(x.tensor_split(prefs), y.tensor_split(prefs)))  # preference p scores on part p
        flat = onehot.reshape(-1, *self.onehot_shape)
        ops = flat.detach().argmax(dim=-1).tolist()
        # row i holds sample i's cross-entropy and its gradient; in a distributed run each rank fills the rows of
        # its own devices and the sum over the ranks gives every rank all of them (adding zeros is exact)
        measured = torch.zeros(len(ops), 1 + flat[0].numel())
        for t in self.ranks.owned(onehot.shape[0]):
            for i in range(t * prefs, (t + 1) * prefs):
                xp, yp = parts[i % prefs]
                leaf = flat[i].detach().to(self.device).requires_grad_(True)
                with self._autocast():
                    logits = self.supernet(xp, leaf, ops[i])
                ce = token_loss(logits, yp)
                # gradient with respect to the sample only: the supernet weights get none from this phase
                (grad,) = torch.autograd.grad(ce, leaf)
                measured[i, 0] = ce.detach().float().cpu()
                measured[i, 1:] = grad.float().cpu().reshape(-1)
        self.ranks.sum(measured)
        ce_raw = measured[:, 0]
        grad_oh = measured[:, 1:].reshape(flat.shape)
        self.ce_window.append(ce_raw.tolist())
        low, high = self.ce_range()
        surrogate = ce_raw + ((flat - flat.detach()) * grad_oh).sum(dim=(-2, -1))
        self._last_ce = float(ce_raw.mean())
        return ((surrogate - low) / (high - low)).reshape(onehot.shape[:-2])

    def ce_range(self) -> tuple[float, float]:
        """Normalisation range of the cross-entropy: the window's minimum and its ``ce_quantile`` quantile.

        The window holds the current step's values, so the range is defined from the first step. The upper end is a
        quantile rather than the maximum because cells that disconnect input from output sit at chance-level
        cross-entropy: a maximum would let them stretch the range and squash the differences between useful cells
        (which the preference must trade against latency) into a sliver of [0, 1]. Worse samples get values above 1.
        """
        values = torch.tensor([v for step in self.ce_window for v in step], dtype=torch.float64)
        low = float(values.min())
        high = float(torch.quantile(values, self.settings["ce_quantile"]))
        return low, max(high, low + MIN_CE_RANGE)

    def step(self) -> dict[str, float]:
        """Hypernetwork update (MGD over the devices), then the supernet weight update.

        During the warm-up epochs only the weights train, on paths sampled from the untrained hypernetwork (near
        uniform), so that parametric ops are trained before the hypernetwork compares them with parameter-free ones.
        """
        info: dict[str, float] = {}
        if self.epoch >= self.settings["warmup_epochs"]:
            info = self.hypernet_step()
            info["ce_hyper"] = self._last_ce
        info.update(self.weight_step())
        self.step_in_epoch += 1
        return info

    def weight_split(self) -> str:
        """How a distributed run splits the weight phase: ``batch`` or ``devices`` (``oneshot.weight_split``; auto:
        batch on CUDA or with more ranks than training devices, else devices). One process does all of it."""
        split = str(self.settings["weight_split"])
        if split == "auto":
            many = self.ranks.world_size > len(self.train_devices)
            split = "batch" if (self.device.type == "cuda" or many) else "devices"
        return split

    def weight_step(self) -> dict[str, float]:
        """SGD on the mean over devices of the cross-entropy of a fresh sample each, on one weight batch.

        In a distributed run (:mod:`modnas.distributed`) the ranks share the work and sum their gradients: with the
        ``batch`` split each rank runs every device's sample on its slice of the batch (losses summed over the slice
        and divided by the global batch size, global-batch normalisation), with the ``devices`` split each rank
        runs its own devices' samples on the whole batch. Either way the gradient is the single-process one up to
        the order of floating-point additions.
        """
        t = len(self.train_devices)
        x, y = self._weight_batch()
        with torch.no_grad():  # the hypernetwork only chooses the paths here; it learns nothing from this phase
            r = self.sample_preferences(1)
            alpha = self.space.mask_logits(self.hypernet(r, self.train_emb[:, None, :]))  # padding never sampled
            onehot = self.sampler(alpha).reshape(t, *self.onehot_shape)
        ops = onehot.argmax(dim=-1).tolist()
        onehot = onehot.to(self.device)
        devices: range | list[int] = range(t)
        by_batch = self.ranks.active and self._weight_split == "batch"
        if by_batch:
            batch = len(y)  # the global batch: every rank's loss is a share of its mean
            part = self.ranks.shard(batch)
            x, y = x[part], y[part]
        elif self.ranks.active:
            devices = self.ranks.owned(t)
        self.w_optimiser.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        with use_global_batchnorm(self.supernet, by_batch):
            for k in devices:
                with self._autocast():
                    logits = self.supernet(x, onehot[k], ops[k])
                if by_batch:  # a text batch row holds T tokens; the per-row mean keeps shards exact
                    per_row = y[0].numel()
                    loss = token_loss(logits, y, reduction="sum") / (batch * t * per_row)
                    hits = (logits.detach().argmax(dim=-1) == y).float().sum() / (batch * t * per_row)
                else:
                    loss = token_loss(logits, y) / t
                    hits = (logits.detach().argmax(dim=-1) == y).float().mean() / t
                loss.backward()
                total += loss.detach()
                correct += hits
        if self.ranks.active:
            self.ranks.sum_grads(self.weights)
            totals = self.ranks.sum(torch.stack([total, correct]).cpu())
            total, correct = totals[0], totals[1]
        torch.nn.utils.clip_grad_norm_(self.weights, self.settings["grad_clip"])
        self.w_optimiser.step()
        return {"ce_weights": float(total), "acc_weights": float(correct)}

    def score_front(self, device: str, keys: Any) -> dict[str, Any]:
        """The shared scorer where the space has quality ground truth; otherwise (gpt-tiny: ``extras["quality"]
        == "inherited"``) the front rated by the supernet's own held-out cross-entropy, normalised from 0 to
        chance level, and the device's table latency (as ``modnas evaluate --inherited`` does, on validation
        text rather than test text)."""
        if self.problem.extras.get("quality") != "inherited":
            return super().score_front(device, keys)
        from modnas.evaluation.pareto import hypervolume, nondominated_mask

        unique = list(dict.fromkeys(str(k) for k in keys))
        quality = np.array([self.held_out_loss(k) for k in unique]) / math.log(self.data.num_classes)
        latency = self.problem.truth.evaluate(unique, device, ("latency",))[:, 0]
        bounds = self.problem.reference.normalisation(device, ("error", "latency"))
        points = np.stack([quality, bounds.normalise(np.stack([quality, latency], 1))[:, 1]], axis=1)
        front = points[nondominated_mask(points, keep_duplicates=False)]
        split = self.problem.devices.get(device).split
        return {"device": device, "split": split, "hv": hypervolume(front, 1.0), "igd_plus": None,
                "n_front": len(front)}  # fmt: skip

    @torch.no_grad()
    def held_out_loss(self, key: str) -> float:
        """Mean cross-entropy (nats) of one architecture on the first ``oneshot.score_windows`` validation windows,
        with the supernet's current weights; cached per epoch."""
        if self._loss_cache[0] != self.epoch:
            self._loss_cache = (self.epoch, {})
        cache = self._loss_cache[1]
        if key not in cache:
            n = int(self.settings["score_windows"])
            x, y = self.data.val_x[:n].to(self.device), self.data.val_y[:n].to(self.device)
            _, total = supernet_scores(self.supernet, self.space, key, x, y, self.batch_size, self._autocast)
            cache[key] = total / y.numel()
        return cache[key]

    def after_epoch(self) -> dict[str, float]:
        lr = self.w_optimiser.param_groups[0]["lr"]
        self.w_schedule.step()
        self.step_in_epoch = 0
        return {"weight_lr": float(lr)}

    # -- data ---------------------------------------------------------------------------------------------------

    def _to_device(self, x: Tensor) -> Tensor:
        return x.to(self.device).contiguous(memory_format=self.memory_format)

    def _autocast(self) -> AbstractContextManager[Any]:
        return autocast_for(self.device, self.amp)

    def _permutations(self) -> tuple[Tensor, Tensor]:
        """This epoch's orders of the weight and hypernetwork halves (a function of seed and epoch)."""
        if self._perm_cache is None or self._perm_cache[0] != self.epoch:
            seed = self.config.seed
            perm_w = torch.randperm(len(self.y_weights), generator=_seeded(seed, self.epoch, 0))
            perm_h = torch.randperm(len(self.y_hyper), generator=_seeded(seed, self.epoch, 1))
            self._perm_cache = (self.epoch, perm_w.to(self.device), perm_h.to(self.device))
        return self._perm_cache[1], self._perm_cache[2]

    def _weight_batch(self) -> tuple[Tensor, Tensor]:
        perm_w, _ = self._permutations()
        idx = perm_w[self.step_in_epoch * self.batch_size : (self.step_in_epoch + 1) * self.batch_size]
        x = self.x_weights[idx]
        if self.crop_pad or self.flip:
            gen = _seeded(self.config.seed, self.epoch, self.step_in_epoch, 2)
            x = augment(x, gen, self.crop_pad, self.flip).contiguous(memory_format=self.memory_format)
        return x, self.y_weights[idx]

    def _hyper_batch(self) -> tuple[Tensor, Tensor]:
        """The hypernetwork batch of this step (no augmentation: it measures, it does not train weights)."""
        _, perm_h = self._permutations()
        n = len(perm_h)
        pos = (self.step_in_epoch * self.batch_size + torch.arange(min(self.batch_size, n), device=perm_h.device)) % n
        idx = perm_h[pos]
        return self.x_hyper[idx], self.y_hyper[idx]

    def replica_state(self) -> dict[str, Tensor]:
        """The base's replicated state plus the supernet's parameters and buffers."""
        return {**super().replica_state(), **{f"supernet.{k}": v for k, v in self.supernet.state_dict().items()}}

    # -- checkpoints --------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The base state plus supernet, its optimiser and schedule, the CE window and the step counter."""
        state = super().state_dict()
        state["oneshot"] = {
            "supernet": self.supernet.state_dict(),
            "optimiser": self.w_optimiser.state_dict(),
            "schedule": self.w_schedule.state_dict(),
            "ce_window": [list(v) for v in self.ce_window],
            "step_in_epoch": self.step_in_epoch,
            "data": {"dataset": self.data.name, "weights": len(self.y_weights), "hyper": len(self.y_hyper)},
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` of a one-shot search with the same configuration and data."""
        if "oneshot" not in state:
            raise ModnasError("the checkpoint holds no supernet: it is not from a one-shot search")
        own = state["oneshot"]
        data = {"dataset": self.data.name, "weights": len(self.y_weights), "hyper": len(self.y_hyper)}
        if dict(own["data"]) != data:
            raise ModnasError(f"the checkpoint was trained on {dict(own['data'])}, this search has {data}")
        super().load_state_dict(state)
        self.supernet.load_state_dict(own["supernet"])
        self.w_optimiser.load_state_dict(own["optimiser"])
        self.w_schedule.load_state_dict(own["schedule"])
        self.ce_window.clear()
        self.ce_window.extend([float(v) for v in step] for step in own["ce_window"])
        self.step_in_epoch = int(own["step_in_epoch"])
        self._perm_cache = None


class SupernetError:
    """Error (%) of architectures as a trained one-shot supernet sees them, on (part of) the hypernetwork half.

    Stands in for benchmark mode's error predictor when ``modnas front`` / ``modnas export`` read a one-shot run:
    the same ``error(onehot)`` call, answered by running each architecture through the supernet (batch statistics,
    as in the search). It needs the run's dataset.
    """

    def __init__(self, config: SearchConfig, supernet_state: dict[str, Tensor], max_images: int = 2000) -> None:
        s = config.oneshot.resolved()
        self.net, data = trained_supernet(config, supernet_state)
        data = data.limit_train(s["train_limit"])
        _, hyper_idx = search_split(len(data.train_y), s["train_portion"])
        idx = hyper_idx[:max_images]
        self.x, self.y = data.train_x[idx], data.train_y[idx]
        self.batch_size = int(s["batch_size"])
        self.space = get_problem(config.space).space
        self.onehot_shape = (self.space.num_decisions, self.space.max_options)

    def eval(self) -> SupernetError:
        return self

    @torch.no_grad()
    def error(self, onehot: Tensor, kappa: float = 0.0) -> Tensor:
        """Error (%) of every one-hot ``(..., decisions, options)``; ``kappa`` (an ensemble's pessimism) has no
        meaning here."""
        keys = self.space.keys(self.space.from_logits(onehot.reshape(-1, *self.onehot_shape)))
        errors = []
        for key in keys:
            correct, _ = supernet_scores(self.net, self.space, key, self.x, self.y, self.batch_size)
            errors.append(100.0 * (1.0 - correct / self.y.numel()))
        return torch.tensor(errors, dtype=torch.float32).reshape(onehot.shape[:-2])
