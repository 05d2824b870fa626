"""Standalone source of a chosen GPT: what ``modnas export`` writes beside the architecture's JSON.

The module needs only PyTorch. Its network classes are the source of :mod:`modnas.spaces.gpt.network` itself
(copied by :func:`inspect.getsource`, so the two cannot drift apart), with the architecture written out as plain
values; a state dict of ``modnas train`` or of a supernet's ``subnet()`` loads into it.
"""

from __future__ import annotations

import inspect
import json
import pprint
from typing import Any

from modnas.spaces.gpt import network
from modnas.spaces.gpt.arch import GPTArch

HEADER = '''"""GPT exported by modnas: no modnas needed, only PyTorch.

Architecture: {arch_str}
({n_layer} layers, embedding {embed}, bias {bias}; vocabulary {vocab}, context {block})
Run: {run}
Device: {device}; preference: {preference}

Build with ``build()``: ``forward(tokens (B, T)) -> logits (B, T, vocabulary)``. Weights are not included: train
it, or load the state dict of ``modnas train`` or of a modnas supernet's ``subnet()`` (same module names). The
choice and its metrics are in {json_name}.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import Tensor, nn
from torch.nn import functional as F

ModnasError = ValueError  # what the network raises for a too-long sequence

ARCH_KEY = {arch_key!r}
ARCH = SimpleNamespace(
    variant=SimpleNamespace(head_size={head_size!r}, vocab_size={vocab!r}, block_size={block!r}),
    embed={embed!r}, n_layer={n_layer!r}, mlp_ratios={mlp!r}, heads={heads!r}, bias={bias!r},
)
SOURCE = {source}
'''

FOOTER = '''

def build(vocab_size=None, block_size=None):
    """The network of ``ARCH_KEY`` (its variant's vocabulary and context unless given)."""
    return GPT(ARCH, vocab_size, block_size)
'''

#: the pieces of :mod:`modnas.spaces.gpt.network` the module needs, in definition order
PIECES = (network.CausalSelfAttention, network.attention, network.MLP, network.Block, network.GPT, network.init_weights)
SOURCE_FIELDS = ("run", "device", "preference", "predicted_error", "predicted_latency_ms", "true_error",
                 "true_latency_ms")  # fmt: skip


def _text(value: Any) -> str:
    """A value for the module docstring: one line, no quotes that could end it."""
    return str(value).replace('"""', "'''").replace("\n", " ")


def module_source(arch: GPTArch, choice: dict[str, Any]) -> str:
    """Python source that builds ``arch`` with PyTorch only; ``choice`` holds the run, device, preference and
    metrics (kept in ``SOURCE``) and ``json_name``."""
    known = {k: choice[k] for k in SOURCE_FIELDS if choice.get(k) is not None}
    source = json.loads(json.dumps(known, default=float))  # numpy scalars become plain numbers
    v = arch.variant
    header = HEADER.format(
        arch_str=arch.key, arch_key=arch.key, n_layer=arch.n_layer, embed=arch.embed, bias=arch.bias,
        vocab=v.vocab_size, block=v.block_size, head_size=v.head_size, mlp=arch.mlp_ratios, heads=arch.heads,
        run=_text(choice.get("run", "unknown")), device=_text(choice.get("device", "unknown")),
        preference=_text(choice.get("preference", "unknown")),
        json_name=_text(choice.get("json_name", "the exported JSON")),
        source=pprint.pformat(source, width=110, sort_dicts=False),
    )  # fmt: skip
    body = "\n\n".join(inspect.getsource(piece) for piece in PIECES)
    return header + "\n\n" + body + FOOTER
