"""Overhead of a one-shot search step: one full step against the 26 bare single-path passes it contains.

A step runs 13 supernet passes for the hypernetwork update (gradient with respect to the sampled one-hot only) and 13
for the weight update, plus the hypernetwork, the MetaPredictor, the MGD solver, sampling, batching and the
optimisers. This script times steps, records the 26 architectures each step ran, then times 26 bare
forward/backward passes (cross-entropy, full ``backward()``) of exactly those architectures on the same batch, and
prints ``ratio = step time / bare time`` (target <= 1.15). On CUDA it uses bf16 autocast and channels-last, as the
search does.

Usage: python benchmarks/bench_search_step.py [--device auto|cpu|cuda] [--batch-size B]
       [--dataset synthetic-cifar|fashion-mnist|digits] [--steps S] [--warmup W] [--C 16] [--N 5] [--threads T]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from modnas.config import load_config
from modnas.datasets import ImageData, load_dataset
from modnas.search.oneshot import OneShotSearch
from modnas.spaces.nb201.encoding import NUM_OPS


def synthetic_cifar(n: int, seed: int = 0) -> ImageData:
    """Random 3x32x32 images with 10 labels: CIFAR's shapes without the download."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    return ImageData("synthetic-cifar", x, y, x[:2], y[:2], 10)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Recorder:
    """Wraps the supernet's forward to record the op choice of every pass of a step."""

    def __init__(self, loop: OneShotSearch) -> None:
        self.calls: list[list[int]] = []
        self._forward = loop.supernet.forward

        def forward(x, onehot, ops=None):
            self.calls.append(list(ops) if ops is not None else onehot.detach().argmax(-1).tolist())
            return self._forward(x, onehot, ops)

        loop.supernet.forward = forward  # type: ignore[method-assign]


def bare_passes(loop: OneShotSearch, archs: list[list[int]]) -> float:
    """Seconds for one forward + cross-entropy + backward per architecture, on one weight batch."""
    x, y = loop.x_weights[: loop.batch_size], loop.y_weights[: loop.batch_size]
    onehots = [F.one_hot(torch.tensor(ops), NUM_OPS).float().to(loop.device) for ops in archs]
    net = loop.supernet
    net.zero_grad(set_to_none=True)
    sync(loop.device)
    start = time.perf_counter()
    for ops, onehot in zip(archs, onehots):
        with loop._autocast():
            logits = net._forward_unrecorded(x, onehot, ops)  # type: ignore[attr-defined]
        F.cross_entropy(logits.float(), y).backward()
    sync(loop.device)
    seconds = time.perf_counter() - start
    net.zero_grad(set_to_none=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--dataset", default="synthetic-cifar", choices=["synthetic-cifar", "fashion-mnist", "digits"])
    parser.add_argument("--batch-size", type=int, default=None, help="default: 256 on CUDA, 64 on the CPU")
    parser.add_argument("--steps", type=int, default=3, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (cuDNN autotuning, allocator)")
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--no-amp", action="store_true", help="CUDA: full precision instead of bf16 autocast")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    batch = args.batch_size or (256 if cuda else 64)
    n_images = 2 * batch * (args.steps + args.warmup + 1)
    overrides = {
        "mode": "oneshot", "epochs": 1, "pretrain_steps": 20,
        "oneshot.dataset": "digits" if args.dataset == "synthetic-cifar" else args.dataset,
        "oneshot.batch_size": batch, "oneshot.C": args.C, "oneshot.N": args.N, "oneshot.device": args.device,
        "oneshot.amp": not args.no_amp, "oneshot.train_limit": n_images, "oneshot.warmup_epochs": 0,
        "oneshot.preferences_per_device": 1,
    }
    config = load_config(None, overrides)
    data = synthetic_cifar(n_images) if args.dataset == "synthetic-cifar" else load_dataset(args.dataset)
    if len(data.train_y) < n_images:
        raise SystemExit(f"{args.dataset} has {len(data.train_y)} training images; need {n_images}: lower --steps")
    loop = OneShotSearch(config, data=data)
    loop.supernet._forward_unrecorded = loop.supernet.forward  # type: ignore[attr-defined]
    recorder = Recorder(loop)
    print(
        f"device {loop.device} ({torch.cuda.get_device_name(loop.device) if cuda else f'{torch.get_num_threads()} threads'}), "
        f"{args.dataset} {tuple(data.train_x.shape[1:])}, batch {batch}, C={args.C}, N={args.N}, "
        f"amp={'bf16' if loop.amp else 'off'}, channels_last={loop.memory_format == torch.channels_last}"
    )
    for _ in range(args.warmup):
        loop.step()
        bare_passes(loop, recorder.calls)
        recorder.calls.clear()
    step_times, bare_times = [], []
    for _ in range(args.steps):
        recorder.calls.clear()
        sync(loop.device)
        start = time.perf_counter()
        loop.step()
        sync(loop.device)
        step_times.append(time.perf_counter() - start)
        archs = list(recorder.calls)
        if len(archs) != 26:
            raise SystemExit(f"a step ran {len(archs)} supernet passes, expected 26")
        bare_times.append(bare_passes(loop, archs))
    ratios = [s / b for s, b in zip(step_times, bare_times)]
    print(f"search step:        {1000 * statistics.median(step_times):9.1f} ms (median of {args.steps})")
    print(f"26 bare passes:     {1000 * statistics.median(bare_times):9.1f} ms (same architectures and batch)")
    print(f"ratio step / bare:  {sum(step_times) / sum(bare_times):9.3f} (per step: {', '.join(f'{r:.3f}' for r in ratios)}; target <= 1.15)")


if __name__ == "__main__":
    main()
