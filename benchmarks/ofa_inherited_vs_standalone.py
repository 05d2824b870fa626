"""One architecture of a one-shot OFA run: its test accuracy with the weights it inherits from the supernet (as the
search rates it, and as `modnas export --inherited` exports it), after fine-tuning them, and trained standalone from
scratch.

    python benchmarks/ofa_inherited_vs_standalone.py RUN --device titan_rtx_64 --preference 0.5,0.5 --epochs 4
    python benchmarks/ofa_inherited_vs_standalone.py RUN --epochs 0     # inherited and exported only

The architecture is the run's last-epoch pick for the evaluation ray nearest to ``--preference`` on ``--device``.
All three networks are the same :class:`~modnas.spaces.ofa.network.OFAMobileNetV3` (the run's width multiplier),
fed the run's inputs (resized to the architecture's resolution as the supernet resizes them) and scored on the whole
test set; the inherited one with batch statistics as in the search, the exported one in evaluation mode with
batch-normalisation statistics recomputed on ``--calibration-images`` weight-training images, the trained ones in
evaluation mode. Training:
SGD with Nesterov momentum, cosine schedule, the run's weight-training images (``oneshot.train_limit``), batch
``--batch-size``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modnas.datasets import load_dataset, search_split
from modnas.evaluation.preferences import parse_preference
from modnas.export import build_for_export
from modnas.problem import get_problem
from modnas.rundir import RunDir
from modnas.search.inherited import InheritedEvaluator, inherited_network
from modnas.search.oneshot import build_supernet
from modnas.spaces.ofa.arch import OFAArch
from modnas.spaces.ofa.network import OFAMobileNetV3
from modnas.spaces.ofa.supernet import input_size
from modnas.train import evaluate


class Resized(nn.Module):
    """A network fed inputs resized to ``size`` pixels, as the supernet feeds its sub-networks."""

    def __init__(self, net: nn.Module, size: int) -> None:
        super().__init__()
        self.net, self.size = net, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.net(x)


def pick(run: RunDir, device: str, preference: np.ndarray) -> str:
    rows = [r for r in run.front_rows() if r["device"] == device]
    if not rows:
        raise SystemExit(f"device {device!r} has no front in {run.fronts_file}")
    last = max(r["epoch"] for r in rows)
    rows = [r for r in rows if r["epoch"] == last]
    # two objectives: a ray is named by its weight on the error
    return min(rows, key=lambda r: abs(r["preference"] - float(preference[0])))["arch_str"]


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int, lr: float, seed: int) -> None:
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=4e-5, nesterov=True)
    steps = epochs * (len(y) // batch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for k in range(len(y) // batch):
            idx = order[k * batch : (k + 1) * batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--device", default="titan_rtx_64")
    parser.add_argument("--preference", default="0.5,0.5")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration-images", type=int, default=2000)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    run = RunDir(args.run).require()
    config = run.config()
    s = config.oneshot.resolved()
    space = get_problem(config.space).space
    key = space.canonical_key(pick(run, args.device, parse_preference(args.preference, 2)))
    arch = OFAArch.from_key(key)
    supernet_state = run.checkpoint()["oneshot"]["supernet"]
    data = load_dataset(s["dataset"], s["data_dir"]).limit_train(s["train_limit"])
    weight_idx, _ = search_split(len(data.train_y), s["train_portion"])
    x, y = data.train_x[weight_idx], data.train_y[weight_idx]

    evaluator = InheritedEvaluator(config, supernet_state, max_images=len(data.test_y))
    inherited = 100.0 - evaluator.error(key)
    supernet = build_supernet(space, s, data.num_classes, data.in_channels)
    supernet.load_state_dict(supernet_state)
    size = input_size(arch.r, supernet.image_size)

    spec, state, _ = inherited_network(args.run, key, args.calibration_images)
    _, exported_acc = evaluate(Resized(build_for_export(spec, state), size), data.test_x, data.test_y, 500)
    result = {
        "run": args.run, "device": args.device, "preference": args.preference, "arch": key,
        "input_pixels": size, "width_mult": supernet.width_mult, "dataset": s["dataset"],
        "train_images": len(y), "test_images": len(data.test_y), "epochs": args.epochs,
        "inherited_acc": round(inherited, 2), "exported_inherited_acc": round(exported_acc, 2),
        "calibration_images": min(args.calibration_images, len(y)),
        "machine": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)",
    }
    if args.epochs == 0:
        print(json.dumps(result, indent=1))
        return
    start = time.perf_counter()
    tuned = Resized(supernet.subnet(arch), size)
    train(tuned, x, y, args.epochs, args.batch_size, args.lr / 10, args.seed)
    _, tuned_acc = evaluate(tuned, data.test_x, data.test_y, 500)
    scratch = Resized(OFAMobileNetV3(arch, data.num_classes, supernet.width_mult, data.in_channels), size)
    train(scratch, x, y, args.epochs, args.batch_size, args.lr, args.seed)
    _, scratch_acc = evaluate(scratch, data.test_x, data.test_y, 500)
    result.update({
        "inherited_finetuned_acc": round(tuned_acc, 2), "standalone_acc": round(scratch_acc, 2),
        "train_seconds": round(time.perf_counter() - start, 1),
    })
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
