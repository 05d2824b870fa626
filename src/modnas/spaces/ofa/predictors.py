"""The two published OFA predictors shipped in ``data/``, as differentiable torch modules.

* :class:`AccuracyPredictor`: the OFA authors' ImageNet top-1 predictor (``ofa_acc_predictor_ofa_tutorial.npz``;
  OFA tutorial, MIT code; weights from ``han-cai/files``). An MLP 128-400-400-400-1 on
  :func:`~modnas.spaces.ofa.encoding.accuracy_features`; it predicts the top-1 *fraction* of a w1.2 subnet with
  inherited weights on a 10k-image hold-out split of ImageNet *train*. It was fitted on resolutions 160-224 only:
  below 160 its first-layer weights are still at their random initialisation, so its values there mean nothing.
* :class:`HelpLatencyNet`: MODNAS's hardware-conditioned OFA latency predictor
  (``ofa_latency_predictor_modnas.npz``, HELP's ``Net``): ``y = fc5(relu(fc4(relu(fc3([a, b])))))`` with
  ``a = relu(fc2(relu(fc1(x))))`` on the 160-d encoding and ``b = relu(fc_hw2(relu(fc_hw1(h))))`` on the 10-d
  device embedding; latency in ms (trained on raw ms, so its scale on an unseen device can be off: on the
  held-out ``titan_rtx_64`` it predicts about 1.7x too low while ranking at Spearman 0.999).

Both reproduce the per-architecture values of the data's test vectors (``tests/spaces/ofa``).
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import torch
from torch import Tensor, nn

from modnas.errors import ModnasError
from modnas.spaces.ofa.encoding import ACC_DIM, HELP_DIM

DATA = resources.files("modnas.spaces.ofa").joinpath("data")


def _arrays(name: str) -> dict[str, np.ndarray]:
    with resources.as_file(DATA.joinpath(name)) as path:
        if not path.is_file():
            raise ModnasError(f"OFA data file {name} is missing from the installed package")
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


class AccuracyPredictor(nn.Module):
    """OFA's top-1 accuracy predictor: 128-d encodings ``(..., 128)`` -> top-1 fraction ``(...)``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(ACC_DIM, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(),
            nn.Linear(400, 1),
        )  # fmt: skip
        weights = _arrays("ofa_acc_predictor_ofa_tutorial.npz")
        self.net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
        self.requires_grad_(False)
        self.eval()

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features).squeeze(-1)


class HelpLatencyNet(nn.Module):
    """MODNAS's OFA latency predictor: 160-d encodings ``(N, 160)`` and embeddings ``(N, 10)`` -> ms ``(N,)``."""

    def __init__(self, modnas_weights: bool = True) -> None:
        """``modnas_weights=False``: PyTorch's default initialisation (from the global generator), for training."""
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(HELP_DIM, 100), nn.Linear(100, 100)
        self.fc_hw1, self.fc_hw2 = nn.Linear(10, 100), nn.Linear(100, 100)
        self.fc3, self.fc4, self.fc5 = nn.Linear(200, 200), nn.Linear(200, 200), nn.Linear(200, 1)
        if modnas_weights:
            arrays = _arrays("ofa_latency_predictor_modnas.npz")
            self.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("fc")})
        self.requires_grad_(False)
        self.eval()

    def forward(self, features: Tensor, embedding: Tensor) -> Tensor:
        a = torch.relu(self.fc2(torch.relu(self.fc1(features))))
        b = torch.relu(self.fc_hw2(torch.relu(self.fc_hw1(embedding))))
        return self.fc5(torch.relu(self.fc4(torch.relu(self.fc3(torch.cat([a, b], dim=-1)))))).squeeze(-1)


@functools.lru_cache(maxsize=1)
def accuracy_predictor() -> AccuracyPredictor:
    """The shipped accuracy predictor (loaded once)."""
    return AccuracyPredictor()
