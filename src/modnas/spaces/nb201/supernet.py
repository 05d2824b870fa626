"""The one-shot NAS-Bench-201 supernet of MODNAS, searched with one sampled architecture per forward.

Layout (CIFAR: ``C=16, N=5``): the stem and the residual reduction blocks of the standalone network
(:mod:`modnas.spaces.nb201.network`), ``3 N`` search cells that all share one ``(6, 5)`` architecture, then BN, ReLU,
global average pool and a linear classifier.

* Search convolutions are ReLU -> Conv(bias) -> BN(affine=False, track_running_stats=False): the BN holds no
  parameters and no statistics, so the weights of every op are shared by all architectures without any
  architecture-specific state.
* Single-path mixed op (GDAS style): with one-hot weights ``w`` and ``k = argmax w`` an edge returns
  ``w_k op_k(x) + sum_{i != k} w_i``. Only op ``k`` runs; the other ``w_i`` are 0 in value, so the output is that of
  op ``k``, yet every logit receives a gradient through the estimator of the sampler.
* Entanglement (default on): ``nor_conv_1x1`` owns no weights; it applies the centre tap of the edge's
  ``nor_conv_3x3`` kernel (and its bias) with padding 0.

Op columns follow modnas' canonical order :data:`~modnas.spaces.nb201.encoding.OPS`
(``none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3``), edges the order of
:data:`~modnas.spaces.nb201.encoding.EDGES`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modnas.errors import ModnasError
from modnas.spaces.nb201.encoding import EDGES, NUM_EDGES, NUM_OPS, OPS
from modnas.spaces.nb201.network import macro_skeleton

NONE, SKIP, CONV1, CONV3, POOL = range(NUM_OPS)
assert OPS[CONV1] == "nor_conv_1x1" and OPS[CONV3] == "nor_conv_3x3" and OPS[POOL] == "avg_pool_3x3"


class SearchConv(nn.Module):
    """ReLU -> Conv(k, bias) -> BN(affine=False, no running stats): the conv op of the search network."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=True)
        self.bn = nn.BatchNorm2d(channels, affine=False, track_running_stats=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(F.relu(x)))

    def centre(self, x: Tensor) -> Tensor:
        """The entangled 1x1 conv: the centre tap of this 3x3 kernel and its bias, padding 0, same ReLU and BN."""
        weight = self.conv.weight[:, :, 1:2, 1:2]
        return self.bn(F.conv2d(F.relu(x), weight, self.conv.bias))


class MixedEdge(nn.Module):
    """One edge of a search cell: the five NB201 ops, of which only the sampled one runs."""

    def __init__(self, channels: int, entangle: bool = True) -> None:
        super().__init__()
        self.entangle = entangle
        self.conv3 = SearchConv(channels, 3)
        # entangled: no weights of its own (the centre of conv3); otherwise a separate 1x1 conv
        self.conv1 = None if entangle else SearchConv(channels, 1)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def op(self, k: int, x: Tensor) -> Tensor:
        """Output of op ``k`` (canonical column) on ``x``."""
        if k == NONE:
            return torch.zeros_like(x)
        if k == SKIP:
            return x
        if k == CONV1:
            return self.conv3.centre(x) if self.conv1 is None else self.conv1(x)
        if k == CONV3:
            return self.conv3(x)
        return self.pool(x)

    def forward(self, x: Tensor, weights: Tensor, k: int) -> Tensor:
        """``w_k op_k(x) + sum_{i != k} w_i`` for this edge's one-hot row ``weights`` (5,) and ``k = argmax``."""
        wk = weights[k]
        # the sum of the other weights is 0 in value; it is added only so that their logits get a gradient
        return wk * self.op(k, x) + (weights.sum() - wk)


class SearchCell(nn.Module):
    """A 4-node NB201 cell whose six edges are :class:`MixedEdge` s."""

    def __init__(self, channels: int, entangle: bool = True) -> None:
        super().__init__()
        self.edges = nn.ModuleList(MixedEdge(channels, entangle) for _ in range(NUM_EDGES))

    def forward(self, x: Tensor, onehot: Tensor, ops: list[int]) -> Tensor:
        nodes = [x]
        for target in range(1, 4):
            total: Tensor | None = None
            for e, (dst, src) in enumerate(EDGES):
                if dst == target:
                    out = self.edges[e](nodes[src], onehot[e], ops[e])
                    total = out if total is None else total + out
            assert total is not None
            nodes.append(total)
        return nodes[3]


class NB201Supernet(nn.Module):
    """The NB201 one-shot network: ``forward(x, onehot)`` runs the single architecture of ``onehot`` (6, 5).

    ``onehot`` must be one-hot in value (a ReinMax or GDAS sample); gradients with respect to it are those of the
    single-path estimator. All ``3 N`` cells use the same architecture.
    """

    def __init__(
        self, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3, entangle: bool = True
    ) -> None:
        super().__init__()
        for name, value in (("C", C), ("N", N), ("num_classes", num_classes), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModnasError(f"supernet {name} must be a positive integer, got {value!r}")
        self.C, self.N, self.num_classes, self.in_channels, self.entangle = C, N, num_classes, in_channels, entangle
        stem, layers, head, classifier = macro_skeleton(in_channels, C, N, num_classes, lambda width: SearchCell(width, entangle))
        # registered in the original order, so parameters() (and optimiser states) keep their order
        self.stem, self.cells, self.head, self.classifier = stem, nn.ModuleList(layers), head, classifier

    def forward(self, x: Tensor, onehot: Tensor, ops: list[int] | None = None) -> Tensor:
        """Class logits ``(B, num_classes)`` of the architecture ``onehot`` (6, 5) on images ``x`` (B, c, H, W).

        ``ops`` (the argmax of ``onehot`` per edge) may be passed by a caller that already knows it, which spares a
        device-to-host copy when ``onehot`` lives on a GPU.
        """
        if onehot.shape != (NUM_EDGES, NUM_OPS):
            raise ModnasError(f"the supernet takes one ({NUM_EDGES}, {NUM_OPS}) one-hot, got {tuple(onehot.shape)}")
        if ops is None:
            # one host sync per forward for the op choice, not one per edge and cell
            ops = onehot.detach().argmax(dim=-1).tolist()
        out = self.stem(x)
        for layer in self.cells:
            out = layer(out, onehot, ops) if isinstance(layer, SearchCell) else layer(out)
        return self.classifier(self.head(out))


def count_supernet_parameters(net: nn.Module) -> int:
    """Trainable parameters of a network (weights shared by all architectures of the supernet)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


__all__ = ["MixedEdge", "NB201Supernet", "SearchCell", "SearchConv", "count_supernet_parameters"]
