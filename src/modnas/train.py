"""Training a found architecture from scratch: the standalone NB201 network of one cell on a real dataset.

``train_architecture(arch, settings, out_dir)`` builds the space's standalone network
(:meth:`~modnas.spaces.base.SearchSpace.build_network`, NB201's cell network by default) with the
dataset's input channels and classes, trains it with SGD (momentum, Nesterov) and a per-step cosine schedule, the
dataset's standard augmentation, tests it after every epoch and writes, atomically, into a new ``out_dir``:

* ``checkpoint.pt`` -- model, optimiser, schedule, epoch and RNG states, after every epoch;
* ``result.json`` -- architecture, final test accuracy, per-epoch history, seconds, parameters and settings;
* ``metadata.json`` -- modnas version and commit, command line, times, host and library versions
  (:mod:`modnas.search.metadata`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modnas.datasets import ImageData, augment, augmentation_for, load_dataset, normalise_name
from modnas.errors import ModnasError
from modnas.export import NetworkSpec
from modnas.io import atomic_torch_save, atomic_write_json, prepare_out_dir, read_user_text

logger = logging.getLogger(__name__)

#: ``progress(steps_done, steps_total, info)``; ``info`` holds the running loss/accuracy or the epoch's test accuracy
TrainProgress = Callable[[int, int, dict[str, float]], None]

#: Per-dataset defaults for the fields of :class:`TrainSettings` left at ``None``.
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "digits": {"epochs": 30, "batch_size": 64, "lr": 0.05},
    "fashion-mnist": {"epochs": 3, "batch_size": 128, "lr": 0.1},
    "cifar10": {"epochs": 200, "batch_size": 256, "lr": 0.1},
    "cifar100": {"epochs": 200, "batch_size": 256, "lr": 0.1},
    # text corpora: 128-token windows, AdamW (transformers train poorly with plain SGD)
    "bible-kjv": {"epochs": 10, "batch_size": 32, "lr": 3e-3, "optimizer": "adamw", "weight_decay": 0.01},
    "fortunes": {"epochs": 10, "batch_size": 32, "lr": 3e-3, "optimizer": "adamw", "weight_decay": 0.01},
}


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; asking for CUDA without one is a one-line error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModnasError("device 'cuda' was requested but no CUDA GPU is available; use --accelerator cpu or auto")
    if name not in ("cpu", "cuda"):
        raise ModnasError(f"unknown accelerator {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


def autocast_for(device: torch.device, amp: bool) -> AbstractContextManager[Any]:
    """bf16 autocast on CUDA when ``amp``; a no-op on the CPU (bf16 convolutions are slow there)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if amp and device.type == "cuda" else nullcontext()


@dataclass
class TrainSettings:
    """How to train one architecture; ``None`` fields take the dataset's preset (:data:`TRAIN_PRESETS`)."""

    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    #: sgd (Nesterov momentum; images) or adamw (text)
    optimizer: str | None = None
    C: int = 16
    N: int = 5
    #: OFA: width multiplier of the MobileNetV3
    width_mult: float = 1.2
    #: resize the images to this many pixels (``None``: the dataset's own size)
    image_size: int | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    augment: bool = True
    train_limit: int | None = None
    eval_batch_size: int = 500

    def resolved(self) -> TrainSettings:
        """A copy with the dataset name canonical, presets filled in and every value checked."""
        data = asdict(self)
        data["dataset"] = normalise_name(self.dataset)
        for key, value in {"weight_decay": 5e-4, "optimizer": "sgd", **TRAIN_PRESETS[data["dataset"]]}.items():
            if data[key] is None:
                data[key] = value
        out = TrainSettings(**data)
        if out.optimizer not in ("sgd", "adamw"):
            raise ModnasError(f"optimizer must be sgd or adamw, got {out.optimizer!r}")
        for name in ("epochs", "batch_size", "C", "N", "eval_batch_size"):
            if int(getattr(out, name)) < 1:
                raise ModnasError(f"{name} must be a positive integer, got {getattr(out, name)}")
        if not out.width_mult > 0:
            raise ModnasError(f"width_mult must be positive, got {out.width_mult}")
        if out.image_size is not None and (isinstance(out.image_size, bool) or int(out.image_size) < 1):
            raise ModnasError(f"image_size must be a positive integer, got {out.image_size}")
        if out.lr is None or out.lr <= 0 or out.weight_decay < 0 or not 0 <= out.momentum < 1:
            raise ModnasError("lr must be > 0, weight decay >= 0 and momentum in [0, 1)")
        return out


def load_architecture(spec: str | Path, space: str = "nb201") -> tuple[str, dict[str, Any]]:
    """An architecture from an ``ARCH.json`` of ``modnas export`` (key ``arch_str``; its ``space`` wins over
    ``space``), or an architecture of ``space`` as its string (NB201: also its table index).

    Returns ``(arch_str, metadata)``; the metadata is the JSON's content (empty for a string or an index).
    """
    from modnas.problem import get_problem

    text = str(spec).strip()
    if text.endswith(".json") or Path(text).is_file():
        raw = read_user_text(text, "architecture file")
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ModnasError(f"{text!r} is not valid JSON (line {exc.lineno})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("arch_str"), str):
            raise ModnasError(f"{text!r} holds no 'arch_str' (expected the JSON written by 'modnas export')")
        return get_problem(str(meta.get("space", space))).space.resolve(meta["arch_str"]), meta
    return get_problem(space).space.resolve(text), {}


def token_loss(logits: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy of class logits ``(B, C)`` or of language-model logits ``(B, T, V)`` (every token's
    prediction counts once), in float32."""
    if logits.dim() > 2:
        logits, y = logits.reshape(-1, logits.shape[-1]), y.reshape(-1)
    return F.cross_entropy(logits.float(), y, reduction=reduction)


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int, amp: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (%) of ``model`` in eval mode over ``(x, y)`` (text: per token)."""
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(y), batch_size):
        with autocast_for(x.device, amp):
            logits = model(x[i : i + batch_size]).float()
        loss += float(token_loss(logits, y[i : i + batch_size], reduction="sum"))
        correct += int((logits.argmax(dim=-1) == y[i : i + batch_size]).sum())
    model.train(was_training)
    return loss / y.numel(), 100.0 * correct / y.numel()


def train_architecture(
    arch: str,
    settings: TrainSettings,
    out_dir: str | Path,
    progress: TrainProgress | None = None,
    data: ImageData | None = None,
    meta: dict[str, Any] | None = None,
    space: str = "nb201",
) -> dict[str, Any]:
    """Train ``arch`` of ``space`` from scratch with ``settings``, writing ``checkpoint.pt`` and ``result.json`` to
    ``out_dir``."""
    from modnas.problem import get_problem
    from modnas.search.metadata import RunMetadata

    search_space = get_problem(space).space

    s = settings.resolved()
    if data is None:  # before the output directory: a missing dataset leaves nothing behind
        data = load_dataset(s.dataset, s.data_dir, download=s.download)
    data = data.resized(s.image_size)
    device = resolve_device(s.device)
    torch.manual_seed(s.seed)
    # the network before the output directory too: an architecture the space cannot build leaves nothing behind.
    # Only the space's own settings are passed (NB201: C and N); a network that pools globally (NB201, OFA) takes
    # the dataset's image size, whatever resolution an OFA architecture names for ImageNet.
    spec = NetworkSpec(
        arch, space=space, **{name: getattr(s, name) for name in search_space.network_options},
        num_classes=data.num_classes, in_channels=data.in_channels, image_size=int(data.train_x.shape[-1]),
    )
    model = search_space.build_network(arch, **spec.network_kwargs())
    out = prepare_out_dir(out_dir)
    metadata = RunMetadata(out, s.seed, "train")
    data = data.limit_train(s.train_limit)
    cuda = device.type == "cuda"
    text = bool(getattr(data, "is_text", False))
    memory = torch.channels_last if cuda and not text else torch.contiguous_format
    model = model.to(device, memory_format=memory)
    train_x = data.train_x.to(device).contiguous(memory_format=memory)
    train_y = data.train_y.to(device)
    test_x = data.test_x.to(device).contiguous(memory_format=memory)
    test_y = data.test_y.to(device)
    steps_per_epoch = max(1, len(train_y) // s.batch_size)
    total = s.epochs * steps_per_epoch
    if s.optimizer == "adamw":
        optimiser: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    else:
        optimiser = torch.optim.SGD(
            model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay, nesterov=s.momentum > 0
        )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total)
    pad, flip = augmentation_for(s.dataset) if s.augment else (0, False)
    generator = torch.Generator().manual_seed(s.seed)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    done = 0
    model.train()
    for epoch in range(1, s.epochs + 1):
        order = torch.randperm(len(train_y), generator=generator).to(device)
        run_loss = run_correct = seen = 0.0
        for k in range(steps_per_epoch):
            idx = order[k * s.batch_size : (k + 1) * s.batch_size]
            x, y = train_x[idx], train_y[idx]
            if pad or flip:
                x = augment(x, generator, pad, flip).contiguous(memory_format=memory)
            with autocast_for(device, s.amp):
                logits = model(x)
            loss = token_loss(logits, y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            done += 1
            run_loss += float(loss.detach()) * y.numel()
            run_correct += float((logits.detach().argmax(dim=-1) == y).sum())
            seen += y.numel()
            if progress is not None:
                progress(done, total, {"loss": run_loss / seen, "train_acc": 100.0 * run_correct / seen})
        test_loss, test_acc = evaluate(model, test_x, test_y, s.eval_batch_size, s.amp)
        history.append(
            {
                "epoch": epoch,
                "train_loss": run_loss / seen,
                "train_acc": 100.0 * run_correct / seen,
                "test_loss": test_loss,
                "test_acc": test_acc,
                **({"test_perplexity": math.exp(test_loss)} if text else {}),
                "seconds": round(time.perf_counter() - start, 2),
            }
        )
        atomic_torch_save(
            {
                "arch_str": arch,
                "epoch": epoch,
                "history": history,
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "schedule": schedule.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "data": generator.get_state()},
                "settings": asdict(s),
                "network": spec.record(),  # what `modnas export --weights` rebuilds the network from
            },
            out / "checkpoint.pt",
        )
        metadata.update(epoch=epoch)
        last = history[-1]
        logger.info(
            "epoch %d/%d: train loss %.4f, train %.2f %%, test %.2f %%; %.1f s",
            epoch, s.epochs, last["train_loss"], last["train_acc"], last["test_acc"], last["seconds"],
        )
        if progress is not None:
            progress(done, total, {"test_acc": test_acc})
    result = {
        "arch_str": arch,
        "dataset": s.dataset,
        "test_accuracy": history[-1]["test_acc"],
        **({"test_perplexity": history[-1]["test_perplexity"]} if text else {}),
        "epochs": s.epochs,
        "seconds": round(time.perf_counter() - start, 2),
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "device": str(device),
        "space": space,
        "settings": asdict(s),
        "history": history,
        "source": meta or {},
    }
    atomic_write_json(out / "result.json", result)
    metadata.finish()
    return result


__all__ = [
    "TRAIN_PRESETS",
    "TrainSettings",
    "autocast_for",
    "evaluate",
    "load_architecture",
    "resolve_device",
    "token_loss",
    "train_architecture",
]
