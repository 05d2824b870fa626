"""NB201's member of benchmark mode's error-predictor ensemble (see :mod:`modnas.search.error_model`)."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from modnas.config import ErrorPredictorConfig
from modnas.hardware.predictor import GraphConv
from modnas.spaces.nb201.encoding import (
    NUM_EDGES,
    NUM_NODE_FEATURES,
    NUM_OPS,
    NUM_PATH_FEATURES,
    graph_encoding,
    path_encoding,
)


class NB201ErrorMember(nn.Module):
    """One network of the ensemble: GCN read-out at the global node, concatenated with a flat one-hot MLP."""

    def __init__(self, config: ErrorPredictorConfig) -> None:
        super().__init__()
        dims = [NUM_NODE_FEATURES] + [config.gcn_hidden] * config.gcn_layers
        self.gcn = nn.ModuleList(GraphConv(a, b) for a, b in itertools.pairwise(dims))
        width = config.gcn_hidden
        self.flat: nn.Module | None = None
        if config.flat_hidden:
            self.flat = nn.Sequential(nn.Linear(NUM_EDGES * NUM_OPS, config.flat_hidden), nn.ReLU())
            width += config.flat_hidden
        self.head = nn.Sequential(
            nn.Linear(width, config.head_hidden), nn.ReLU(), nn.Linear(config.head_hidden, 1)
        )
        self.path: nn.Module | None = None
        if config.path_hidden:
            h = config.path_hidden
            self.path = nn.Sequential(
                nn.Linear(NUM_PATH_FEATURES + NUM_EDGES * NUM_OPS, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                nn.Linear(h, 1),
            )

    def forward(self, onehot: Tensor) -> Tensor:
        x, adj = graph_encoding(onehot)
        for layer in self.gcn:
            x = layer(x, adj)
        features = x[..., -1, :]
        if self.flat is not None:
            features = torch.cat([features, self.flat(onehot.flatten(-2))], dim=-1)
        out = self.head(features).squeeze(-1)
        if self.path is not None:  # a residual model on path features, summed with the graph model's output
            out = out + self.path(torch.cat([path_encoding(onehot), onehot.flatten(-2)], dim=-1)).squeeze(-1)
        return out
