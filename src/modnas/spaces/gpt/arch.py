"""One decoder-only GPT architecture of HW-GPT-Bench's spaces, and the variants of the space.

An architecture is an embedding width, a number of layers ``n_layer``, per active layer its MLP ratio and number of
attention heads, and one bias flag for every linear layer and LayerNorm. Only the first ``n_layer`` per-layer
choices exist; the key lists only those, in HW-GPT-Bench's spelling::

    gpt-s-10-384-2-3-4-4-2-3-4-4-2-3-8-12-4-4-8-12-4-4-8-12-True

is GPT-S, 10 layers, embedding 384, MLP ratios (2, 3, 4, 4, 2, 3, 4, 4, 2, 3), heads (8, 12, 4, ...), with bias.

Every head has the same width (:attr:`GPTVariant.head_size`, the largest embedding over the most heads), so the
attention's inner width is ``heads * head_size`` whatever the embedding, as in HW-GPT-Bench's supernet, and a
sub-model's heads are the leading heads of the largest model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modnas.errors import ModnasError


@dataclass(frozen=True)
class GPTVariant:
    """The choices of one GPT space and the shape of its models (vocabulary, context, head width)."""

    name: str  # the space's name (``--space``) and the key's prefix
    embeds: tuple[int, ...]
    layers: tuple[int, ...]
    mlp_ratios: tuple[int, ...]
    heads: tuple[int, ...]
    vocab_size: int
    block_size: int  # the longest context (position embeddings)
    description: str = ""

    @property
    def max_layers(self) -> int:
        return max(self.layers)

    @property
    def head_size(self) -> int:
        return max(self.embeds) // max(self.heads)

    @property
    def prefix(self) -> str:
        return f"{self.name}-"


#: HW-GPT-Bench's GPT-S space (the MODNAS paper's GPT space): GPT-2 tokens (vocabulary padded to 50,304 as
#: HW-GPT-Bench's litgpt configuration does), context 1,024.
GPT_S = GPTVariant(
    name="gpt-s", embeds=(192, 384, 768), layers=(10, 11, 12), mlp_ratios=(2, 3, 4), heads=(4, 8, 12),
    vocab_size=50304, block_size=1024, description="HW-GPT-Bench GPT-S (GPT-2 small scale)",
)  # fmt: skip

#: The same structure scaled down for one-shot training on a CPU: byte-level tokens, context 128.
GPT_TINY = GPTVariant(
    name="gpt-tiny", embeds=(64, 96, 128), layers=(2, 3, 4), mlp_ratios=(2, 3, 4), heads=(2, 3, 4),
    vocab_size=256, block_size=128, description="GPT-S's structure at CPU size (byte-level tokens)",
)  # fmt: skip

VARIANTS: dict[str, GPTVariant] = {v.name: v for v in (GPT_S, GPT_TINY)}

_BIAS = {"True": True, "False": False}


@dataclass(frozen=True)
class GPTArch:
    """One architecture of ``variant``: ``mlp_ratios`` and ``heads`` hold the ``n_layer`` active layers only."""

    variant: GPTVariant
    embed: int
    n_layer: int
    mlp_ratios: tuple[int, ...]
    heads: tuple[int, ...]
    bias: bool

    def __post_init__(self) -> None:
        v = self.variant
        for what, value, allowed in (("embedding", self.embed, v.embeds), ("n_layer", self.n_layer, v.layers)):
            if value not in allowed:
                raise ModnasError(f"{v.name} architecture: {what} {value} is not one of {_list(allowed)}")
        for what, values, allowed in (("MLP ratio", self.mlp_ratios, v.mlp_ratios), ("heads", self.heads, v.heads)):
            if len(values) != self.n_layer:
                raise ModnasError(
                    f"{v.name} architecture: {self.n_layer} layers need {self.n_layer} {what} values, got {len(values)}"
                )
            for i, x in enumerate(values):
                if x not in allowed:
                    raise ModnasError(f"{v.name} architecture: {what} {x} of layer {i} is not one of {_list(allowed)}")
        if not isinstance(self.bias, bool):
            raise ModnasError(f"{v.name} architecture: bias must be True or False, got {self.bias!r}")

    @property
    def key(self) -> str:
        """HW-GPT-Bench's arch string of this architecture."""
        parts = [self.variant.name, self.n_layer, self.embed, *self.mlp_ratios, *self.heads, self.bias]
        return "-".join(map(str, parts))

    @classmethod
    def from_key(cls, key: str, variant: GPTVariant) -> GPTArch:
        """Parse an arch string of ``variant`` (``gpt-s-<n_layer>-<embed>-<mlp..>-<heads..>-<True|False>``)."""
        if not isinstance(key, str):
            raise ModnasError(f"{variant.name} architecture must be a string, got {key!r}")
        text = key.strip()
        if not text.startswith(variant.prefix):
            raise ModnasError(f"{variant.name} architecture {key!r} must start with {variant.prefix!r}")
        fields = text[len(variant.prefix) :].split("-")
        if len(fields) < 3:
            raise ModnasError(f"{variant.name} architecture {key!r} is too short")
        *numbers, bias = fields
        if bias not in _BIAS:
            raise ModnasError(f"{variant.name} architecture {key!r} must end with True or False (the bias), not {bias!r}")
        try:
            values = [int(x) for x in numbers]
        except ValueError:
            raise ModnasError(f"{variant.name} architecture {key!r} holds a non-integer field") from None
        n_layer, embed, per_layer = values[0], values[1], values[2:]
        if n_layer not in variant.layers:
            raise ModnasError(f"{variant.name} architecture {key!r}: n_layer {n_layer} is not one of {_list(variant.layers)}")
        if len(per_layer) != 2 * n_layer:
            raise ModnasError(
                f"{variant.name} architecture {key!r}: {n_layer} layers need {2 * n_layer} per-layer values "
                f"(MLP ratios, then heads), got {len(per_layer)}"
            )
        return cls(variant, embed, n_layer, tuple(per_layer[:n_layer]), tuple(per_layer[n_layer:]), _BIAS[bias])

    @classmethod
    def largest(cls, variant: GPTVariant) -> GPTArch:
        n = variant.max_layers
        return cls(variant, max(variant.embeds), n, (max(variant.mlp_ratios),) * n, (max(variant.heads),) * n, True)

    @classmethod
    def smallest(cls, variant: GPTVariant) -> GPTArch:
        n = min(variant.layers)
        return cls(variant, min(variant.embeds), n, (min(variant.mlp_ratios),) * n, (min(variant.heads),) * n, False)

    def blocks(self) -> list[tuple[int, int, int, bool]]:
        """The transformer blocks as ``(embed, heads, mlp_ratio, bias)``, in network order (what a latency look-up
        table is indexed by)."""
        return [(self.embed, h, r, self.bias) for r, h in zip(self.mlp_ratios, self.heads)]

    def to_dict(self) -> dict[str, object]:
        return {"embed": self.embed, "n_layer": self.n_layer, "mlp_ratios": list(self.mlp_ratios),
                "heads": list(self.heads), "bias": self.bias}  # fmt: skip


def _list(values: Sequence[int]) -> str:
    return ", ".join(map(str, values))
