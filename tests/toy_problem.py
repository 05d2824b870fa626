"""A toy conditional search space with a synthetic ground truth and three synthetic devices.

It exists to prove that the search loop, the scorer, the baselines and the CLI know a space only through
:class:`modnas.problem.Problem`: nothing in modnas names it. Decisions: ``depth`` {1, 2, 3}; ``width1`` and
``width2`` {8, 16, 32}, ``width2`` active only when depth >= 2; ``kernel`` {3, 5} (ragged: fewer options than the
others, so one-hots carry a padding column). 42 architectures, so its reference fronts are enumerated.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from modnas.errors import ModnasError, UnknownDeviceError
from modnas.hardware.devices import Device, DeviceRegistry
from modnas.hardware.training import LatencyData
from modnas.problem import EnumeratedReference, GroundTruth, Objective, Problem
from modnas.spaces.base import Decision, DecisionListSpace

WIDTHS = ("8", "16", "32")


class ToySpace(DecisionListSpace):
    name = "toy"
    decisions = (
        Decision("depth", ("1", "2", "3")),
        Decision("width1", WIDTHS),
        Decision("width2", WIDTHS, gate=("depth", ("2", "3"))),
        Decision("kernel", ("3", "5")),
    )

    def enumerate(self) -> np.ndarray:
        grid = np.stack(np.meshgrid(*[np.arange(len(d.options)) for d in self.decisions], indexing="ij"), -1)
        archs = self.canonicalise(grid.reshape(-1, self.num_decisions))
        return np.unique(archs, axis=0)

    def reference_architectures(self) -> tuple[str, ...]:
        return self.keys(self.enumerate()[[0, 7, 15, 23, 31, 41]])

    def extremes(self) -> tuple[str, str]:
        return "depth=1;width1=8;kernel=3", "depth=3;width1=32;width2=32;kernel=5"

    def export_source(self, choice: dict) -> str:
        return EXPORT_TEMPLATE.format(**choice)


EXPORT_TEMPLATE = '''"""Toy network exported by modnas: {arch_str} for {device}."""

from torch import nn

ARCH_STR = "{arch_str}"


def build(num_classes=10, in_channels=3):
    spec = dict(part.split("=") for part in ARCH_STR.split(";"))
    widths = [int(spec["width1"])] + ([int(spec["width2"])] * (int(spec["depth"]) - 1) if "width2" in spec else [])
    kernel, layers, c = int(spec["kernel"]), [], in_channels
    for w in widths:
        layers += [nn.Conv1d(c, w, kernel, padding=kernel // 2), nn.ReLU()]
        c = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(c, num_classes))
'''


def _cost_terms(choices: np.ndarray) -> np.ndarray:
    """Per architecture (compute, depth, kernel) terms of the synthetic hardware models ``(N, 3)``."""
    space = ToySpace()
    active = space.active(choices)
    depth = choices[:, 0] + 1.0
    widths = np.array([8.0, 16.0, 32.0])
    compute = widths[choices[:, 1]] + np.where(active[:, 2], widths[choices[:, 2]], 0.0) * (depth - 1)
    kernel = np.array([3.0, 5.0])[choices[:, 3]]
    return np.stack([compute, depth, kernel], axis=1)


#: device -> (split, weights of (compute, depth, kernel), intercept): a compute-bound, a depth-bound and a
#: kernel-sensitive device, so their fronts differ
DEVICES = {
    "toy_cpu": ("train", (1.0, 2.0, 0.5), 1.0),
    "toy_gpu": ("train", (0.1, 8.0, 0.2), 2.0),
    "toy_npu": ("test", (0.5, 4.0, 3.0), 0.5),
}


class ToyTruth(GroundTruth):
    objectives = {
        "error": Objective("error", "%", "synthetic error", True),
        "latency": Objective("latency", "ms", "synthetic latency"),
        "memory": Objective("memory", "MB", "synthetic memory"),
    }
    error_cutoff = 90.0

    def evaluate(self, keys: Sequence[str], device: str | None, objectives: Sequence[str]) -> np.ndarray:
        space = ToySpace()
        choices = space.parse_many(list(keys))
        terms = _cost_terms(choices)
        columns = []
        for objective in objectives:
            if objective == "error":
                # at least 4.4 % (the largest network: compute 96, depth 3, kernel 5), never the non-positive error no
                # classifier has
                columns.append(45.0 - 0.35 * terms[:, 0] - 2.0 * terms[:, 1] - 1.0 * (terms[:, 2] == 5))
            elif objective == "latency":
                if device not in DEVICES:
                    raise UnknownDeviceError(f"unknown device {device!r}")
                _, weights, intercept = DEVICES[device]
                columns.append(intercept + terms @ np.asarray(weights))
            elif objective == "memory":
                columns.append(MemoryModel().predict(choices))
            else:
                raise ModnasError(f"unknown objective {objective!r}")
        return np.stack(columns, axis=1) if columns else np.zeros((len(choices), 0))


class MemoryModel:
    """Exact, differentiable memory model (device-independent): 0.1 MB per unit of compute plus the kernel."""

    def predict(self, choices: np.ndarray) -> np.ndarray:
        terms = _cost_terms(np.asarray(choices))
        return 0.1 * terms[:, 0] + 0.5 * terms[:, 2]

    def __call__(self, onehot: Tensor) -> Tensor:
        space = ToySpace()
        gate = space.gate_weights(onehot)
        widths = torch.tensor([8.0, 16.0, 32.0], dtype=onehot.dtype)
        depth = (onehot[..., 0, :3] * torch.tensor([1.0, 2.0, 3.0])).sum(-1)
        compute = (onehot[..., 1, :3] * widths).sum(-1) + gate[..., 2] * (onehot[..., 2, :3] * widths).sum(-1) * (
            depth - 1
        )
        kernel = (onehot[..., 3, :2] * torch.tensor([3.0, 5.0])).sum(-1)
        return 0.1 * compute + 0.5 * kernel


def _builtin_devices() -> dict[str, Device]:
    space, truth = ToySpace(), ToyTruth()
    refs = space.reference_architectures()
    return {
        name: Device(
            name=name, split=split, kind="synthetic", description=f"synthetic {name}", source="tests",  # type: ignore[arg-type]
            batch_size=1, reference_latencies=tuple(truth.evaluate(refs, name, ("latency",))[:, 0]),
            has_table=True, reference_keys=refs, space="toy",
        )
        for name, (split, _, _) in DEVICES.items()
    }


class ToyDevices(DeviceRegistry):
    """The toy's synthetic devices plus the user's profiles of the toy space."""

    def __init__(self, load_profiles: bool = True) -> None:
        super().__init__("toy", ToySpace(), builtin=_builtin_devices, load_profiles=load_profiles)


def _latency_data() -> LatencyData:
    """Every toy architecture's latency on every toy device: the MetaPredictor's data."""
    space, truth = ToySpace(), ToyTruth()
    keys = space.keys(space.enumerate())
    return LatencyData(
        keys=keys,
        onehots=space.to_onehot(space.enumerate()),
        reference_rows=np.asarray([keys.index(k) for k in space.reference_architectures()]),
        column=lambda device: truth.evaluate(keys, device, ("latency",))[:, 0],
        devices=make_problem().devices,  # type: ignore[arg-type]
    )


class ToyPredictor(nn.Module):
    """Latency in reference-normalised units, linear in the gated features with embedding-dependent weights;
    fitted on the training devices only."""

    def __init__(self, features: int, embedding: int) -> None:
        super().__init__()
        self.space = ToySpace()
        self.weights = nn.Linear(embedding, features + 1)

    def forward(self, onehot: Tensor, embedding: Tensor) -> Tensor:
        x = self.space.features(onehot)  # (B, F)
        coef = self.weights(embedding)  # (E, F + 1)
        return x @ coef[:, :-1].T + coef[:, -1]

    def forward_pairs(self, onehot: Tensor, embedding: Tensor) -> Tensor:
        coef = self.weights(embedding)
        return (self.space.features(onehot) * coef[:, :-1]).sum(-1) + coef[:, -1]


def _fit_predictor() -> ToyPredictor:
    space, truth, devices = ToySpace(), ToyTruth(), ToyDevices(load_profiles=False)
    keys = space.keys(space.enumerate())
    onehot = space.to_onehot(space.enumerate())
    train = devices.names("train")
    emb = devices.embeddings(train)
    targets = []
    for name in train:
        lat = truth.evaluate(keys, name, ("latency",))[:, 0]
        ref = np.asarray(devices.get(name).reference_latencies)
        targets.append((lat - ref.min()) / (ref.max() - ref.min()))
    y = torch.tensor(np.stack(targets, axis=1), dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ToyPredictor(space.num_features, emb.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        loss = ((model(onehot, emb) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _exact(objective: str, device: str) -> MemoryModel:
    if objective != "memory":
        raise ModnasError(f"the toy space has no exact model of {objective!r}")
    return MemoryModel()


@functools.lru_cache(maxsize=1)
def make_problem() -> Problem:
    space, truth = ToySpace(), ToyTruth()
    return Problem(
        name="toy",
        space=space,
        truth=truth,
        devices=ToyDevices(),
        reference=EnumeratedReference(space, truth),
        predictor_factory=_fit_predictor,
        exact_models=_exact,
        latency_data=_latency_data,
    )
