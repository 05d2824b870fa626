"""Inherited-weight scores of a one-shot run: every device's final front rated by the trained supernet's own
accuracy on the search dataset's held-out test images, and by the device's latency.

The shared scorer rates a one-shot run by the space's ground truth (NB201: CIFAR-10 tables; OFA: the ImageNet
surrogate), which is a proxy when the search trained on another dataset. These scores need no ground truth for
accuracy: each architecture of a front runs through the supernet with the weights it inherits, with batch
statistics as in the search, on the first ``max_images`` test images. The error is normalised from 0 % to chance
level (``100 * (1 - 1 / classes)``), the latency with the device's bounds of the shared scorer, so the HV is
comparable between runs on the same dataset and space, not with the shared scorer's HV.

On a text corpus (a language-model space) the quality is the held-out *perplexity* instead: the mean next-token
cross-entropy, normalised from 0 to chance level (``ln 256`` for byte tokens) for the HV, and reported as
perplexity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modnas.config import SearchConfig
from modnas.datasets import search_split
from modnas.errors import ModnasError
from modnas.evaluation.pareto import hypervolume, nondominated_mask
from modnas.problem import get_problem
from modnas.rundir import RunDir
from modnas.search.oneshot import supernet_scores, trained_supernet

if TYPE_CHECKING:
    from modnas.export import NetworkSpec

__all__ = ["InheritedEvaluator", "InheritedScore", "inherited_network", "inherited_scores", "recalibrate_batch_norm"]


@dataclass(frozen=True)
class InheritedScore:
    """One device's front rated by inherited-weight test error and latency."""

    device: str
    split: str
    hv: float
    n_front: int
    best_error: float
    #: test images (text: test windows) each error was measured on
    images: int
    #: the front's architectures, fastest last: ``(key, error, latency)``
    front: tuple[tuple[str, float, float], ...]
    #: what ``best_error`` and the front's errors are: ``error %`` (images) or ``perplexity`` (text)
    metric: str = "error %"

    def row(self) -> dict[str, Any]:
        return {"device": self.device, "split": self.split, "hv": self.hv, "n_front": self.n_front,
                "best_error": self.best_error, "images": self.images, "metric": self.metric}


class InheritedEvaluator:
    """Test error (%) of architectures of a one-shot run's space with the supernet's inherited weights."""

    def __init__(
        self, config: SearchConfig, supernet_state: dict[str, Any], max_images: int = 500, batch_size: int = 250
    ) -> None:
        if config.mode != "oneshot":
            raise ModnasError("inherited-weight scores need a one-shot run (its supernet); this run is benchmark mode")
        self.net, data = trained_supernet(config, supernet_state)
        self.x, self.y = data.test_x[:max_images], data.test_y[:max_images]
        self.num_classes = data.num_classes
        self.text = bool(getattr(data, "is_text", False))
        self.batch_size = batch_size
        self.space = get_problem(config.space).space
        self.net.train()  # batch statistics, as in the search
        self._cache: dict[str, tuple[float, float]] = {}

    @property
    def chance_error(self) -> float:
        return 100.0 * (1.0 - 1.0 / self.num_classes)

    def _measure(self, key: str) -> tuple[float, float]:
        """Test error (%) and mean cross-entropy (nats) of one architecture (canonical key), once per key."""
        if key not in self._cache:
            correct, loss = supernet_scores(self.net, self.space, key, self.x, self.y, self.batch_size)
            self._cache[key] = (100.0 * (1.0 - correct / self.y.numel()), loss / self.y.numel())
        return self._cache[key]

    def error(self, key: str) -> float:
        """Test error (%) of one architecture (canonical key)."""
        return self._measure(key)[0]

    def perplexity(self, key: str) -> float:
        """Test perplexity of one architecture (exp of its mean cross-entropy per prediction)."""
        return float(np.exp(self._measure(key)[1]))

    def quality(self, key: str) -> tuple[float, float]:
        """``(reported value, value normalised from 0 to chance)``: error % on images, perplexity on text."""
        if self.text:
            return self.perplexity(key), self._measure(key)[1] / float(np.log(self.num_classes))
        error = self.error(key)
        return error, error / self.chance_error


def _fronts(run: RunDir, epoch: int | None, space: Any) -> dict[str, list[str]]:
    """Architectures of one epoch's front (default: the last) per device, in the order fronts.csv lists them."""
    rows = run.front_rows(space)
    if not rows:
        raise ModnasError(f"{str(run.fronts_file)!r} holds no fronts yet")
    epochs = {r["epoch"] for r in rows}
    chosen = max(epochs) if epoch is None else epoch
    if chosen not in epochs:
        raise ModnasError(f"run has no fronts of epoch {epoch}; it has epochs {min(epochs)} to {max(epochs)}")
    fronts: dict[str, list[str]] = {}
    for r in rows:
        if r["epoch"] == chosen:
            fronts.setdefault(r["device"], []).append(r["arch_str"])
    return fronts


def inherited_scores(run_dir: str | Path, max_images: int = 500, epoch: int | None = None) -> list[InheritedScore]:
    """Every evaluation device's front of the one-shot run in ``run_dir`` (the last epoch's, or ``epoch``'s), rated
    by the final supernet's inherited-weight test error on the first ``max_images`` test images and by the
    device's latency (see the module docstring). Fronts of an earlier epoch rated by the final weights show what
    the hypernetwork's later picks gained."""
    run = RunDir(run_dir).require()
    config = run.config()
    if config.mode != "oneshot":
        raise ModnasError(f"run {str(run.path)!r} is a benchmark-mode run: inherited-weight scores need a supernet")
    problem = get_problem(config.space)
    fronts = _fronts(run, epoch, problem.space)  # before the supernet is built: a run without fronts fails fast
    evaluator = InheritedEvaluator(config, run.checkpoint()["oneshot"]["supernet"], max_images=max_images)
    scores = []
    for device, keys in fronts.items():
        unique = list(dict.fromkeys(problem.space.canonical_key(k) for k in keys))
        quality = np.array([evaluator.quality(k) for k in unique]).reshape(-1, 2)
        errors = quality[:, 0]
        latency = problem.truth.evaluate(unique, device, ("latency",))[:, 0]
        lat_low, lat_high = _latency_bounds(problem, device)
        points = np.stack([quality[:, 1], (latency - lat_low) / (lat_high - lat_low)], axis=1)
        mask = nondominated_mask(points, keep_duplicates=False)
        order = np.argsort(errors[mask], kind="stable")
        front = tuple(
            (unique[i], float(errors[i]), float(latency[i])) for i in np.flatnonzero(mask)[order]
        )
        scores.append(InheritedScore(
            device=device, split=problem.devices.get(device).split, hv=hypervolume(points[mask], 1.0),
            n_front=len(front), best_error=float(errors.min()), images=len(evaluator.y), front=front,
            metric="perplexity" if evaluator.text else "error %",
        ))
    return scores


def _latency_bounds(problem: Any, device: str) -> tuple[float, float]:
    """The device's latency bounds of the shared scorer."""
    bounds = problem.reference.normalisation(device, ("error", "latency"))
    return float(bounds.lower[1]), float(bounds.upper[1])


@torch.no_grad()
def recalibrate_batch_norm(net: nn.Module, images: torch.Tensor, batch_size: int = 250) -> int:
    """Reset ``net``'s batch-normalisation statistics to the mean over ``images`` ``(N, C, H, W)`` (as Once-for-All
    does for an extracted subnet: a supernet's running statistics mix every sub-network it trained). Returns the
    number of normalisation layers; ``net`` is left in eval mode."""
    layers = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over the batches
    net.train()
    if layers:
        for chunk in images.split(batch_size):
            net(chunk)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    net.eval()
    return len(layers)


def inherited_network(
    run_dir: str | Path, arch_str: str, calibration_images: int = 2000
) -> tuple[NetworkSpec, dict[str, torch.Tensor], str]:
    """The standalone network of ``arch_str`` with the weights it inherits from the one-shot run's final supernet:
    its :class:`~modnas.export.NetworkSpec` (the run's width, classes, input channels, and the input side the
    supernet fed it), its state dict, and a line saying where the weights come from.

    Batch-normalisation statistics are recomputed for this network from the first ``calibration_images`` of the
    run's weight-training images, resized as the supernet resized them; a network without batch normalisation
    (GPT) is used as it is."""
    from modnas.export import NetworkSpec

    run = RunDir(run_dir).require()
    config = run.config()
    if config.mode != "oneshot":
        raise ModnasError(f"run {str(run.path)!r} is a benchmark-mode run: inherited weights need a one-shot run")
    space = get_problem(config.space).space
    key = space.canonical_key(arch_str)
    s = config.oneshot.resolved()
    supernet, data = trained_supernet(config, run.checkpoint()["oneshot"]["supernet"])
    if not hasattr(supernet, "subnet"):
        raise ModnasError(f"the {space.name} supernet cannot hand its weights to a standalone network (OFA and GPT can)")
    net = supernet.subnet(key)
    spec = NetworkSpec(arch_str=key, space=config.space, **supernet.subnet_settings(key))
    source = f"inherited from the supernet of run {run.path}"
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
        if calibration_images < 1:
            raise ModnasError(f"calibration images must be at least 1, got {calibration_images}")
        train = data.limit_train(s["train_limit"])
        weight_idx, _ = search_split(len(train.train_y), s["train_portion"])
        images = train.train_x[weight_idx[:calibration_images]]
        if images.shape[-1] != spec.image_size or images.shape[-2] != spec.image_size:
            images = F.interpolate(images, size=(spec.image_size, spec.image_size), mode="bilinear", align_corners=False)
        recalibrate_batch_norm(net, images)
        source += f"; batch-normalisation statistics from {len(images)} of its weight-training images"
    return spec, {k: t.detach().clone() for k, t in net.state_dict().items()}, source
