"""Step time per rank and throughput of a one-shot search on 1 and more processes (torchrun, gloo on the CPU).

    python benchmarks/bench_ddp.py                          # 1 process x 1 thread, 1 x 2 threads, 2 x 1 thread
    python benchmarks/bench_ddp.py --layouts 1x1 2x1 4x1    # processes x threads each
    python benchmarks/bench_ddp.py --weight-split batch     # the data-parallel split of the weight batch
    python benchmarks/bench_ddp.py --device cuda --layouts 1x1 2x1   # NCCL on as many GPUs as processes

Each layout is a ``torchrun --standalone`` launch of this script in worker mode: every rank builds the one-shot
search of the configuration below (NB201 supernet on digits, 13 training devices, ``--batch`` images per step,
hypernetwork phase from the first step), takes ``--warmup`` untimed steps and times ``--steps`` steps; rank 0 prints
one JSON line per layout with each rank's median step time. Throughput is the weight-batch images per second of
the slowest rank. Wall-clock numbers: run on an otherwise idle machine and say which one (the JSON names it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch


def settings(args: argparse.Namespace) -> dict:
    return {
        "mode": "oneshot",
        "epochs": 1,
        "seed": 0,
        "oneshot.dataset": "digits",
        "oneshot.batch_size": args.batch,
        "oneshot.C": args.C,
        "oneshot.N": args.N,
        "oneshot.warmup_epochs": 0,
        "oneshot.device": args.device,
        "oneshot.weight_split": args.weight_split,
    }


def worker(args: argparse.Namespace) -> None:
    import torch.distributed as dist

    from modnas import distributed
    from modnas.config import load_config
    from modnas.search.oneshot import OneShotSearch

    torch.set_num_threads(args.threads)
    config = load_config(None, settings(args))
    ranks = distributed.setup(args.device)
    loop = OneShotSearch(config, ranks=ranks)
    if loop.epoch_length() < args.warmup + args.steps:
        raise SystemExit(f"only {loop.epoch_length()} steps in an epoch; lower --steps or --batch")
    cuda = loop.device.type == "cuda"
    for _ in range(args.warmup):
        loop.step()
    times = []
    for _ in range(args.steps):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        loop.step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    per_rank = [median]
    if ranks.active:
        gathered: list = [None] * ranks.world_size
        dist.all_gather_object(gathered, median)
        per_rank = [float(t) for t in gathered]
    if ranks.is_main:
        slowest = max(per_rank)
        print(json.dumps({
            "processes": ranks.world_size,
            "threads_per_process": args.threads,
            "device": str(loop.device) + (f" ({torch.cuda.get_device_name()})" if cuda else ""),
            "backend": dist.get_backend() if ranks.active else "none (one process)",
            "weight_split": loop.weight_split() if ranks.active else "none (one process)",
            "step_seconds_per_rank": [round(t, 4) for t in per_rank],
            "images_per_second": round(args.batch / slowest, 1),
            "training_devices": len(loop.train_devices),
            "batch": args.batch,
            "steps_timed": args.steps,
        }), flush=True)
    distributed.teardown()


def launch(args: argparse.Namespace) -> None:
    rows = []
    for layout in args.layouts:
        procs, threads = (int(v) for v in layout.split("x"))
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
            str(Path(__file__).resolve()), "--worker", "--threads", str(threads), "--steps", str(args.steps),
            "--warmup", str(args.warmup), "--batch", str(args.batch), "--C", str(args.C), "--N", str(args.N),
            "--device", args.device, "--weight-split", args.weight_split,
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"layout {layout} failed:\n{done.stderr[-2000:]}")
        row = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = rows[0]["images_per_second"]
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"weight split {args.weight_split}")
    print(f"{'processes x threads':>20} {'step s (per rank)':>24} {'images/s':>9} {'vs first':>8}")
    for row in rows:
        steps = ", ".join(f"{t:.3f}" for t in row["step_seconds_per_rank"])
        print(f"{row['processes']:>10} x {row['threads_per_process']:<7} {steps:>24} {row['images_per_second']:>9.1f} "
              f"{row['images_per_second'] / base:>7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", nargs="+", default=["1x1", "1x2", "2x1"], help="PROCESSESxTHREADS each")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--C", type=int, default=8)
    parser.add_argument("--N", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--weight-split", default="auto", choices=["auto", "batch", "devices"])
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
    else:
        launch(args)


if __name__ == "__main__":
    main()
