"""The hardware MetaPredictor: latency of any architecture of a space on any device, from the device's embedding.

Architecture branch: where the space defines a cell graph (:meth:`~modnas.spaces.base.SearchSpace.graph_encoding`,
e.g. NB201), HELP's GCN over it (4 graph convolutions ``H <- ReLU(A (H W) + b)``, read out at the global node);
an MLP on the flat one-hot beside it; and a *wide* path that is linear in the one-hot with device-dependent
coefficients (analytical accelerator models such as Eyeriss and FPGA are exactly additive in the ops, and the wide
path learns such devices fast). Device branch: an MLP on the embedding. Head: an MLP on both.

Targets live in a *reference-normalised* space: ``y = (latency - min_ref) / (max_ref - min_ref)``, where min/max
are over the device's own reference latencies. Any device, including one never seen, has these numbers (they
define its embedding), so predictions convert back to milliseconds for every device, and devices at ~1 ms and at
~50 ms are learned on the same scale.

Everything is batched and differentiable with respect to the ``(.., decisions, options)`` one-hot, so a search can
back-propagate latency into architecture parameters. A checkpoint names its space (``config.space``; checkpoints
written before spaces existed are NB201's).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from modnas.errors import ModnasError
from modnas.io import atomic_torch_save

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from modnas.spaces.base import SearchSpace


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
    #: the search space whose one-hots the predictor reads
    space: str = "nb201"

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

    def __init__(self, config: PredictorConfig | None = None, space: SearchSpace | None = None) -> None:
        super().__init__()
        self.config = config or PredictorConfig()
        c = self.config
        if space is None:
            from modnas.spaces import get_space

            space = get_space(c.space)
        self.space = space
        self.input_shape = (space.num_decisions, space.max_options)
        flat_inputs = space.num_decisions * space.max_options
        # without a cell graph the architecture branch is the flat MLP alone
        self.use_graph = bool(space.graph_node_features and c.gcn_layers)
        if not self.use_graph and not c.flat_hidden:
            raise ModnasError(f"search space {c.space!r} has no cell graph: the predictor needs flat_hidden > 0")
        dims = [space.graph_node_features] + [c.gcn_hidden] * c.gcn_layers if self.use_graph else []
        self.gcn = nn.ModuleList(GraphConv(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.device_net = nn.Sequential(
            nn.Linear(c.embedding_dim, c.device_hidden), nn.ReLU(), nn.Linear(c.device_hidden, c.device_hidden), nn.ReLU()
        )
        # The first head layer is split into an architecture part and a device part so that it is applied to B
        # architectures and D devices separately, not to all B x D pairs.
        arch_dim = c.gcn_hidden if self.use_graph else 0
        if c.flat_hidden:
            self.flat_net = nn.Sequential(
                nn.Linear(flat_inputs, c.flat_hidden), nn.ReLU(), nn.Linear(c.flat_hidden, c.flat_hidden), nn.ReLU()
            )
            arch_dim += c.flat_hidden
        self.head_arch = nn.Linear(arch_dim, c.head_hidden)
        self.head_device = nn.Linear(c.device_hidden, c.head_hidden, bias=False)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(c.head_hidden, c.head_hidden), nn.ReLU(), nn.Linear(c.head_hidden, 1))
        if c.wide:
            self.wide_net = nn.Linear(c.device_hidden, flat_inputs + 1)
            nn.init.zeros_(self.wide_net.weight)
            nn.init.zeros_(self.wide_net.bias)

    def arch_features(self, onehot: torch.Tensor) -> torch.Tensor:
        """GCN read-out at the global node (where the space has a cell graph) and the flat one-hot MLP,
        ``(B, features)``."""
        parts = []
        if self.use_graph:
            x, adj = self.space.graph_encoding(onehot)
            for layer in self.gcn:
                x = layer(x, adj)
            parts.append(x[..., -1, :])
        if self.config.flat_hidden:
            parts.append(self.flat_net(onehot.flatten(-2)))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def forward(self, onehot: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """Predictions for every (architecture, device) pair: one-hot ``(B, decisions, options)``, embeddings
        ``(D, k)`` -> ``(B, D)``."""
        if onehot.dim() != 3 or embedding.dim() != 2 or tuple(onehot.shape[1:]) != self.input_shape:
            d, o = self.input_shape
            raise ModnasError(
                f"expected one-hot (B, {d}, {o}) and embeddings (D, {self.config.embedding_dim}), "
                f"got {tuple(onehot.shape)}, {tuple(embedding.shape)}"
            )
        device = self.device_net(embedding)  # (D, H)
        hidden = self.head_arch(self.arch_features(onehot))[:, None, :] + self.head_device(device)[None, :, :]
        out = self.head(hidden).squeeze(-1)  # (B, D)
        if self.config.wide:
            coef = self.wide_net(device)  # (D, decisions * options + 1)
            out = out + onehot.reshape(onehot.shape[0], -1) @ coef[:, :-1].T + coef[:, -1]
        return out

    def forward_pairs(self, onehot: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """Predictions for matched pairs: one-hot ``(N, decisions, options)`` with embeddings ``(N, k)`` -> ``(N,)``."""
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


def save_predictor(model: nn.Module, path: str | Path, metadata: dict | None = None, force: bool = False) -> None:
    """Write a checkpoint atomically (config, weights, metadata); refuses to overwrite unless ``force``."""
    target = Path(path)
    if target.exists() and not force:
        raise ModnasError(f"{target} already exists; pass --force to overwrite it")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metadata": {"space": model.config.space, **(metadata or {})},
    }
    atomic_torch_save(payload, target)


def new_predictor(config: dict) -> nn.Module:
    """An untrained predictor for a checkpoint's ``config``: a :class:`MetaPredictor`, or the model of a space
    whose problem builds its own (``extras["predictor_model"]``; OFA: HELP's latency net)."""
    from modnas.problem import get_problem

    try:
        build = get_problem(config.get("space", "nb201")).extras.get("predictor_model")
    except ModnasError:  # a space loaded by module path, not by its name: no problem-specific model
        build = None
    return build(config) if build is not None else MetaPredictor(PredictorConfig(**config))


def load_predictor(path: str | Path | Traversable | None = None, space: str = "nb201") -> tuple[nn.Module, dict]:
    """Load a checkpoint -> ``(model in eval mode, metadata)``; without ``path``, the one shipped with ``space``.

    A checkpoint of another space than ``space`` is refused (its one-hots would not fit).
    """
    from importlib import resources

    if path is None:
        from modnas.problem import get_problem

        path = get_problem(space).extras.get("predictor_checkpoint")
        if path is None:
            raise ModnasError(f"search space {space!r} ships no hardware predictor checkpoint")
    if not isinstance(path, (str, Path)):
        with resources.as_file(path) as p:
            return _load(Path(p), space)
    return _load(Path(path), space)


def _load(path: Path, space: str) -> tuple[nn.Module, dict]:
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
    config = dict(payload.get("config") or {})
    config.setdefault("space", "nb201")  # written before checkpoints named their space
    if config["space"] != space:
        raise ModnasError(f"predictor checkpoint {str(path)!r} is for search space {config['space']!r}, not {space!r}")
    try:
        model = new_predictor(config)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ModnasError(f"predictor checkpoint {str(path)!r} does not match the model ({str(exc).splitlines()[0]})") from None
    model.eval()
    return model, dict(payload.get("metadata", {}))
