"""Standalone source of an NB201 network: what ``modnas export`` writes beside the chosen architecture's JSON."""

from __future__ import annotations

from typing import Any

MODULE_TEMPLATE = '''"""NAS-Bench-201 network exported by modnas: no modnas needed, only PyTorch.

Run: {run}
Device: {device}; preference (error, latency): {preference}
Predicted: error {predicted_error:.2f} %, latency {predicted_latency_ms:.3g} ms{true_note}

Build with ``build()``; ``ARCH_STR`` is the architecture. Weights are not included: train it with your own
loop (the choice and its metrics are in {json_name}).
"""

import torch
from torch import nn

ARCH_STR = "{arch_str}"
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride=1):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


def make_op(name, channels):
    return {{
        "none": lambda: Zero(),
        "skip_connect": lambda: nn.Identity(),
        "nor_conv_1x1": lambda: ReLUConvBN(channels, channels, 1),
        "nor_conv_3x3": lambda: ReLUConvBN(channels, channels, 3),
        "avg_pool_3x3": lambda: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
    }}[name]()


def parse(arch_str):
    return [token.split("~")[0] for group in arch_str.split("+") for token in group.strip("|").split("|")]


class Cell(nn.Module):
    def __init__(self, ops, channels):
        super().__init__()
        self.edges = nn.ModuleList(make_op(op, channels) for op in ops)

    def forward(self, x):
        nodes = [x]
        for target in range(1, 4):
            nodes.append(sum(self.edges[k](nodes[src]) for k, (dst, src) in enumerate(EDGES) if dst == target))
        return nodes[3]


class ResidualReduction(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(kernel_size=2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x):
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class Network(nn.Module):
    def __init__(self, arch_str=ARCH_STR, C=16, N=5, num_classes=10, in_channels=3):
        super().__init__()
        ops = parse(arch_str)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers, width = [], C
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(width, width * 2))
                width *= 2
            layers.extend(Cell(ops, width) for _ in range(N))
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.classifier(self.head(self.cells(self.stem(x))))


def build(num_classes=10, C=16, N=5, in_channels=3):
    return Network(ARCH_STR, C=C, N=N, num_classes=num_classes, in_channels=in_channels)


if __name__ == "__main__":
    net = build()
    print(ARCH_STR, sum(p.numel() for p in net.parameters()), "parameters")
    print(net(torch.zeros(1, 3, 32, 32)).shape)
'''


def module_source(choice: dict[str, Any]) -> str:
    """Python source that builds ``choice['arch_str']`` with PyTorch only (no modnas); ``choice`` holds the run,
    device, preference, predicted (and, where known, true) metrics and ``json_name``, the file beside it."""
    true_note = (
        f"\nTrue (NB201 table): error {choice['true_error']:.2f} %, latency {choice['true_latency_ms']:.3g} ms"
        if choice.get("true_latency_ms") is not None
        else ""
    )
    return MODULE_TEMPLATE.format(true_note=true_note, **choice)
