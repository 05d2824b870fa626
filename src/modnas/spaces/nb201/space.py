"""NB201 through the generic :class:`~modnas.spaces.base.SearchSpace` interface."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from modnas.spaces.base import SearchSpace
from modnas.spaces.nb201 import encoding
from modnas.spaces.nb201.network import build_network
from modnas.tables.nb201 import NUM_ARCHS


class NB201Space(SearchSpace):
    """NAS-Bench-201: 6 edges x 5 ops, 15,625 tabulated architectures."""

    name = "nb201"
    num_decisions = encoding.NUM_EDGES
    num_choices = encoding.NUM_OPS
    choice_names = encoding.OPS

    def parse(self, arch: str) -> np.ndarray:
        return encoding.parse(arch)

    def to_string(self, indices: Sequence[int] | np.ndarray) -> str:
        return encoding.to_string(indices)

    def graph_encoding(self, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return encoding.graph_encoding(onehot)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return encoding.sample(n, rng)

    def build_network(self, arch: str | Sequence[int] | np.ndarray, **kwargs: object) -> nn.Module:
        return build_network(arch, **kwargs)  # type: ignore[arg-type]

    @property
    def num_archs(self) -> int:
        return NUM_ARCHS

    def to_index(self, arch: encoding.ArchLike | Sequence[str]) -> np.ndarray:
        """Canonical NB201 index (the key of every table)."""
        return encoding.to_index(arch)

    def from_index(self, index: int | np.ndarray) -> np.ndarray:
        return encoding.from_index(index)
