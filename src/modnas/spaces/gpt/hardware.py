"""GPT devices: the latency tables modnas measured (:mod:`modnas.spaces.gpt.latency`), as built-in devices.

Each shipped table ``data/latency/<space>/<device>.json`` is one setting (hardware, batch, sequence length, dtype,
threads) with the command, machine and date that produced it and its validation against whole-model timings. A
device's ground-truth latency of an architecture is its table's sum; its embedding is that sum for the space's 10
reference architectures, min-max normalised (HELP's embedding).

:class:`TableModel` is the same sum written over the one-hot: per layer, the product of the embedding, heads, MLP
and bias one-hots picks a block's entry, so the value is exact for a hard one-hot and differentiable in it (the
energy objective of a GPU setting uses it as an exact model, as NB201's energy does).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import numpy as np
import torch
from torch import Tensor

from modnas.errors import ModnasError
from modnas.hardware.devices import Device, DeviceRegistry
from modnas.spaces.gpt.arch import GPT_S, VARIANTS
from modnas.spaces.gpt.latency import LatencyTable
from modnas.spaces.gpt.space import GPTSpace

TABLE_DIR = resources.files("modnas.spaces.gpt").joinpath("data", "latency")

#: the measured settings: device name -> (split, description); a space ships the tables it has (gpt-tiny: the CPU
#: settings only)
DEVICES: dict[str, tuple[str, str]] = {
    "epyc-b1-s128-t1": ("train", "AMD EPYC (2-core VM), batch 1, 128 tokens, fp32, 1 thread"),
    "epyc-b1-s512-t1": ("train", "AMD EPYC (2-core VM), batch 1, 512 tokens, fp32, 1 thread"),
    "epyc-b8-s128-t1": ("train", "AMD EPYC (2-core VM), batch 8, 128 tokens, fp32, 1 thread"),
    "epyc-b1-s128-t2": ("train", "AMD EPYC (2-core VM), batch 1, 128 tokens, fp32, 2 threads"),
    "epyc-b8-s128-t2": ("test", "AMD EPYC (2-core VM), batch 8, 128 tokens, fp32, 2 threads"),
    "epyc-b1-s512-t2": ("train", "AMD EPYC (2-core VM), batch 1, 512 tokens, fp32, 2 threads"),
    "epyc-b32-s128-t1": ("train", "AMD EPYC (2-core VM), batch 32, 128 tokens, fp32, 1 thread"),
    "epyc-b32-s128-t2": ("train", "AMD EPYC (2-core VM), batch 32, 128 tokens, fp32, 2 threads"),
    "h200-b64-s1024-bf16": ("train", "NVIDIA H200, batch 64, 1,024 tokens, bf16"),
    "h200-b64-s1024-fp32": ("test", "NVIDIA H200, batch 64, 1,024 tokens, fp32"),
}


@functools.cache
def load_table(device: str, space: str = "gpt-s") -> LatencyTable:
    """The shipped table of a built-in device of a GPT space."""
    if device not in shipped_devices(space):
        raise ModnasError(f"unknown {space} device {device!r}; built in: {', '.join(shipped_devices(space))}")
    with resources.as_file(TABLE_DIR.joinpath(space, f"{device}.json")) as file:
        table = LatencyTable.load(file)
    if table.space != space:
        raise ModnasError(f"the shipped table {space}/{device}.json is for {table.space}")
    return table


@functools.cache  # the installed files do not change while a process runs; the truth asks on every evaluation
def shipped_devices(space: str = "gpt-s") -> tuple[str, ...]:
    """The built-in devices of a GPT space whose tables are installed, in the order of :data:`DEVICES`."""
    folder = TABLE_DIR.joinpath(space)
    return tuple(d for d in DEVICES if folder.joinpath(f"{d}.json").is_file())


class TableModel:
    """A table's latency (``what="latency"``, ms) or energy (mJ) as an exact function of the one-hot:
    ``__call__(onehot (..., D, O)) -> (...)`` differentiable, ``predict(indices) -> array``."""

    def __init__(self, space: GPTSpace, table: LatencyTable, what: str = "latency") -> None:
        v = space.variant
        values = table.latency_ms if what == "latency" else table.energy_mj
        if not values:
            raise ModnasError(f"the {table.setting.label} table has no {what} values")
        self.space, self.what = space, what
        bias = ("True", "False")
        self.blocks = torch.tensor([[[[values[f"block_{e}_{h}_{r}_{b}"] for b in bias] for r in v.mlp_ratios]
                                     for h in v.heads] for e in v.embeds], dtype=torch.float64)  # (E, H, R, 2)
        self.ends = torch.tensor([[values[f"ends_{e}_{b}"] for b in bias] for e in v.embeds], dtype=torch.float64)
        self.layers = v.max_layers

    def __call__(self, onehot: Tensor) -> Tensor:
        n_e, n_h, n_r = self.blocks.shape[:3]
        blocks, ends = self.blocks.to(onehot), self.ends.to(onehot)
        embed, bias = onehot[..., 0, :n_e], onehot[..., -1, :2]
        gates = self.space.gate_weights(onehot)
        mlp = onehot[..., 2 : 2 + self.layers, :n_r]
        heads = onehot[..., 2 + self.layers : 2 + 2 * self.layers, :n_h]
        # per layer: sum over (e, h, r, b) of embed_e * heads_h * mlp_r * bias_b * table[e, h, r, b]
        per_layer = torch.einsum("...e,...lh,...lr,...b,ehrb->...l", embed, heads, mlp, bias, blocks)
        total = (per_layer * gates[..., 2 : 2 + self.layers]).sum(-1)
        return total + torch.einsum("...e,...b,eb->...", embed, bias, ends)

    def predict(self, indices: np.ndarray) -> np.ndarray:
        idx = np.asarray(indices).reshape(-1, self.space.num_decisions)
        with torch.no_grad():
            return self(self.space.to_onehot(idx, torch.float64)).numpy()


class GPTDevices(DeviceRegistry):
    """The measured GPT-S settings (:data:`DEVICES`) plus the user's GPT-S profiles."""

    def __init__(self, space: GPTSpace | None = None, load_profiles: bool = True) -> None:
        space = space or GPTSpace(GPT_S)
        names = shipped_devices(space.name)
        splits = {s: tuple(d for d in names if DEVICES[d][0] == s) for s in ("train", "test")}
        super().__init__(space.name, space, builtin=self._builtin_devices, splits=splits, load_profiles=load_profiles)

    def _builtin_devices(self) -> dict[str, Device]:
        refs = [self.space._arch_of(k) for k in self.reference_keys]
        out: dict[str, Device] = {}
        for name in shipped_devices(self.space_name):
            split, description = DEVICES[name]
            table = load_table(name, self.space_name)
            out[name] = Device(
                name=name, split=split, kind="gpu" if table.setting.hardware == "cuda" else "cpu",  # type: ignore[arg-type]
                description=description, source="measured by modnas", batch_size=table.setting.batch_size,
                reference_latencies=tuple(float(x) for x in table.predict(refs)), has_table=True,
                energy_metric="energy" if table.energy_mj else None, reference_keys=self.reference_keys,
                space=self.space_name,
            )  # fmt: skip
        return out


def latency_data(space_name: str = "gpt-s", samples: int = 5000, seed: int = 0) -> Any:
    """The MetaPredictor's data: the references plus ``samples`` seeded random architectures, every device's
    table sum for each."""
    from modnas.hardware.training import LatencyData
    from modnas.problem import get_problem

    if space_name not in VARIANTS:
        raise ModnasError(f"unknown GPT space {space_name!r}")
    devices = get_problem(space_name).devices
    space = devices.space
    refs = space.parse_many(list(devices.reference_keys))
    idx = np.concatenate([refs, space.sample(samples, np.random.default_rng(seed))])
    keys = space.keys(idx)
    archs = [space.arch(i) for i in idx]

    @functools.cache
    def column(device: str) -> np.ndarray:
        dev = devices.get(device)
        if dev.latency_table is not None:  # a user's device measured as a table
            return dev.latency_table.predict(archs)
        if dev.has_table:
            return load_table(device, space_name).predict(archs)
        return devices.known_latencies(dev, keys)

    return LatencyData(keys=keys, onehots=space.to_onehot(idx), reference_rows=np.arange(len(refs)),
                       column=column, devices=devices)  # fmt: skip
