"""The hardware MetaPredictor: latency of any NB201 architecture on any device, from the device's embedding.

Architecture branch: HELP's GCN over the graph of :func:`modnas.spaces.nb201.graph_encoding` (4 graph
convolutions ``H <- ReLU(A (H W) + b)``, read out at the global node), plus a *wide* path that is linear in the op
one-hot with device-dependent coefficients (analytical accelerator models such as Eyeriss and FPGA are exactly
additive in the ops, and the wide path learns such devices fast). Device branch: an MLP on the 10-d embedding.
Head: an MLP on both.

Targets live in a *reference-normalised* space: ``y = (latency - min_ref) / (max_ref - min_ref)``, where min/max
are over the device's own 10 reference latencies. Any device, including one never seen, has these numbers (they
define its embedding), so predictions convert back to milliseconds for every device, and devices at ~1 ms and at
~50 ms are learned on the same scale.

Everything is batched and differentiable with respect to the ``(.., 6, 5)`` one-hot, so a search can
back-propagate latency into architecture parameters.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from modnas.errors import ModnasError
from modnas.io import atomic_torch_save
from modnas.spaces.nb201.encoding import NUM_EDGES, NUM_NODE_FEATURES, NUM_OPS, graph_encoding

#: The checkpoint shipped in ``modnas/hardware/data`` (see its README for the command that regenerates it).
DEFAULT_CHECKPOINT = "nb201_latency_predictor.pt"


@dataclass(frozen=True)
class PredictorConfig:
    """Sizes of the MetaPredictor (the defaults follow HELP / MODNAS: GCN width 100, head width 200)."""

    gcn_hidden: int = 100
    gcn_layers: int = 4
    device_hidden: int = 100
    head_hidden: int = 256
    embedding_dim: int = 10
    wide: bool = True
    flat_hidden: int = 512  # width of an MLP on the flat one-hot beside the GCN (0 disables it)

    def to_dict(self) -> dict:
        return asdict(self)


class GraphConv(nn.Module):
    """``H <- ReLU(A (H W) + b)`` with HELP's initialisation."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_in, c_out).uniform_(-0.05, 0.05))
        bound = 1.0 / math.sqrt(c_out)
        self.bias = nn.Parameter(torch.empty(c_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        return torch.relu(adj @ (x @ self.weight) + self.bias)


class MetaPredictor(nn.Module):
    """Device-conditioned predictor of reference-normalised latency (see the module docstring)."""

    def __init__(self, config: PredictorConfig | None = None) -> None:
        super().__init__()
        self.config = config or PredictorConfig()
        c = self.config
        dims = [NUM_NODE_FEATURES] + [c.gcn_hidden] * c.gcn_layers
        self.gcn = nn.ModuleList(GraphConv(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.device_net = nn.Sequential(
            nn.Linear(c.embedding_dim, c.device_hidden), nn.ReLU(), nn.Linear(c.device_hidden, c.device_hidden), nn.ReLU()
        )
        # The first head layer is split into an architecture part and a device part so that it is applied to B
        # architectures and D devices separately, not to all B x D pairs.
        arch_dim = c.gcn_hidden
        if c.flat_hidden:
            self.flat_net = nn.Sequential(
                nn.Linear(NUM_EDGES * NUM_OPS, c.flat_hidden), nn.ReLU(), nn.Linear(c.flat_hidden, c.flat_hidden), nn.ReLU()
            )
            arch_dim += c.flat_hidden
        self.head_arch = nn.Linear(arch_dim, c.head_hidden)
        self.head_device = nn.Linear(c.device_hidden, c.head_hidden, bias=False)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(c.head_hidden, c.head_hidden), nn.ReLU(), nn.Linear(c.head_hidden, 1))
        if c.wide:
            self.wide_net = nn.Linear(c.device_hidden, NUM_EDGES * NUM_OPS + 1)
            nn.init.zeros_(self.wide_net.weight)
            nn.init.zeros_(self.wide_net.bias)

    def arch_features(self, onehot: torch.Tensor) -> torch.Tensor:
        """GCN read-out at the global node (and the flat one-hot MLP), ``(B, features)``."""
        x, adj = graph_encoding(onehot)
        for layer in self.gcn:
            x = layer(x, adj)
        if not self.config.flat_hidden:
            return x[..., -1, :]
        return torch.cat([x[..., -1, :], self.flat_net(onehot.flatten(-2))], dim=-1)

    def forward(self, onehot: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """Predictions for every (architecture, device) pair: one-hot ``(B, 6, 5)``, embeddings ``(D, 10)`` -> ``(B, D)``."""
        if onehot.dim() != 3 or embedding.dim() != 2:
            raise ModnasError(f"expected one-hot (B, 6, 5) and embeddings (D, 10), got {tuple(onehot.shape)}, {tuple(embedding.shape)}")
        device = self.device_net(embedding)  # (D, H)
        hidden = self.head_arch(self.arch_features(onehot))[:, None, :] + self.head_device(device)[None, :, :]
        out = self.head(hidden).squeeze(-1)  # (B, D)
        if self.config.wide:
            coef = self.wide_net(device)  # (D, 31)
            out = out + onehot.reshape(onehot.shape[0], -1) @ coef[:, :-1].T + coef[:, -1]
        return out

    def forward_pairs(self, onehot: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """Predictions for matched pairs: one-hot ``(N, 6, 5)`` with embeddings ``(N, 10)`` -> ``(N,)``."""
        device = self.device_net(embedding)
        hidden = self.head_arch(self.arch_features(onehot)) + self.head_device(device)
        out = self.head(hidden).squeeze(-1)
        if self.config.wide:
            coef = self.wide_net(device)
            out = out + (onehot.reshape(onehot.shape[0], -1) * coef[:, :-1]).sum(-1) + coef[:, -1]
        return out


# -- checkpoints --------------------------------------------------------------------------------------------------

CHECKPOINT_FORMAT = "modnas-metapredictor"
CHECKPOINT_VERSION = 1


def save_predictor(model: MetaPredictor, path: str | Path, metadata: dict | None = None, force: bool = False) -> None:
    """Write a checkpoint atomically (config, weights, metadata); refuses to overwrite unless ``force``."""
    target = Path(path)
    if target.exists() and not force:
        raise ModnasError(f"{target} already exists; pass --force to overwrite it")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metadata": metadata or {},
    }
    atomic_torch_save(payload, target)


def load_predictor(path: str | Path | None = None) -> tuple[MetaPredictor, dict]:
    """Load a checkpoint (default: the one shipped with modnas) -> ``(model in eval mode, metadata)``."""
    if path is None:
        source = resources.files("modnas.hardware").joinpath("data", DEFAULT_CHECKPOINT)
        with resources.as_file(source) as p:
            return _load(Path(p))
    return _load(Path(path))


def _load(path: Path) -> tuple[MetaPredictor, dict]:
    if not path.is_file():
        raise ModnasError(f"predictor checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise ModnasError(f"predictor checkpoint {str(path)!r} is not readable ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModnasError(f"{str(path)!r} is not a modnas predictor checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ModnasError(f"predictor checkpoint {str(path)!r} has version {payload.get('version')}, expected {CHECKPOINT_VERSION}")
    try:
        model = MetaPredictor(PredictorConfig(**payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ModnasError(f"predictor checkpoint {str(path)!r} does not match the model ({str(exc).splitlines()[0]})") from None
    model.eval()
    return model, dict(payload.get("metadata", {}))
