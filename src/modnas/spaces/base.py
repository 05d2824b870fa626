"""The interface every search space implements.

The search loop, the hardware predictors and the scorer only talk to a space through this interface, so adding a
space (e.g. MobileNetV3 / Once-for-All) means adding a package under ``modnas/spaces/`` and its data module, not
editing the loop. An architecture is represented in three interchangeable ways:

* a human-readable string (what users read, write and export),
* a vector of choice indices, one per decision (``num_decisions`` decisions with ``num_choices`` options each),
* a one-hot tensor of shape ``(..., num_decisions, num_choices)`` (what samplers produce and gradients flow through).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


class SearchSpace(ABC):
    """A discrete architecture space with encodings, sampling, networks and (optionally) tabular truth."""

    #: Short name used in configs and run directories.
    name: str
    #: Number of categorical decisions (NB201: 6 edges).
    num_decisions: int
    #: Options per decision (NB201: 5 ops). Spaces with ragged choices pad and mask.
    num_choices: int
    #: Names of the options in one-hot column order.
    choice_names: tuple[str, ...]

    # -- encodings -----------------------------------------------------------------------------------------------
    @abstractmethod
    def parse(self, arch: str) -> np.ndarray:
        """Architecture string -> choice indices ``(num_decisions,)``; raises ModnasError if malformed."""

    @abstractmethod
    def to_string(self, indices: Sequence[int] | np.ndarray) -> str:
        """Choice indices -> canonical architecture string."""

    def to_onehot(self, indices: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Choice indices ``(..., num_decisions)`` -> one-hot ``(..., num_decisions, num_choices)``."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return nn.functional.one_hot(idx, self.num_choices).to(dtype)

    def from_onehot(self, onehot: torch.Tensor) -> np.ndarray:
        """One-hot (or logits) ``(..., num_decisions, num_choices)`` -> choice indices by argmax."""
        return onehot.detach().argmax(dim=-1).cpu().numpy()

    @abstractmethod
    def graph_encoding(self, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched, differentiable graph encoding ``(node_features, adjacency)`` for hardware predictors."""

    # -- sampling and networks -----------------------------------------------------------------------------------
    @abstractmethod
    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` architectures drawn uniformly, as choice indices ``(n, num_decisions)``."""

    @abstractmethod
    def build_network(self, arch: str | Sequence[int] | np.ndarray, **kwargs: object) -> nn.Module:
        """A standalone, trainable network of one architecture."""

    # -- tabular truth (only for tabular benchmark spaces) -------------------------------------------------------
    @property
    def num_archs(self) -> int | None:
        """Size of the space when it is enumerable and tabulated, else ``None``."""
        return None
