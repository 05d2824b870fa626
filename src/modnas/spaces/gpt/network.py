"""The standalone GPT of one architecture: GPT-2's pre-LayerNorm decoder with per-layer MLP ratio and heads.

Token and learned position embeddings, ``n_layer`` blocks ``x + attn(ln1(x))``, ``x + mlp(ln2(x))``, a final
LayerNorm and a language-model head tied to the token embedding (as GPT-2). Every head is
:attr:`~modnas.spaces.gpt.arch.GPTVariant.head_size` wide, so a layer's attention width is ``heads * head_size``;
the MLP is ``embed -> ratio * embed -> embed`` with GELU (tanh form, as GPT-2). ``bias`` switches the biases of
every linear layer and LayerNorm on or off together.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from modnas.errors import ModnasError
from modnas.spaces.gpt.arch import GPTArch


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with ``heads`` heads of ``head_size`` channels."""

    def __init__(self, embed: int, heads: int, head_size: int, bias: bool) -> None:
        super().__init__()
        self.heads, self.head_size = heads, head_size
        self.qkv = nn.Linear(embed, 3 * heads * head_size, bias=bias)
        self.proj = nn.Linear(heads * head_size, embed, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return attention(x, self.qkv.weight, self.qkv.bias, self.proj.weight, self.proj.bias, self.heads, self.head_size)


def attention(
    x: Tensor, w_qkv: Tensor, b_qkv: Tensor | None, w_proj: Tensor, b_proj: Tensor | None, heads: int, head_size: int
) -> Tensor:
    """Causal attention with explicit weights (the supernet passes slices of its largest weights)."""
    batch, length, _ = x.shape
    q, k, v = F.linear(x, w_qkv, b_qkv).view(batch, length, 3, heads, head_size).permute(2, 0, 3, 1, 4)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return F.linear(y.transpose(1, 2).reshape(batch, length, heads * head_size), w_proj, b_proj)


class MLP(nn.Module):
    def __init__(self, embed: int, ratio: int, bias: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(embed, ratio * embed, bias=bias)
        self.proj = nn.Linear(ratio * embed, embed, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    """One pre-LayerNorm transformer block."""

    def __init__(self, embed: int, heads: int, mlp_ratio: int, head_size: int, bias: bool) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(embed, bias=bias)
        self.attn = CausalSelfAttention(embed, heads, head_size, bias)
        self.ln2 = nn.LayerNorm(embed, bias=bias)
        self.mlp = MLP(embed, mlp_ratio, bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """A decoder-only language model: ``forward(tokens (B, T)) -> logits (B, T, vocab_size)``."""

    def __init__(self, arch: GPTArch, vocab_size: int | None = None, block_size: int | None = None) -> None:
        super().__init__()
        v = arch.variant
        self.arch = arch
        self.vocab_size = int(vocab_size or v.vocab_size)
        self.block_size = int(block_size or v.block_size)
        self.wte = nn.Embedding(self.vocab_size, arch.embed)
        self.wpe = nn.Embedding(self.block_size, arch.embed)
        self.blocks = nn.ModuleList(
            Block(arch.embed, h, r, v.head_size, arch.bias) for r, h in zip(arch.mlp_ratios, arch.heads)
        )
        self.ln_f = nn.LayerNorm(arch.embed, bias=arch.bias)
        self.lm_head = nn.Linear(arch.embed, self.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as GPT-2
        self.apply(init_weights)

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.shape[-1] > self.block_size:
            raise ModnasError(f"sequence of {tokens.shape[-1]} tokens is longer than the context {self.block_size}")
        positions = torch.arange(tokens.shape[-1], device=tokens.device)
        x = self.wte(tokens) + self.wpe(positions)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def init_weights(module: nn.Module) -> None:
    """GPT-2's initialisation: normal(0, 0.02) weights, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def build_network(arch: GPTArch, vocab_size: int | None = None, block_size: int | None = None) -> GPT:
    """The standalone model of ``arch`` (the variant's vocabulary and context unless given)."""
    return GPT(arch, vocab_size, block_size)


def count_parameters(arch: GPTArch, vocab_size: int | None = None, block_size: int | None = None) -> int:
    """Parameters of :func:`build_network`'s model (the tied head counted once), without building it."""
    v = arch.variant
    e, b = arch.embed, int(arch.bias)
    total = (vocab_size or v.vocab_size) * e + (block_size or v.block_size) * e + (1 + b) * e  # embeddings, ln_f
    for r, h in zip(arch.mlp_ratios, arch.heads):
        inner = h * v.head_size
        total += 2 * (1 + b) * e  # two LayerNorms
        total += e * 3 * inner + b * 3 * inner + inner * e + b * e  # attention
        total += e * r * e + b * r * e + r * e * e + b * e  # MLP
    return int(total)


def flops_per_token(arch: GPTArch, context: int | None = None, vocab_size: int | None = None) -> float:
    """Forward FLOPs per token (2 per multiply-accumulate) of the matrix products, at a context of ``context``
    tokens (the variant's longest by default; causal attention sees on average ``(context + 1) / 2`` keys)."""
    v = arch.variant
    e = arch.embed
    keys = ((context or v.block_size) + 1) / 2
    total = 2.0 * e * (vocab_size or v.vocab_size)  # the head
    for r, h in zip(arch.mlp_ratios, arch.heads):
        inner = h * v.head_size
        total += 2.0 * (e * 3 * inner + inner * e + 2 * r * e * e)  # projections and MLP
        total += 2.0 * 2 * keys * inner  # scores and weighted values
    return total
