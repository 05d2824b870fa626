"""NB201 through the generic :class:`~modnas.spaces.base.SearchSpace` interface.

Keys are NB201 architecture strings (``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``); the enumeration is the bundled
tables' canonical index order, so row ``i`` of :meth:`NB201Space.enumerate` is table index ``i``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from modnas.errors import ModnasError
from modnas.spaces.base import Decision, SearchSpace
from modnas.spaces.nb201 import encoding
from modnas.tables.nb201 import NUM_ARCHS, nb201_tables


@functools.lru_cache(maxsize=1)
def _key_to_index() -> dict[str, int]:
    return {str(s): i for i, s in enumerate(nb201_tables.arch_strings)}


def table_indices(keys: Sequence[str] | np.ndarray) -> np.ndarray:
    """Canonical table indices of architecture strings (canonical spellings by look-up, others parsed)."""
    lookup = _key_to_index()
    out = np.empty(len(keys), dtype=np.int64)
    for k, key in enumerate(keys):
        i = lookup.get(key)
        out[k] = i if i is not None else int(encoding.to_index(str(key)))
    return out


#: Canonical NB201 indices of HELP's 10 reference architectures (HELP ``hardware_embedding_index.pt``).
REFERENCE_ARCH_INDICES: tuple[int, ...] = (11982, 431, 55, 9, 14451, 8636, 9881, 13479, 6196, 1462)


class NB201Space(SearchSpace):
    """NAS-Bench-201: 6 edges x 5 ops, 15,625 tabulated architectures."""

    name = "nb201"
    network_options = ("C", "N")
    supernet_options = ("C", "N", "entangle")
    #: one decision per edge, in the order of :data:`~modnas.spaces.nb201.encoding.EDGES`
    decisions = tuple(Decision(f"edge{e}", encoding.OPS) for e in range(encoding.NUM_EDGES))
    choice_names = encoding.OPS
    graph_node_features = encoding.NUM_NODE_FEATURES

    def parse(self, arch: str) -> np.ndarray:
        return encoding.parse(arch)

    def to_key(self, indices: Sequence[int] | np.ndarray) -> str:
        return encoding.to_string(indices)

    def to_string(self, indices: Sequence[int] | np.ndarray) -> str:
        return encoding.to_string(indices)

    def resolve(self, text: str) -> str:
        """An architecture string, or a canonical table index."""
        text = text.strip()
        if text.isdigit():
            return encoding.index_to_string(int(text))
        return self.canonical_key(text)

    def key_order(self, keys: Sequence[str]) -> list[Any]:
        """Table indices: NB201 architectures are ordered as in the bundled tables."""
        return table_indices(keys).tolist()

    def keys(self, indices: np.ndarray) -> list[str]:
        return [encoding.index_to_string(int(i)) for i in np.atleast_1d(encoding.to_index(np.asarray(indices)))]

    def graph_encoding(self, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return encoding.graph_encoding(onehot)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return encoding.sample(n, rng)

    def enumerate(self) -> np.ndarray:
        return nb201_tables.ops_codes

    def reference_architectures(self) -> tuple[str, ...]:
        return tuple(encoding.index_to_string(i) for i in REFERENCE_ARCH_INDICES)

    def extremes(self) -> tuple[str, str]:
        none, conv = encoding.OPS.index("none"), encoding.OPS.index("nor_conv_3x3")
        return self.to_key([none] * encoding.NUM_EDGES), self.to_key([conv] * encoding.NUM_EDGES)

    def error_model_member(self, config: Any) -> nn.Module:
        """One member of benchmark mode's error predictor: HELP-graph GCN, flat and path-encoding MLPs."""
        from modnas.spaces.nb201.error_model import NB201ErrorMember

        return NB201ErrorMember(config)

    def build_network(self, arch: str | Sequence[int] | np.ndarray, **kwargs: Any) -> nn.Module:  # type: ignore[override]
        from modnas.spaces.nb201.network import build_network

        return build_network(arch, **kwargs)

    def timing_network(
        self,
        arch: str | Sequence[int] | np.ndarray,
        batch_size: int,
        generator: torch.Generator,
        input_size: int = 32,
        channels: int = 3,
        num_classes: int = 10,
    ) -> tuple[nn.Module, torch.Tensor]:
        """The standalone network (CIFAR-10 shape by default) and a random input batch to time it on."""
        for what, value, minimum in (("channels", channels, 1), ("num_classes", num_classes, 1), ("input size", input_size, 4)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ModnasError(f"{what} must be an integer >= {minimum}, got {value!r}")
        if input_size % 4:  # two stride-2 reductions: the residual and shortcut paths only agree on multiples of 4
            raise ModnasError(f"input size must be a multiple of 4, got {input_size}")
        net = self.build_network(arch, num_classes=num_classes, in_channels=channels)
        return net, torch.randn(batch_size, channels, input_size, input_size, generator=generator)

    def flops(self, keys: Sequence[str]) -> np.ndarray:
        """MFLOPs of the CIFAR-10 networks (NB201 table)."""
        return np.asarray(nb201_tables.flops(table_indices(keys)), dtype=np.float64)

    def short_name(self, key: str) -> str:
        """The table index: shorter than the string in messages."""
        return str(int(table_indices([key])[0]))

    def build_supernet(self, **kwargs: Any) -> nn.Module:
        from modnas.spaces.nb201.supernet import NB201Supernet

        unknown = sorted(set(kwargs) - {"C", "N", "entangle", "num_classes", "in_channels"})
        if unknown:
            raise ModnasError(f"the NB201 supernet has no setting {', '.join(unknown)} (oneshot.supernet)")
        return NB201Supernet(**kwargs)

    def export_source(self, choice: dict[str, Any]) -> str:
        from modnas.spaces.nb201.export import module_source

        return module_source(choice)

    @property
    def num_archs(self) -> int:
        return NUM_ARCHS

    def to_index(self, arch: encoding.ArchLike | Sequence[str]) -> np.ndarray:
        """Canonical NB201 index (the key of every table)."""
        return encoding.to_index(arch)

    def from_index(self, index: int | np.ndarray) -> np.ndarray:
        return encoding.from_index(index)
