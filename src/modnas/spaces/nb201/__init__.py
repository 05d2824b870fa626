"""The NAS-Bench-201 cell search space (15,625 architectures, 6 edges x 5 ops)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from modnas.spaces.base import SearchSpace
from modnas.spaces.nb201.encoding import (
    EDGES,
    HELP_ADJACENCY,
    HELP_NODE_TYPES,
    NUM_EDGES,
    NUM_OPS,
    OPS,
    ArchLike,
    as_indices,
    check_indices,
    from_index,
    from_onehot,
    graph_encoding,
    index_to_string,
    parse,
    sample,
    to_index,
    to_onehot,
    to_string,
)
from modnas.spaces.nb201.network import NB201Network, build_network, count_parameters
from modnas.tables.nb201 import NUM_ARCHS


class NB201Space(SearchSpace):
    """NAS-Bench-201 through the generic :class:`~modnas.spaces.base.SearchSpace` interface."""

    name = "nb201"
    num_decisions = NUM_EDGES
    num_choices = NUM_OPS
    choice_names = OPS

    def parse(self, arch: str) -> np.ndarray:
        return parse(arch)

    def to_string(self, indices: Sequence[int] | np.ndarray) -> str:
        return to_string(indices)

    def graph_encoding(self, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return graph_encoding(onehot)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return sample(n, rng)

    def build_network(self, arch: str | Sequence[int] | np.ndarray, **kwargs: object) -> nn.Module:
        return build_network(arch, **kwargs)  # type: ignore[arg-type]

    @property
    def num_archs(self) -> int:
        return NUM_ARCHS

    def to_index(self, arch: ArchLike | Sequence[str]) -> np.ndarray:
        """Canonical NB201 index (the key of every table)."""
        return to_index(arch)

    def from_index(self, index: int | np.ndarray) -> np.ndarray:
        return from_index(index)


__all__ = [
    "EDGES",
    "HELP_ADJACENCY",
    "HELP_NODE_TYPES",
    "NB201Network",
    "NB201Space",
    "NUM_EDGES",
    "NUM_OPS",
    "OPS",
    "as_indices",
    "build_network",
    "check_indices",
    "count_parameters",
    "from_index",
    "from_onehot",
    "graph_encoding",
    "index_to_string",
    "parse",
    "sample",
    "to_index",
    "to_onehot",
    "to_string",
]
