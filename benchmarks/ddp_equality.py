"""How far a distributed one-shot search drifts from the same search in one process, epoch by epoch, next to how
far one process drifts when only its thread count changes.

    python benchmarks/ddp_equality.py --epochs 4

Runs the one-shot search of tests/search/test_torchrun.py (NB201 supernet on 128 digits images, batch 32, 2 steps
per epoch) four ways: one process with 1 thread (the reference), one process with 2 threads, and 2 processes
(torchrun, gloo, 1 thread each) with the weight phase split by batch and by devices. Prints, after every epoch, the
largest absolute difference of the hypernetwork's and the supernet's parameters from the reference.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

CONFIG = {
    "mode": "oneshot", "seed": 5, "pretrain_steps": 5, "oneshot.train_limit": 128, "oneshot.batch_size": 32,
    "oneshot.C": 4, "oneshot.N": 1, "oneshot.warmup_epochs": 0, "oneshot.device": "cpu",
}


def worker(epochs: int, split: str, out: str) -> None:
    from modnas import distributed
    from modnas.config import load_config
    from modnas.search.oneshot import OneShotSearch

    config = load_config(None, {**CONFIG, "epochs": epochs, "oneshot.weight_split": split})
    ranks = distributed.setup("cpu")
    loop = OneShotSearch(config, ranks=ranks)
    states = []
    for _ in range(epochs):
        loop.train_epoch()
        states.append({
            "hypernet": {k: v.clone() for k, v in loop.hypernet.state_dict().items()},
            "supernet": {k: v.detach().clone() for k, v in loop.supernet.named_parameters()},
        })
    if ranks.is_main:
        torch.save(states, out)
    distributed.teardown()


def largest(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--worker", nargs=2, metavar=("SPLIT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        worker(args.epochs, *args.worker)
        return
    here = str(Path(__file__).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "1 process, 1 thread": ([sys.executable, here], "1", "auto"),
            "1 process, 2 threads": ([sys.executable, here], "2", "auto"),
            "2 processes, batch split": ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                         "--nproc-per-node", "2", here], "1", "batch"),
            "2 processes, devices split": ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                           "--nproc-per-node", "2", here], "1", "devices"),
        }
        states = {}
        for name, (cmd, threads, split) in runs.items():
            out = str(Path(tmp) / f"{len(states)}.pt")
            env = {**os.environ, "OMP_NUM_THREADS": threads}
            subprocess.run([*cmd, "--epochs", str(args.epochs), "--worker", split, out], env=env, check=True,
                           capture_output=True)
            states[name] = torch.load(out, weights_only=False)
    reference = states.pop("1 process, 1 thread")
    print("largest |difference| from one process with 1 thread (hypernetwork / supernet parameters)")
    print(f"{'epoch':>5}  " + "  ".join(f"{name:>28}" for name in states))
    for e in range(args.epochs):
        cells = [
            f"{largest(reference[e]['hypernet'], s[e]['hypernet']):.1e} / "
            f"{largest(reference[e]['supernet'], s[e]['supernet']):.1e}"
            for s in states.values()
        ]
        print(f"{e + 1:>5}  " + "  ".join(f"{c:>28}" for c in cells))


if __name__ == "__main__":
    main()
