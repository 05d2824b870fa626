"""The weight-sharing GPT supernet for one-shot search: the largest model of a variant, every sub-model a slice.

Parameters are those of :meth:`GPTArch.largest <modnas.spaces.gpt.arch.GPTArch.largest>` (named as the standalone
:class:`~modnas.spaces.gpt.network.GPT`'s, head tied to the token embedding). A sub-model takes

* **embed** ``e``: the leading ``e`` channels of every embedding-wide dimension (token and position embeddings,
  LayerNorm weight and bias, the input columns of ``qkv`` and ``fc``, the output rows of both projections);
* **heads** ``h``: the leading ``h`` heads, i.e. rows ``[j*H*hs, j*H*hs + h*hs)`` of ``qkv`` for each of q, k, v
  (``H`` the most heads, ``hs`` the head width) and the leading ``h*hs`` input columns of the attention projection;
* **MLP ratio** ``r``: the leading ``r*e`` hidden units (rows of ``fc``, columns of the MLP projection);
* **n_layer** ``n``: the first ``n`` blocks;
* **bias** off: no bias at all (the shared bias tensors stay, unused).

``supernet(tokens, onehot, ops)`` runs the single path ``ops`` (an option index per decision, the argmax of
``onehot`` by default) and lets ``w(d) = onehot[d, ops[d]]`` (1 in value for a hard one-hot) carry the gradient:

* the token + position embedding is multiplied by ``w(embed)``;
* block ``i``'s attention branch by ``w(heads_i)`` and its MLP branch by ``w(mlp_i)``, both also by the block's gate
  weight (:meth:`~modnas.spaces.base.SearchSpace.gate_weights`, the one-hot mass of depths that keep the block;
  1 for the blocks every depth has), and the final LayerNorm's output by ``w(n_layer)`` (after the LayerNorm, which
  would cancel a scale before it);
* bias on: every bias tensor (linear and LayerNorm) is multiplied by ``w(bias)``; the logits are too, either way.

So the output equals the standalone model's, and the gradient reaches the chosen entry of every active decision
and nothing of the blocks beyond ``n_layer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modnas.errors import ModnasError
from modnas.spaces.gpt.arch import GPTArch
from modnas.spaces.gpt.network import GPT, Block, attention, init_weights
from modnas.spaces.gpt.space import GPTSpace

__all__ = ["GPTSupernet"]


def _scaled(bias: Tensor | None, scale: Tensor | None) -> Tensor | None:
    return bias if bias is None or scale is None else bias * scale


class GPTSupernet(nn.Module):
    """The supernet of ``space``'s variant: ``forward(tokens (B, T), onehot (D, O), ops) -> logits (B, T, V)``."""

    def __init__(
        self,
        space: GPTSpace,
        vocab_size: int | None = None,
        block_size: int | None = None,
        dropout: float = 0.0,
        num_classes: int | None = None,
        in_channels: int | None = None,  # the one-shot loop passes the data's; tokens have none
    ) -> None:
        super().__init__()
        v = space.variant
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ModnasError(f"{v.name} supernet: dropout must be in [0, 1), got {dropout!r}")
        self.space, self.variant = space, v
        self.vocab_size = int(vocab_size or num_classes or v.vocab_size)  # num_classes: the data's vocabulary
        self.block_size = int(block_size or v.block_size)
        self.dropout = float(dropout)
        largest = GPTArch.largest(v)
        self.max_embed, self.max_heads, self.head_size = largest.embed, max(v.heads), v.head_size
        e = self.max_embed
        self.wte = nn.Embedding(self.vocab_size, e)
        self.wpe = nn.Embedding(self.block_size, e)
        self.blocks = nn.ModuleList(
            Block(e, self.max_heads, max(v.mlp_ratios), self.head_size, True) for _ in range(v.max_layers)
        )
        self.ln_f = nn.LayerNorm(e)
        self.lm_head = nn.Linear(e, self.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as the standalone GPT
        self.apply(init_weights)
        # positions of the decisions in the one-hot (GPTSpace's order)
        n = v.max_layers
        self._embed, self._n_layer, self._bias = 0, 1, 2 + 2 * n
        self._mlp, self._heads = [2 + i for i in range(n)], [2 + n + i for i in range(n)]

    # -- slices ---------------------------------------------------------------------------------------------------

    def _weights(self, arch: GPTArch, bias_scale: Tensor | None = None) -> dict[str, Tensor]:
        """The sliced parameters of ``arch`` under the standalone GPT's state-dict names (no biases when
        ``arch.bias`` is off; biases times ``bias_scale`` when given). Views: differentiable into the supernet."""
        e, hs, inner_max = arch.embed, self.head_size, self.max_heads * self.head_size
        out: dict[str, Tensor] = {"wte.weight": self.wte.weight[:, :e], "wpe.weight": self.wpe.weight[:, :e]}

        def add(name: str, weight: Tensor, bias: Tensor) -> None:
            out[f"{name}.weight"] = weight
            if arch.bias:
                out[f"{name}.bias"] = _scaled(bias, bias_scale)  # type: ignore[assignment]

        for i, (r, h) in enumerate(zip(arch.mlp_ratios, arch.heads)):
            b, p = self.blocks[i], f"blocks.{i}."
            inner, hidden = h * hs, r * e
            add(p + "ln1", b.ln1.weight[:e], b.ln1.bias[:e])
            # q, k and v each keep their leading heads: slice within each of the three blocks of rows
            qkv_w = b.attn.qkv.weight.view(3, inner_max, -1)[:, :inner, :e].reshape(3 * inner, e)
            add(p + "attn.qkv", qkv_w, b.attn.qkv.bias.view(3, inner_max)[:, :inner].reshape(3 * inner))
            add(p + "attn.proj", b.attn.proj.weight[:e, :inner], b.attn.proj.bias[:e])
            add(p + "ln2", b.ln2.weight[:e], b.ln2.bias[:e])
            add(p + "mlp.fc", b.mlp.fc.weight[:hidden, :e], b.mlp.fc.bias[:hidden])
            add(p + "mlp.proj", b.mlp.proj.weight[:e, :hidden], b.mlp.proj.bias[:e])
        add("ln_f", self.ln_f.weight[:e], self.ln_f.bias[:e])
        out["lm_head.weight"] = out["wte.weight"]
        return out

    def _arch(self, arch: str | GPTArch | Sequence[int] | np.ndarray) -> GPTArch:
        if isinstance(arch, GPTArch):
            if arch.variant != self.variant:
                raise ModnasError(f"architecture {arch.key!r} belongs to {arch.variant.name}, not {self.variant.name}")
            return arch
        return GPTArch.from_key(arch, self.variant) if isinstance(arch, str) else self.space.arch(arch)

    # -- forward --------------------------------------------------------------------------------------------------

    def forward(self, tokens: Tensor, onehot: Tensor, ops: Sequence[int] | None = None) -> Tensor:
        """Logits ``(B, T, vocab_size)`` of the architecture ``ops`` (default: ``onehot``'s argmax), differentiable
        in ``onehot`` ``(decisions, options)`` as the module docstring describes."""
        space = self.space
        if onehot.shape[0] != space.num_decisions:
            raise ModnasError(f"{self.variant.name} supernet: one-hot has {onehot.shape[0]} rows, the space "
                              f"has {space.num_decisions} decisions")  # fmt: skip
        if tokens.dim() != 2:
            raise ModnasError(f"{self.variant.name} supernet: tokens must be (batch, length), got {tuple(tokens.shape)}")
        length = tokens.shape[1]
        if length > self.block_size:
            raise ModnasError(
                f"{self.variant.name} supernet: sequence of {length} tokens is longer than the context {self.block_size}"
            )
        if ops is None:
            ops = onehot.detach().argmax(-1).tolist()
        arch = space.arch(list(ops))

        def w(d: int) -> Tensor:
            return onehot[d, ops[d]]

        gates = space.gate_weights(onehot)
        p = self._weights(arch, w(self._bias) if arch.bias else None)
        e, hs = arch.embed, self.head_size

        def norm(x: Tensor, name: str) -> Tensor:
            return F.layer_norm(x, (e,), p[f"{name}.weight"], p.get(f"{name}.bias"), self.ln_f.eps)

        def drop(x: Tensor) -> Tensor:
            return F.dropout(x, self.dropout, self.training) if self.dropout else x

        x = F.embedding(tokens, p["wte.weight"]) + p["wpe.weight"][:length]
        x = drop(x) * w(self._embed)
        for i, h in enumerate(arch.heads):
            b = f"blocks.{i}."
            y = attention(norm(x, b + "ln1"), p[b + "attn.qkv.weight"], p.get(b + "attn.qkv.bias"),
                          p[b + "attn.proj.weight"], p.get(b + "attn.proj.bias"), h, hs)  # fmt: skip
            x = x + drop(y) * (w(self._heads[i]) * gates[self._heads[i]])
            y = F.gelu(F.linear(norm(x, b + "ln2"), p[b + "mlp.fc.weight"], p.get(b + "mlp.fc.bias")), approximate="tanh")
            y = F.linear(y, p[b + "mlp.proj.weight"], p.get(b + "mlp.proj.bias"))
            x = x + drop(y) * (w(self._mlp[i]) * gates[self._mlp[i]])
        logits = F.linear(norm(x, "ln_f") * w(self._n_layer), p["lm_head.weight"])
        # the logits carry w(bias) either way: with bias on, the biases start at zero and alone would give the
        # decision no gradient until they have trained
        return logits * w(self._bias)

    # -- extraction -----------------------------------------------------------------------------------------------

    def subnet_settings(self, arch: str | GPTArch | Sequence[int] | np.ndarray) -> dict[str, Any]:
        """The build settings of :meth:`subnet`'s model: vocabulary (``num_classes``) and context (``image_size``,
        the sequence length of an example input). A standalone model is built with the variant's context, so a
        supernet with another one cannot hand its weights on."""
        self._arch(arch)
        if self.block_size != self.variant.block_size:
            raise ModnasError(
                f"{self.variant.name} supernet: its context of {self.block_size} tokens differs from the variant's "
                f"{self.variant.block_size}, which standalone models are built with"
            )
        return {"num_classes": self.vocab_size, "in_channels": 1, "image_size": self.block_size}

    @torch.no_grad()
    def subnet(self, arch: str | GPTArch | Sequence[int] | np.ndarray) -> GPT:
        """A standalone :class:`~modnas.spaces.gpt.network.GPT` of ``arch`` (key, :class:`GPTArch` or choice
        indices) holding the weights it inherits; the supernet's vocabulary and context."""
        a = self._arch(arch)
        net = GPT(a, self.vocab_size, self.block_size).to(self.wte.weight.device, self.wte.weight.dtype)
        net.load_state_dict({k: t.clone() for k, t in self._weights(a).items()})
        return net
