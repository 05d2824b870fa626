"""OFA devices and the latency predictor a search uses on them.

Devices: HELP's 12 GPU settings (4 GPUs x batch 1 / 32 / 64; 11 train the hypernetwork, ``titan_rtx_64`` is
zero-shot as in MODNAS) and the Samsung Note10 phone (zero-shot; a phone is the harder transfer). A GPU setting's
embedding is HELP's: the measured latencies of the 10 reference architectures, min-max normalised. The Note10
look-up table covers only resolutions 160-224, while HELP's references include 132-152, so its embedding is fitted
(:mod:`modnas.hardware.embedding_fit`) to the table's latencies of :data:`NOTE10_MEASURED` seeded random
architectures, as for a user's phone measured on any architectures.

Predictor: MODNAS's hardware-conditioned latency net (:class:`~modnas.spaces.ofa.predictors.HelpLatencyNet`)
predicts milliseconds, and on its held-out device its scale is about 1.7x off while its ranking is right.
:class:`OFALatencyPredictor` therefore reports it in each device's own reference-normalised units: the prediction
minus the device's smallest predicted reference latency, divided by the span of its predicted reference
latencies. The scale drops out, and the output is in the units every modnas predictor uses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from modnas.hardware.devices import Device, DeviceRegistry
from modnas.spaces.ofa.encoding import help_features
from modnas.spaces.ofa.latency import GPU_SETTINGS, measured_table
from modnas.spaces.ofa.predictors import HelpLatencyNet
from modnas.spaces.ofa.space import REFERENCE_KEYS, OFASpace

#: The zero-shot test devices; the other GPU settings train.
TEST_DEVICES: tuple[str, ...] = ("titan_rtx_64", "note10")
TRAIN_DEVICES: tuple[str, ...] = tuple(s for s in GPU_SETTINGS if s not in TEST_DEVICES)
#: Architectures whose Note10 table latency defines the phone's fitted embedding (seeded, table resolutions).
NOTE10_MEASURED = 20
_GPUS = {"2080ti": "NVIDIA RTX 2080 Ti", "titan_rtx": "NVIDIA Titan RTX", "titan_xp": "NVIDIA Titan Xp",
         "v100": "NVIDIA V100"}  # fmt: skip


@dataclass(frozen=True)
class OFAPredictorConfig:
    """What a checkpoint of an OFA latency net records about it (the net's shape is fixed: HELP's ``Net``)."""

    space: str = "ofa"

    def to_dict(self) -> dict:
        return asdict(self)


def predictor_from_config(config: dict) -> OFALatencyPredictor:
    """An OFA latency net with PyTorch's initialisation (global generator), to train or to load a checkpoint into;
    the problem's ``predictor_model`` hook (:func:`modnas.hardware.predictor.load_predictor`)."""
    from modnas.problem import get_problem

    return OFALatencyPredictor(get_problem("ofa").space, HelpLatencyNet(modnas_weights=False))


class OFALatencyPredictor(nn.Module):
    """MODNAS's OFA latency net in reference-normalised units (see the module docstring), differentiable in the
    one-hot: ``forward(onehot (B, D, O), embeddings (E, 10)) -> (B, E)``.

    One-hots are of ``space`` (the search's, perhaps with fewer resolutions) or of the full OFA space
    (:attr:`measurement_space`: devices are measured at any resolution); their width tells which.
    """

    def __init__(self, space: OFASpace, net: HelpLatencyNet | None = None) -> None:
        super().__init__()
        self.space = space
        self.net = net if net is not None else HelpLatencyNet()
        self.config = OFAPredictorConfig()
        full = OFASpace()  # the references include resolutions a restricted space leaves out
        #: the space of measured architectures (HELP's references include r 132-152)
        self.measurement_space = full
        refs = full.to_onehot(np.stack([full.parse(k) for k in REFERENCE_KEYS]))
        self.register_buffer("reference_features", help_features(full, refs))
        self.requires_grad_(False)
        self.eval()

    def _milliseconds(self, features: Tensor, embedding: Tensor) -> Tensor:
        """``(B, 160)`` x ``(E, 10)`` -> ``(B, E)``; fc3 split into its architecture and device halves."""
        n = self.net
        a = torch.relu(n.fc2(torch.relu(n.fc1(features))))
        b = torch.relu(n.fc_hw2(torch.relu(n.fc_hw1(embedding))))
        w_arch, w_dev = n.fc3.weight[:, :100], n.fc3.weight[:, 100:]
        hidden = (a @ w_arch.T)[:, None, :] + (b @ w_dev.T)[None, :, :] + n.fc3.bias
        return n.fc5(torch.relu(n.fc4(torch.relu(hidden)))).squeeze(-1)

    def _normalise(self, ms: Tensor, embedding: Tensor) -> Tensor:
        ref = self._milliseconds(self.reference_features, embedding)  # (10, E)
        low = ref.min(dim=0).values
        return (ms - low) / (ref.max(dim=0).values - low).clamp_min(1e-6)

    def _features(self, onehot: Tensor) -> Tensor:
        width = onehot.shape[-1]
        space = self.space if width == self.space.max_options else self.measurement_space
        return help_features(space, onehot)

    def forward(self, onehot: Tensor, embedding: Tensor) -> Tensor:
        return self._normalise(self._milliseconds(self._features(onehot), embedding), embedding)

    def forward_pairs(self, onehot: Tensor, embedding: Tensor) -> Tensor:
        """Matched pairs: one-hots ``(N, D, O)`` with embeddings ``(N, 10)`` -> ``(N,)``."""
        return self._normalise(self.net(self._features(onehot), embedding), embedding)


def note10_measurements(count: int = NOTE10_MEASURED, seed: int = 0) -> dict[str, float]:
    """Note10 latency (ms, exact table values) of ``count`` seeded random architectures at table resolutions."""
    from modnas.spaces.ofa.note10 import NOTE10_RESOLUTIONS, note10_latency

    space = OFASpace(NOTE10_RESOLUTIONS)
    archs = [space.arch(i) for i in space.sample(count, np.random.default_rng(seed))]
    return {a.key: note10_latency(a) for a in archs}


class OFADevices(DeviceRegistry):
    """HELP's 12 OFA GPU settings and the Note10 phone, plus the user's OFA profiles."""

    def __init__(self, space: OFASpace | None = None, space_name: str = "ofa", load_profiles: bool = True) -> None:
        # the full space: devices are measured on HELP's references, some of them at resolutions below 160
        space = space or OFASpace()
        super().__init__(
            space_name, space, builtin=self._builtin_devices,
            splits={"train": TRAIN_DEVICES, "test": TEST_DEVICES}, load_profiles=load_profiles,
        )  # fmt: skip

    def _builtin_devices(self) -> dict[str, Device]:
        table = measured_table().set_index("key")
        devices: dict[str, Device] = {}
        for setting in GPU_SETTINGS:
            gpu, _, batch = setting.rpartition("_")
            devices[setting] = Device(
                name=setting, split="test" if setting in TEST_DEVICES else "train", kind="gpu",
                description=f"{_GPUS[gpu]}, batch {batch}", source="HELP", batch_size=int(batch),
                reference_latencies=tuple(float(table.loc[k, f"lat_{setting}"]) for k in REFERENCE_KEYS),
                has_table=True, reference_keys=REFERENCE_KEYS, space=self.space_name,
            )  # fmt: skip
        self._builtin = devices  # the GPU settings start the Note10 fit below
        from modnas.hardware.embedding_fit import fit_embedding

        measured = note10_measurements()
        fit = fit_embedding(measured, self, predictor=OFALatencyPredictor(self.space))
        devices["note10"] = Device(
            name="note10", split="test", kind="mobile", description="Samsung Note10 (OFA look-up table)",
            source="OFA tutorial", batch_size=1, reference_latencies=tuple(fit.reference_latencies),
            has_table=True, extra_latencies=measured, reference_keys=REFERENCE_KEYS,
            references_measured=False, space=self.space_name,
        )  # fmt: skip
        return devices



def latency_data() -> Any:
    """What ``modnas predictor evaluate --space ofa`` scores a predictor on: HELP's 5,000 measured architectures
    (the 10 references among them) in the full OFA space (resolutions 128-224, as the devices were measured), with
    their latency on the 12 GPU settings, and on the Note10 phone where its look-up table covers the resolution
    (160-224 in steps of 16; NaN elsewhere, and left out of the scores); a user's device gives what it measured."""
    from modnas.hardware.training import LatencyData
    from modnas.problem import get_problem
    from modnas.spaces.ofa.arch import OFAArch
    from modnas.spaces.ofa.note10 import NOTE10_RESOLUTIONS, note10_latency

    devices = get_problem("ofa").devices
    table = measured_table()
    space = OFASpace()
    keys = [space.canonical_key(k) for k in table["key"]]
    position = {k: i for i, k in enumerate(keys)}
    archs = [OFAArch.from_key(k) for k in keys]

    def column(device: str) -> np.ndarray:
        if device in GPU_SETTINGS:
            return table[f"lat_{device}"].to_numpy(dtype=np.float64)
        if device == "note10":
            return np.array([note10_latency(a) if a.r in NOTE10_RESOLUTIONS else np.nan for a in archs])
        return devices.known_latencies(devices.get(device), keys)

    return LatencyData(keys=keys, onehots=space.to_onehot(space.parse_many(keys)),
                       reference_rows=np.array([position[space.canonical_key(k)] for k in REFERENCE_KEYS]),
                       column=column, devices=devices)  # fmt: skip
