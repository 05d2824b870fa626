"""GPT spaces through the generic :class:`~modnas.spaces.base.SearchSpace` interface.

Decisions, in encoding order: ``embed``, ``n_layer``, the MLP ratio ``mlp{i}`` of every layer slot, the heads
``heads{i}`` of every layer slot, then ``bias``. Slots below the smallest depth always exist; slot ``i`` beyond it
is gated by ``n_layer > i``. With options in ascending order and bias ``(True, False)``, the gate-weighted one-hot
(:meth:`~modnas.spaces.base.SearchSpace.features`) of GPT-S is exactly HW-GPT-Bench's 80-d perplexity-surrogate
input. GPT-S has 3 * (3^20 + 3^22 + 3^24) * 2, about 1.7e12, architectures: it cannot be enumerated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from modnas.errors import ModnasError
from modnas.spaces.base import Decision, SearchSpace
from modnas.spaces.gpt.arch import GPTArch, GPTVariant

#: the keyword arguments of :func:`modnas.spaces.gpt.network.build_network` besides the architecture (training and
#: export pass a dataset's ``num_classes``, the vocabulary, and ``in_channels``, which text has none of)
NETWORK_SETTINGS = frozenset({"vocab_size", "block_size", "num_classes", "in_channels"})
#: the settings of the supernet (``oneshot.supernet``; the one-shot loop adds the data's ``num_classes``, the
#: vocabulary, and ``in_channels``, which text has none of)
SUPERNET_SETTINGS = frozenset({"vocab_size", "block_size", "dropout", "num_classes", "in_channels"})


def _decisions(v: GPTVariant) -> tuple[Decision, ...]:
    def gate(i: int) -> tuple[str, tuple[str, ...]] | None:
        deeper = tuple(str(n) for n in v.layers if n > i)
        return None if len(deeper) == len(v.layers) else ("n_layer", deeper)

    return (
        Decision("embed", tuple(map(str, v.embeds))),
        Decision("n_layer", tuple(map(str, v.layers))),
        *(Decision(f"mlp{i}", tuple(map(str, v.mlp_ratios)), gate(i)) for i in range(v.max_layers)),
        *(Decision(f"heads{i}", tuple(map(str, v.heads)), gate(i)) for i in range(v.max_layers)),
        Decision("bias", ("True", "False")),
    )


class GPTSpace(SearchSpace):
    """A decoder-only GPT space (:data:`~modnas.spaces.gpt.arch.GPT_S` or a scaled variant)."""

    network_options: tuple[str, ...] = ()

    def __init__(self, variant: GPTVariant) -> None:
        self.variant = variant
        self.name = variant.name
        self.decisions = _decisions(variant)

    # -- identity -------------------------------------------------------------------------------------------------

    def arch(self, indices: Sequence[int] | np.ndarray) -> GPTArch:
        """The :class:`GPTArch` of choice indices (inactive layer slots ignored)."""
        v = self.variant
        idx = self.canonicalise(np.asarray(indices).reshape(1, -1))[0]
        n = v.layers[int(idx[1])]
        mlp = idx[2 : 2 + v.max_layers][:n]
        heads = idx[2 + v.max_layers : 2 + 2 * v.max_layers][:n]
        return GPTArch(
            v, v.embeds[int(idx[0])], n, tuple(v.mlp_ratios[int(i)] for i in mlp), tuple(v.heads[int(i)] for i in heads),
            bool(idx[-1] == 0),
        )  # fmt: skip

    def indices(self, arch: GPTArch) -> np.ndarray:
        """Canonical choice indices of an architecture of this space's variant."""
        v = self.variant
        if arch.variant != v:
            raise ModnasError(f"architecture {arch.key!r} belongs to {arch.variant.name}, not {v.name}")
        pad = v.max_layers - arch.n_layer
        mlp = [v.mlp_ratios.index(r) for r in arch.mlp_ratios] + [0] * pad
        heads = [v.heads.index(h) for h in arch.heads] + [0] * pad
        out = [v.embeds.index(arch.embed), v.layers.index(arch.n_layer), *mlp, *heads, 0 if arch.bias else 1]
        return np.asarray(out, dtype=np.int64)

    def parse(self, key: str) -> np.ndarray:
        return self.indices(GPTArch.from_key(key, self.variant))

    def to_key(self, indices: Sequence[int] | np.ndarray) -> str:
        return self.arch(indices).key

    def _arch_of(self, arch: str | Sequence[int] | np.ndarray | GPTArch) -> GPTArch:
        if isinstance(arch, GPTArch):
            return arch
        return GPTArch.from_key(arch, self.variant) if isinstance(arch, str) else self.arch(arch)

    def short_name(self, key: str) -> str:
        a = self._arch_of(key)
        return f"{a.n_layer}L-{a.embed}-{'b' if a.bias else 'nb'}"

    # -- sets of architectures ------------------------------------------------------------------------------------

    def reference_architectures(self) -> tuple[str, ...]:
        """10 fixed architectures whose latencies embed a device: the smallest, the largest, and 8 drawn once
        (seed 0) and frozen here as keys so that stored device embeddings stay valid."""
        from modnas.spaces.gpt.references import REFERENCE_KEYS

        return REFERENCE_KEYS[self.variant.name]

    def extremes(self) -> tuple[str, str]:
        return GPTArch.smallest(self.variant).key, GPTArch.largest(self.variant).key

    # -- networks -------------------------------------------------------------------------------------------------

    def _check_settings(self, kwargs: dict[str, Any], allowed: frozenset[str], what: str) -> None:
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            # num_classes and in_channels come from the data, not from the user: not offered
            offered = ", ".join(sorted(allowed - {"num_classes", "in_channels"}))
            raise ModnasError(f"{what} has no setting {unknown[0]!r} (it takes {offered})")
        for name in ("vocab_size", "block_size", "num_classes"):
            value = kwargs.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
                raise ModnasError(f"{name} must be a positive integer, got {value!r}")

    def export_defaults(self, key: str) -> dict[str, Any]:
        """The variant's vocabulary and context (``image_size`` is the sequence length of an example input)."""
        return {"num_classes": self.variant.vocab_size, "in_channels": 1, "image_size": self.variant.block_size}

    def example_input(self, spec: Any, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, list[Any]]:
        """Random tokens ``(batch, sequence)``; ``spec.image_size`` is the sequence length."""
        tokens = torch.randint(0, int(spec.num_classes), (batch, int(spec.image_size)), generator=generator)
        return tokens, ["batch", int(spec.image_size)]

    def export_source(self, choice: dict[str, Any]) -> str:
        from modnas.spaces.gpt.export import module_source

        return module_source(self._arch_of(self.canonical_key(choice["arch_str"])), choice)

    def build_network(self, key: str, **kwargs: Any) -> nn.Module:
        """The standalone model (``kwargs``: ``vocab_size`` or ``num_classes``, ``block_size``)."""
        from modnas.spaces.gpt.network import build_network

        self._check_settings(kwargs, NETWORK_SETTINGS, f"a {self.name} network")
        vocab = kwargs.get("vocab_size") or kwargs.get("num_classes")
        return build_network(self._arch_of(key), vocab_size=vocab, block_size=kwargs.get("block_size"))

    def build_supernet(self, **kwargs: Any) -> nn.Module:
        """The weight-sharing supernet (:class:`~modnas.spaces.gpt.supernet.GPTSupernet`)."""
        from modnas.spaces.gpt.supernet import GPTSupernet

        self._check_settings(kwargs, SUPERNET_SETTINGS, f"the {self.name} supernet (oneshot.supernet)")
        return GPTSupernet(self, **kwargs)

    def timing_network(  # type: ignore[override]
        self,
        arch: str | Sequence[int] | np.ndarray | GPTArch,
        batch_size: int,
        generator: torch.Generator,
        sequence_length: int | None = None,
        vocab_size: int | None = None,
    ) -> tuple[nn.Module, torch.Tensor]:
        """The standalone model and a random batch of ``sequence_length`` tokens (the full context by default)."""
        from modnas.spaces.gpt.network import build_network

        a = self._arch_of(arch)
        length = int(sequence_length or self.variant.block_size)
        vocab = int(vocab_size or self.variant.vocab_size)
        if not 1 <= length <= self.variant.block_size:
            raise ModnasError(f"sequence length must be 1..{self.variant.block_size}, got {sequence_length!r}")
        net = build_network(a, vocab_size=vocab)
        return net, torch.randint(0, vocab, (batch_size, length), generator=generator)

    def flops(self, keys: Sequence[str]) -> np.ndarray:
        """Forward MFLOPs per token at the full context (:func:`~modnas.spaces.gpt.network.flops_per_token`)."""
        from modnas.spaces.gpt.network import flops_per_token

        if isinstance(keys, str):
            keys = [keys]
        return np.array([flops_per_token(self._arch_of(k)) / 1e6 for k in keys], dtype=np.float64)

    def parameters_m(self, keys: Sequence[str]) -> np.ndarray:
        """Millions of parameters of each architecture's model."""
        from modnas.spaces.gpt.network import count_parameters

        if isinstance(keys, str):
            keys = [keys]
        return np.array([count_parameters(self._arch_of(k)) / 1e6 for k in keys], dtype=np.float64)
