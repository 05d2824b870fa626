"""How much of a device's measured latency can any predictor learn? A held-out check per device.

For each named device, an MLP on the flat op one-hot (2 hidden layers of 512) is fitted on a random 12,000 of the
15,625 NB201 architectures (3,000 Adam steps, batch 512, cosine schedule) and asked to rank the other 3,625. If
latency were a smooth function of the ops, held-out Spearman would match the in-sample one; a gap means the
table carries per-architecture structure (measurement noise or effects the ops do not explain) that no predictor
generalises to, and that only a measurement knows. This is why the front of a search compares by measured latency
where a device has it (``front_latency: measured``). About 25 s per device on 2 CPU cores.

    python benchmarks/latency_learnability.py silver_4114 essential_ph_1 gold_6240 pixel3 1080ti_256
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from modnas.spaces.nb201.devices import all_onehots
from modnas.tables.nb201 import NUM_ARCHS, nb201_tables


def held_out_spearman(device: str, seed: int = 0, train_size: int = 12000, steps: int = 3000) -> tuple[float, float]:
    """(in-sample, held-out) Spearman of a per-device MLP fitted on ``train_size`` random architectures."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = all_onehots().flatten(1)
    latency = nb201_tables.full_column("latency", device)
    y = torch.tensor((latency - latency.mean()) / latency.std(), dtype=torch.float32)
    order = rng.permutation(NUM_ARCHS)
    train, held_out = order[:train_size], order[train_size:]
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(),
        torch.nn.Linear(512, 1),
    )
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    for _ in range(steps):
        batch = torch.from_numpy(rng.choice(train, 512))
        loss = torch.nn.functional.mse_loss(net(x[batch])[:, 0], y[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    with torch.no_grad():
        predicted = net(x)[:, 0].numpy()
    return float(spearmanr(predicted[train], latency[train])[0]), float(spearmanr(predicted[held_out], latency[held_out])[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("devices", nargs="+", help="devices with a bundled latency table")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'device':>16} {'in-sample':>9} {'held-out':>8} {'seconds':>7}")
    for device in args.devices:
        start = time.perf_counter()
        inside, outside = held_out_spearman(device, args.seed)
        print(f"{device:>16} {inside:9.4f} {outside:8.4f} {time.perf_counter() - start:7.0f}")


if __name__ == "__main__":
    main()
