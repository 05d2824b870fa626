"""The interface every search space implements.

Everything outside ``modnas/spaces/<name>/`` talks to a space only through :class:`SearchSpace`, so adding a space
means adding a folder, not editing the search loop. A space is a list of named categorical :class:`Decision`\\ s:

* options are *ragged* (each decision has its own list); arrays pad them to ``max_options`` columns and
  :attr:`SearchSpace.mask` marks the real ones;
* a decision may be *gated*: it is active only when another decision takes one of some options (e.g. "block 3 of
  stage s exists iff depth_s >= 3"). Inactive decisions do not change the architecture, so the canonical form
  sets them to option 0 and two encodings that differ only there are the same architecture everywhere.

An architecture has three interchangeable forms:

* its canonical string **key** (what users read and write, what run files store, the identity everywhere);
* choice **indices** ``(..., num_decisions)`` (int64; canonical when inactive decisions are 0);
* a **one-hot** ``(..., num_decisions, max_options)`` (what samplers produce and gradients flow through).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from modnas.errors import ModnasError

#: Logit given to masked (padding) options: softmax gives them zero mass, so they are never sampled or chosen.
MASKED_LOGIT = -1e9


@dataclass(frozen=True)
class Decision:
    """One categorical choice: its name, its options and, optionally, the gate that makes it active.

    ``gate = ("depth_1", ("3", "4"))`` means: active only when decision ``depth_1`` takes option ``"3"`` or ``"4"``
    (and ``depth_1`` itself is active).
    """

    name: str
    options: tuple[str, ...]
    gate: tuple[str, tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        if not self.options:
            raise ModnasError(f"decision {self.name!r} has no options")
        if len(set(self.options)) != len(self.options):
            raise ModnasError(f"decision {self.name!r} lists an option twice")


class SearchSpace(ABC):
    """A discrete, possibly conditional architecture space (see the module docstring)."""

    #: Short name used in configs, run directories and ``--space``.
    name: str
    #: The decisions in encoding order.
    decisions: tuple[Decision, ...]

    # -- shape ----------------------------------------------------------------------------------------------------

    @property
    def num_decisions(self) -> int:
        return len(self.decisions)

    @cached_property
    def max_options(self) -> int:
        """Columns of a one-hot: the largest number of options of any decision."""
        return max(len(d.options) for d in self.decisions)

    @property
    def num_choices(self) -> int:
        """Alias of :attr:`max_options` (the name of a space without ragged decisions)."""
        return self.max_options

    @cached_property
    def mask(self) -> np.ndarray:
        """``(num_decisions, max_options)`` bool: True for a real option, False for padding."""
        out = np.zeros((self.num_decisions, self.max_options), dtype=bool)
        for i, d in enumerate(self.decisions):
            out[i, : len(d.options)] = True
        return out

    @cached_property
    def is_ragged(self) -> bool:
        return not bool(self.mask.all())

    @cached_property
    def is_conditional(self) -> bool:
        return any(d.gate is not None for d in self.decisions)

    @cached_property
    def _gates(self) -> list[tuple[int, np.ndarray] | None]:
        """Per decision: (index of the gating decision, bool mask of its activating options) or None."""
        position = {d.name: i for i, d in enumerate(self.decisions)}
        out: list[tuple[int, np.ndarray] | None] = []
        for i, d in enumerate(self.decisions):
            if d.gate is None:
                out.append(None)
                continue
            parent_name, values = d.gate
            if parent_name not in position or position[parent_name] >= i:
                raise ModnasError(f"decision {d.name!r} is gated by {parent_name!r}, which must come before it")
            parent = self.decisions[position[parent_name]]
            unknown = [v for v in values if v not in parent.options]
            if unknown:
                raise ModnasError(f"gate of {d.name!r} names unknown option {unknown[0]!r} of {parent_name!r}")
            on = np.zeros(self.max_options, dtype=bool)
            on[[parent.options.index(v) for v in values]] = True
            out.append((position[parent_name], on))
        return out

    def option_counts(self) -> np.ndarray:
        """Options per decision ``(num_decisions,)``."""
        return self.mask.sum(axis=1)

    # -- identity -------------------------------------------------------------------------------------------------

    @abstractmethod
    def parse(self, key: str) -> np.ndarray:
        """Architecture string -> canonical choice indices ``(num_decisions,)``; malformed strings raise
        :class:`~modnas.errors.ModnasError` naming the problem."""

    @abstractmethod
    def to_key(self, indices: Sequence[int] | np.ndarray) -> str:
        """Choice indices of one architecture -> its canonical string key (inactive decisions ignored)."""

    def keys(self, indices: np.ndarray) -> list[str]:
        """Canonical keys of ``(N, num_decisions)`` choice indices."""
        return [self.to_key(row) for row in np.asarray(indices).reshape(-1, self.num_decisions)]

    def parse_many(self, keys: Sequence[str]) -> np.ndarray:
        """Canonical choice indices ``(N, num_decisions)`` of ``keys``."""
        if isinstance(keys, str):
            keys = [keys]
        if len(keys) == 0:
            return np.zeros((0, self.num_decisions), dtype=np.int64)
        return np.stack([self.parse(k) for k in keys]).astype(np.int64)

    def key_order(self, keys: Sequence[str]) -> list[Any]:
        """Sort keys that order architectures deterministically (ties in rankings are broken by them)."""
        return list(keys)

    def sort_keys(self, keys: Sequence[str]) -> list[str]:
        """``keys`` sorted by :meth:`key_order`."""
        order = self.key_order(keys)
        return [k for _, k in sorted(zip(order, keys), key=lambda pair: pair[0])]

    def canonical_key(self, key: str) -> str:
        """The canonical spelling of an architecture string (raises on a malformed one)."""
        return self.to_key(self.parse(key))

    def resolve(self, text: str) -> str:
        """The canonical key of an architecture a user typed: its string, or a space's short form of it."""
        return self.canonical_key(text.strip())

    def check_indices(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        """Validate choice indices ``(..., num_decisions)`` against each decision's options; return int64."""
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu" or idx.ndim == 0 or idx.shape[-1] != self.num_decisions:
            raise ModnasError(f"expected integer choice indices (..., {self.num_decisions}), got shape {idx.shape}")
        idx = idx.astype(np.int64)
        bad = (idx < 0) | (idx >= self.option_counts())
        if bad.any():
            where = np.argwhere(bad)[0]
            d = self.decisions[int(where[-1])]
            raise ModnasError(f"choice {int(idx[tuple(where)])} is out of range for {d.name!r} ({len(d.options)} options)")
        return idx

    def active(self, indices: np.ndarray) -> np.ndarray:
        """Which decisions are active ``(..., num_decisions)`` bool (gates applied, chains included)."""
        idx = np.asarray(indices, dtype=np.int64)
        out = np.ones(idx.shape, dtype=bool)
        for i, gate in enumerate(self._gates):
            if gate is not None:
                parent, on = gate
                out[..., i] = out[..., parent] & on[idx[..., parent]]
        return out

    def canonicalise(self, indices: np.ndarray) -> np.ndarray:
        """Choice indices with every inactive decision set to option 0."""
        idx = self.check_indices(indices)
        if not self.is_conditional:
            return idx
        return np.where(self.active(idx), idx, 0)

    # -- sampling and neighbourhoods ------------------------------------------------------------------------------

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` architectures, each decision uniform over its options, canonical ``(n, num_decisions)``."""
        counts = self.option_counts()
        raw = np.floor(rng.random((int(n), self.num_decisions)) * counts).astype(np.int64)
        return self.canonicalise(np.minimum(raw, counts - 1))

    def neighbours(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The distinct canonical architectures one move away: one active decision set to another option (in the
        order of the decisions, then of the options)."""
        base = self.canonicalise(np.asarray(indices).reshape(1, -1))[0]
        active = self.active(base[None])[0]
        moves = [(i, option) for i, d in enumerate(self.decisions) if active[i]
                 for option in range(len(d.options)) if option != base[i]]
        if not moves:
            return np.zeros((0, self.num_decisions), dtype=np.int64)
        rows, options = np.asarray(moves, dtype=np.int64).T
        candidates = np.repeat(base[None], len(moves), axis=0)
        candidates[np.arange(len(moves)), rows] = options
        candidates = self.canonicalise(candidates)  # one batched call: a move may switch slots off
        # keep first occurrences only (turning a depth down from 4 to 2 or 3 can give the same network twice)
        _, first = np.unique(candidates, axis=0, return_index=True)
        keep = np.zeros(len(candidates), dtype=bool)
        keep[first] = True
        keep &= (candidates != base).any(axis=1)
        return candidates[keep]

    def mutate(self, indices: Sequence[int] | np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One uniformly drawn neighbour of an architecture (itself when it has none)."""
        near = self.neighbours(indices)
        if len(near) == 0:
            return self.canonicalise(np.asarray(indices).reshape(1, -1))[0]
        return near[int(rng.integers(len(near)))]

    # -- encodings ------------------------------------------------------------------------------------------------

    def to_onehot(self, indices: np.ndarray | Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Choice indices ``(..., num_decisions)`` -> one-hot ``(..., num_decisions, max_options)``."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return nn.functional.one_hot(idx, self.max_options).to(dtype)

    def mask_logits(self, logits: Tensor) -> Tensor:
        """Logits with padding options set to :data:`MASKED_LOGIT` (no mass, no argmax, no gradient there).

        Returned unchanged when the space has no padding, so dense spaces compute exactly as without a mask.
        """
        if not self.is_ragged:
            return logits
        mask = torch.as_tensor(self.mask, device=logits.device)
        return logits.masked_fill(~mask, MASKED_LOGIT)

    def from_logits(self, logits: Tensor) -> np.ndarray:
        """Canonical choice indices by (masked) argmax of logits or one-hots ``(..., D, O)``."""
        idx = self.mask_logits(logits.detach()).argmax(dim=-1).cpu().numpy()
        return self.canonicalise(idx) if self.is_conditional else idx

    def gate_weights(self, onehot: Tensor) -> Tensor:
        """Differentiable activity of each decision ``(..., num_decisions)``: 1 for ungated decisions, else the
        one-hot mass on the gating options (times the gating decision's own activity)."""
        weights = [torch.ones(onehot.shape[:-2], dtype=onehot.dtype, device=onehot.device)] * self.num_decisions
        for i, gate in enumerate(self._gates):
            if gate is not None:
                parent, on = gate
                on_t = torch.as_tensor(on, dtype=onehot.dtype, device=onehot.device)
                weights[i] = weights[parent] * (onehot[..., parent, :] * on_t).sum(-1)
        return torch.stack(weights, dim=-1)

    def features(self, onehot: Tensor) -> Tensor:
        """Differentiable flat encoding for predictors ``(..., num_features)``: the one-hot of the real options,
        each decision scaled by its gate weight (inactive decisions contribute zeros)."""
        x = onehot
        if self.is_conditional:
            x = x * self.gate_weights(onehot)[..., None]
        flat = x.flatten(-2)
        if self.is_ragged:
            keep = torch.as_tensor(self.mask.reshape(-1), device=onehot.device)
            flat = flat[..., keep]
        return flat

    @property
    def num_features(self) -> int:
        return int(self.mask.sum())

    #: node features of :meth:`graph_encoding` (0: the space defines no cell graph)
    graph_node_features: int = 0

    def graph_encoding(self, onehot: Tensor) -> tuple[Tensor, Tensor]:
        """Node features ``(B, nodes, graph_node_features)`` and adjacency ``(B, nodes, nodes)`` of a cell graph,
        differentiable in the one-hot, read by the hardware predictor's GCN; the last node is the global one."""
        raise ModnasError(f"search space {self.name!r} defines no cell graph")

    # -- sets of architectures ------------------------------------------------------------------------------------

    def enumerate(self) -> np.ndarray | None:
        """Every canonical architecture ``(N, num_decisions)`` when the space is small enough to list, else None."""
        return None

    def reference_architectures(self) -> tuple[str, ...]:
        """Keys of the fixed architectures whose measured latencies embed a device (HELP's reference set)."""
        raise ModnasError(f"search space {self.name!r} defines no reference architectures")

    def extremes(self) -> tuple[str, str]:
        """Keys of the cheapest and the most expensive architecture (normalisation bounds without enumeration)."""
        raise ModnasError(f"search space {self.name!r} defines no extreme architectures")

    # -- networks -------------------------------------------------------------------------------------------------

    def build_network(self, key: str, **kwargs: Any) -> nn.Module:
        """A standalone, trainable network of one architecture."""
        raise ModnasError(f"search space {self.name!r} has no standalone networks")

    def timing_network(
        self, key: str, batch_size: int, generator: torch.Generator, **options: Any
    ) -> tuple[nn.Module, Tensor]:
        """The network of one architecture and a random input batch, for timing it on a device
        (``modnas device measure``)."""
        raise ModnasError(f"search space {self.name!r} cannot build networks to time")

    def short_name(self, key: str) -> str:
        """A short name of an architecture for messages (default: the key)."""
        return key

    #: fields of :class:`modnas.config.OneShotConfig` that :meth:`build_supernet` reads (NB201: ``C``, ``N``,
    #: ``entangle``); anything else comes from ``oneshot.supernet``
    supernet_options: tuple[str, ...] = ()

    def build_supernet(self, **kwargs: Any) -> nn.Module:
        """A weight-sharing supernet for one-shot search: ``supernet(x, onehot (decisions, options), choices)``
        returns logits, differentiable in the one-hot, running only the ``choices`` (argmax indices) paths.
        ``kwargs``: ``num_classes``, ``in_channels``, the :attr:`supernet_options` and ``oneshot.supernet``'s
        entries; an unknown one is a one-line :class:`ModnasError`."""
        raise ModnasError(f"search space {self.name!r} has no supernet, so it has no one-shot mode")

    def export_source(self, choice: dict[str, Any]) -> str:
        """Python source of a standalone PyTorch module for one chosen architecture (``choice['arch_str']``)."""
        raise ModnasError(f"search space {self.name!r} cannot export standalone source")

    #: settings of :meth:`build_network` besides ``num_classes`` and ``in_channels`` that an export records
    #: (fields of :class:`modnas.export.NetworkSpec`; NB201: the cell width ``C`` and depth ``N``)
    network_options: tuple[str, ...] = ()

    def export_defaults(self, key: str) -> dict[str, Any]:
        """:class:`modnas.export.NetworkSpec` fields of a network exported without a checkpoint, where they differ
        from the spec's defaults (10 classes, 3 x 32 x 32 inputs)."""
        return {}

    def example_input(self, spec: Any, batch: int, generator: torch.Generator) -> tuple[Tensor, list[Any]]:
        """An example input of an exported network (ONNX, pt2) and its shape as a file records it (images:
        ``["batch", channels, size, size]``; a language model overrides this with tokens)."""
        shape = spec.input_shape(batch=batch)
        return torch.randn(shape, generator=generator), ["batch", *shape[1:]]


class DecisionListSpace(SearchSpace):
    """A space whose key lists its active decisions as ``name=option`` joined by ``;`` (the generic spelling).

    Parsing accepts the decisions in any order, ignores inactive ones, and refuses unknown names, unknown options,
    missing active decisions and repeats, each with one line.
    """

    def to_key(self, indices: Sequence[int] | np.ndarray) -> str:
        idx = self.canonicalise(np.asarray(indices).reshape(1, -1))[0]
        active = self.active(idx[None])[0]
        return ";".join(
            f"{d.name}={d.options[int(idx[i])]}" for i, d in enumerate(self.decisions) if active[i]
        )

    def parse(self, key: str) -> np.ndarray:
        if not isinstance(key, str):
            raise ModnasError(f"architecture must be a string, got {type(key).__name__}")
        position = {d.name: i for i, d in enumerate(self.decisions)}
        values: dict[int, int] = {}
        for part in (p.strip() for p in key.strip().split(";")):
            if not part:
                continue
            name, sep, option = (s.strip() for s in part.partition("="))
            if not sep or name not in position:
                raise ModnasError(f"malformed {self.name} architecture {key!r}: bad part {part!r} (expected name=option)")
            i = position[name]
            if i in values:
                raise ModnasError(f"malformed {self.name} architecture {key!r}: {name!r} is given twice")
            options = self.decisions[i].options
            if option not in options:
                raise ModnasError(f"unknown option {option!r} for {name!r} in {key!r}; options: {', '.join(options)}")
            values[i] = options.index(option)
        idx = np.zeros(self.num_decisions, dtype=np.int64)
        for i, v in values.items():
            idx[i] = v
        active = self.active(idx[None])[0]
        missing = [self.decisions[i].name for i in range(self.num_decisions) if active[i] and i not in values]
        if missing:
            raise ModnasError(f"malformed {self.name} architecture {key!r}: {missing[0]!r} is missing")
        return self.canonicalise(idx[None])[0]
