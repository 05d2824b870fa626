"""The NAS-Bench-201 cell search space (15,625 architectures, 6 edges x 5 ops).

The string/index codecs are importable without torch (fast start-up for table lookups); the networks and the
:class:`NB201Space` class load torch on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modnas.spaces.nb201.encoding import (
    EDGES,
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
    help_adjacency,
    index_to_string,
    parse,
    path_encoding,
    sample,
    to_index,
    to_onehot,
    to_string,
)

if TYPE_CHECKING:
    from modnas.spaces.nb201.network import NB201Network, build_network, count_parameters
    from modnas.spaces.nb201.space import NB201Space

_LAZY = {
    "NB201Network": "modnas.spaces.nb201.network",
    "build_network": "modnas.spaces.nb201.network",
    "count_parameters": "modnas.spaces.nb201.network",
    "NB201Space": "modnas.spaces.nb201.space",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EDGES",
    "HELP_NODE_TYPES",
    "NB201Network",
    "ArchLike",
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
    "help_adjacency",
    "index_to_string",
    "parse",
    "path_encoding",
    "sample",
    "to_index",
    "to_onehot",
    "to_string",
]
