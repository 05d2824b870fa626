"""Standalone NAS-Bench-201 networks: the exact macro skeleton whose parameter counts the benchmark reports.

Skeleton (CIFAR, ``C=16, N=5``): stem conv3x3 + BN; ``N`` cells at ``C``; a residual reduction block to ``2C``;
``N`` cells; a reduction block to ``4C``; ``N`` cells; BN + ReLU; global average pool; linear classifier.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from modnas.errors import ModnasError
from modnas.spaces.nb201.encoding import EDGES, OPS, ArchLike, as_indices, to_string


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BatchNorm, NB201's convolution op."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` op: an edge that carries nothing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    """One of the five NB201 ops at stride 1 and constant width."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ModnasError(f"unknown NB201 op {name!r}")


class Cell(nn.Module):
    """A 4-node NB201 cell: node i is the sum of its incoming edges; the output is node 3."""

    def __init__(self, ops: list[str], channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(make_op(op, channels) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in range(1, 4):
            nodes.append(
                sum(self.edges[k](nodes[src]) for k, (dst, src) in enumerate(EDGES) if dst == target)  # type: ignore[arg-type]
            )
        return nodes[3]


class ResidualReduction(nn.Module):
    """NB201's residual block between stages: doubles the width and halves the resolution."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


def macro_skeleton(
    in_channels: int, C: int, N: int, num_classes: int, make_cell: Callable[[int], nn.Module]
) -> tuple[nn.Module, list[nn.Module], nn.Module, nn.Module]:
    """NB201's macro layout, shared by standalone networks and the supernet: ``(stem, layers, head, classifier)``.

    Stem conv+BN; 3 stages of ``N`` cells (``make_cell(width)``) at widths C, 2C, 4C joined by residual
    reductions; BN-ReLU-pool head and a linear classifier.
    """
    stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
    layers: list[nn.Module] = []
    width = C
    for stage in range(3):
        if stage > 0:
            layers.append(ResidualReduction(width, width * 2))
            width *= 2
        layers.extend(make_cell(width) for _ in range(N))
    head = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return stem, layers, head, nn.Linear(width, num_classes)


class NB201Network(nn.Module):
    """A trainable network of one NB201 cell architecture (``arch_str`` is kept for export and logging)."""

    def __init__(self, arch: ArchLike, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        for name, value in (("C", C), ("N", N), ("num_classes", num_classes), ("in_channels", in_channels)):
            if value < 1:
                raise ModnasError(f"{name} must be a positive integer, got {value}")
        indices = as_indices(arch)
        if indices.ndim != 1:
            raise ModnasError("build_network takes one architecture, not a batch")
        self.arch_str = to_string(indices)
        ops = [OPS[i] for i in indices]
        stem, layers, head, classifier = macro_skeleton(in_channels, C, N, num_classes, lambda width: Cell(ops, width))
        # registered in the original order, so parameters() (and optimiser states) keep their order
        self.stem, self.cells, self.head, self.classifier = stem, nn.Sequential(*layers), head, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.cells(self.stem(x))))


def build_network(arch: ArchLike, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3) -> NB201Network:
    """Build the standalone NB201 network of ``arch`` (a string or 6 op indices) for CIFAR-sized input."""
    return NB201Network(arch, C=C, N=N, num_classes=num_classes, in_channels=in_channels)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (what NB201 reports, in millions, as "params")."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
