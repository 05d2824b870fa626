"""NAS-Bench-201 architecture encodings: string <-> op indices <-> one-hot <-> canonical index <-> HELP graph.

Conventions (used everywhere in modnas):

* ops are numbered in the canonical NB201 order :data:`OPS` (``none=0 ... avg_pool_3x3=4``), the order of the
  ``op0..op5`` columns of the bundled tables;
* the 6 edges follow the NB201 string order :data:`EDGES`: ``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``;
* the canonical index is looked up in the bundled table, never computed from the ops (it is not a base-5 code).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from modnas.errors import ModnasError
from modnas.tables.nb201 import NUM_ARCHS, check_index, nb201_tables

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_OPS = len(OPS)
NUM_EDGES = len(EDGES)

_OP_ID = {op: i for i, op in enumerate(OPS)}
_TOKEN = re.compile(r"([a-z0-9_]+)~([0-9])")

if TYPE_CHECKING:  # torch is imported lazily so that string/index lookups start fast
    import torch

ArchLike = str | Sequence[int] | np.ndarray


def parse(arch: str) -> np.ndarray:
    """Parse ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` into 6 op indices; malformed strings raise ModnasError."""
    if not isinstance(arch, str):
        raise ModnasError(f"architecture must be a string, got {type(arch).__name__}")
    text = arch.strip()
    nodes = text.split("+")
    if len(nodes) != 3:
        raise ModnasError(f"malformed NB201 architecture {arch!r}: expected 3 node groups joined by '+'")
    ops: list[int] = []
    for target, group in enumerate(nodes, start=1):
        if not (group.startswith("|") and group.endswith("|")) or len(group) < 2:
            raise ModnasError(f"malformed NB201 architecture {arch!r}: node group {group!r} must be '|...|'")
        tokens = group[1:-1].split("|")
        if len(tokens) != target:
            raise ModnasError(
                f"malformed NB201 architecture {arch!r}: node {target} needs {target} input edge(s), got {len(tokens)}"
            )
        for source, token in enumerate(tokens):
            match = _TOKEN.fullmatch(token)
            if not match:
                raise ModnasError(f"malformed NB201 architecture {arch!r}: bad edge {token!r} (expected 'op~input')")
            op, src = match.group(1), int(match.group(2))
            if op not in _OP_ID:
                raise ModnasError(f"unknown NB201 op {op!r} in {arch!r}; ops are: {', '.join(OPS)}")
            if src != source:
                raise ModnasError(
                    f"malformed NB201 architecture {arch!r}: edge {token!r} of node {target} must read input {source}"
                )
            ops.append(_OP_ID[op])
    return np.asarray(ops, dtype=np.int64)


def to_string(indices: Sequence[int] | np.ndarray) -> str:
    """6 op indices -> NB201 architecture string."""
    ops = check_indices(indices)
    if ops.ndim != 1:
        raise ModnasError(f"to_string takes one architecture (6 op indices), got shape {tuple(ops.shape)}")
    groups, k = [], 0
    for target in range(1, 4):
        groups.append("|" + "|".join(f"{OPS[ops[k + s]]}~{s}" for s in range(target)) + "|")
        k += target
    return "+".join(groups)


def check_indices(indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Validate op indices of shape ``(..., 6)`` with values in 0..4 and return them as an int64 array."""
    arr = np.asarray(indices)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ModnasError(f"op indices must be integers in 0..{NUM_OPS - 1}, got dtype {arr.dtype}")
    if arr.ndim == 0 or arr.shape[-1] != NUM_EDGES:
        raise ModnasError(f"an NB201 architecture has {NUM_EDGES} op indices, got shape {tuple(arr.shape)}")
    if arr.size and (arr.min() < 0 or arr.max() >= NUM_OPS):
        bad = arr[(arr < 0) | (arr >= NUM_OPS)].ravel()[0]
        raise ModnasError(f"op index {int(bad)} is out of range 0..{NUM_OPS - 1}")
    return arr.astype(np.int64, copy=False)


def as_indices(arch: ArchLike | Sequence[str]) -> np.ndarray:
    """Accept a string, a list of strings, or op indices; return op indices ``(6,)`` or ``(n, 6)``."""
    if isinstance(arch, str):
        return parse(arch)
    if isinstance(arch, np.ndarray) and arch.dtype.kind in "OUS":
        arch = arch.tolist()
    if isinstance(arch, (list, tuple)) and arch and all(isinstance(a, str) for a in arch):
        return np.stack([parse(a) for a in arch])
    return check_indices(arch)


# -- canonical index --------------------------------------------------------------------------------------------

_BASE5 = 5 ** np.arange(NUM_EDGES - 1, -1, -1)


@functools.lru_cache(maxsize=1)
def _code_to_index() -> np.ndarray:
    """Lookup from the base-5 code of the ops to the table's canonical index (built from the bundled table)."""
    codes = nb201_tables.ops_codes @ _BASE5
    lookup = np.full(NUM_ARCHS, -1, dtype=np.int64)
    lookup[codes] = np.arange(NUM_ARCHS)
    if (lookup < 0).any():
        raise ModnasError("bundled NB201 table does not hold every op combination exactly once")
    return lookup


def to_index(arch: ArchLike | Sequence[str]) -> np.ndarray:
    """Canonical NB201 index of one (scalar array) or many architectures."""
    return _code_to_index()[as_indices(arch) @ _BASE5]


def from_index(index: int | np.ndarray) -> np.ndarray:
    """Op indices ``(..., 6)`` of canonical NB201 indices."""
    return nb201_tables.ops_codes[check_index(index)]


def index_to_string(index: int) -> str:
    """Architecture string of a canonical index (as stored in the bundled table)."""
    from_index(index)  # validates type and range
    return str(nb201_tables.arch_strings[int(index)])


# -- one-hot ----------------------------------------------------------------------------------------------------


def to_onehot(arch: ArchLike | Sequence[str], dtype: torch.dtype | None = None) -> torch.Tensor:
    """Op indices or strings -> one-hot ``(..., 6, 5)`` (float32 unless ``dtype`` is given)."""
    import torch

    idx = torch.as_tensor(as_indices(arch), dtype=torch.long)
    return torch.nn.functional.one_hot(idx, NUM_OPS).to(dtype or torch.float32)


def from_onehot(onehot: torch.Tensor) -> np.ndarray:
    """One-hot or logits ``(..., 6, 5)`` -> op indices ``(..., 6)`` (argmax per edge)."""
    if onehot.shape[-2:] != (NUM_EDGES, NUM_OPS):
        raise ModnasError(f"expected a (..., {NUM_EDGES}, {NUM_OPS}) tensor, got shape {tuple(onehot.shape)}")
    return onehot.detach().argmax(dim=-1).cpu().numpy()


# -- HELP graph encoding ----------------------------------------------------------------------------------------

#: Node-feature columns of the HELP encoding: input, the 5 ops in alphabetical order, output, global node.
HELP_NODE_TYPES: tuple[str, ...] = (
    "input", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3", "none", "skip_connect", "output", "global",
)
#: HELP op column j holds canonical op ``HELP_OP_ORDER[j]``.
HELP_OP_ORDER = tuple(_OP_ID[name] for name in HELP_NODE_TYPES[1:6])
NUM_GRAPH_NODES = 9  # input, 6 op nodes, output, global
NUM_NODE_FEATURES = len(HELP_NODE_TYPES)


@functools.lru_cache(maxsize=1)
def help_adjacency() -> torch.Tensor:
    """The fixed 9x9 NB201 adjacency of HELP: op nodes in edge order, global node, self-loops, transposed."""
    import torch

    a = torch.zeros(8, 8)
    node_of_edge = {edge: k + 1 for k, edge in enumerate(EDGES)}
    for (dst, src), node in node_of_edge.items():
        if src == 0:
            a[0, node] = 1  # the cell input feeds every edge that reads cell-node 0
        else:
            for (dst2, _), node2 in node_of_edge.items():
                if dst2 == src:  # op nodes that produce cell-node `src` feed this op
                    a[node2, node] = 1
        if dst == 3:
            a[node, 7] = 1  # edges into cell-node 3 feed the output
    full = torch.zeros(9, 9)
    full[:8, :8] = a
    full[:, 8] = 1  # every node feeds the global node; the global node feeds nothing
    full += torch.eye(9)
    full.clamp_(max=1)
    return full.T.contiguous()  # GCN rows aggregate over predecessors



def graph_encoding(onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """HELP graph of a batch of one-hots ``(..., 6, 5)``: node features ``(..., 9, 8)`` and adjacency ``(..., 9, 9)``.

    The op rows of the features are the one-hot itself (columns permuted to HELP's order), so the encoding is
    differentiable with respect to the one-hot and gradients flow back to the architecture parameters.
    """
    if onehot.shape[-2:] != (NUM_EDGES, NUM_OPS):
        raise ModnasError(f"expected a (..., {NUM_EDGES}, {NUM_OPS}) one-hot, got shape {tuple(onehot.shape)}")
    batch = onehot.shape[:-2]
    x = onehot.new_zeros(*batch, NUM_GRAPH_NODES, NUM_NODE_FEATURES)
    x[..., 0, 0] = 1
    x[..., 7, 6] = 1
    x[..., 8, 7] = 1
    x[..., 1:7, 1:6] = onehot[..., list(HELP_OP_ORDER)]
    # a copy, so that callers editing the adjacency in place cannot corrupt the cached constant
    adj = help_adjacency().to(device=onehot.device, dtype=onehot.dtype, copy=True).expand(*batch, NUM_GRAPH_NODES, NUM_GRAPH_NODES)
    return x, adj


#: Width of :func:`path_encoding`: the 1-, 2- and 3-edge input-to-output paths' op sequences (5 + 25 + 125).
NUM_PATH_FEATURES = NUM_OPS + NUM_OPS**2 + NUM_OPS**3


def path_encoding(onehot: torch.Tensor) -> torch.Tensor:
    """Path encoding (BANANAS, White et al. 2021) of one-hots ``(..., 6, 5)``: ``(..., 155)``.

    A cell has four input-to-output paths: ``3<-0``; ``1<-0, 3<-1``; ``2<-0, 3<-2``; ``1<-0, 2<-1, 3<-2``. Each
    feature is the product of the one-hot entries along one path, i.e. an indicator of that path's op sequence; the
    two 2-edge paths share their 25 features, as in BANANAS, which counts op sequences rather than positions.
    Products keep it differentiable in the one-hot. BANANAS found that accuracy predictors on these features need
    far fewer training architectures than on an adjacency-and-ops encoding.
    """
    if onehot.shape[-2:] != (NUM_EDGES, NUM_OPS):
        raise ModnasError(f"expected a (..., {NUM_EDGES}, {NUM_OPS}) one-hot, got shape {tuple(onehot.shape)}")
    import torch

    direct = onehot[..., 3, :]
    via_1 = onehot[..., 0, :, None] * onehot[..., 4, None, :]
    via_2 = onehot[..., 1, :, None] * onehot[..., 5, None, :]
    via_1_2 = onehot[..., 0, :, None, None] * onehot[..., 2, None, :, None] * onehot[..., 5, None, None, :]
    return torch.cat([direct, (via_1 + via_2).flatten(-2), via_1_2.flatten(-3)], dim=-1)


def sample(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` architectures drawn uniformly from all 15,625, as op indices ``(n, 6)``."""
    if n < 0:
        raise ModnasError(f"number of architectures must be >= 0, got {n}")
    return rng.integers(0, NUM_OPS, size=(n, NUM_EDGES), dtype=np.int64)
