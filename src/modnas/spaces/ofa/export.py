"""Standalone source of an OFA MobileNetV3 subnet: what ``modnas export`` writes beside the chosen architecture's
JSON.

The module it writes needs only PyTorch and builds the network of :func:`modnas.spaces.ofa.network.build_network`
with the same module names, so a state dict of one loads into the other (and of an OFA ``get_active_subnet()``).
"""

from __future__ import annotations

import json
import pprint
from typing import Any

from modnas.spaces.ofa.arch import OFAArch

HEADER = '''"""OFA MobileNetV3 subnet exported by modnas: no modnas needed, only PyTorch.

Architecture: {arch_str} (input {resolution} x {resolution})
Run: {run}
Device: {device}; preference (error, latency): {preference}
{metrics}

Build with ``build()``; ``ARCH_KEY`` is the architecture, ``RESOLUTION`` its input size and ``SOURCE`` where it
came from. Weights are not included: train it, or load the state dict of the OFA supernet's subnet
(``get_active_subnet()``: same module names). The choice and its metrics are in {json_name}.
"""

import torch
from torch import nn

ARCH_KEY = {arch_key!r}
RESOLUTION = {resolution!r}
SOURCE = {source}
'''

# Plain text, not a format string: the network half of the module, mirroring modnas.spaces.ofa.network.
BODY = '''
# OFA's base widths: first conv, first block, the 5 stages, final expand layer, feature mix layer
BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
STAGE_STRIDES = (2, 2, 2, 1, 2)
STAGE_ACTS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
STAGE_SE = (False, True, False, True, True)


def make_divisible(value, divisor=8):
    """Round to a multiple of ``divisor``, never more than 10 % below (OFA's rule)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def parse(arch_key):
    """``r192_5333_...`` -> resolution, and per stage its blocks as (kernel, expand ratio) pairs."""
    head, *stages = arch_key.split("_")
    return int(head[1:]), [[(int(s[i]), int(s[i + 1])) for i in range(0, len(s), 2)] for s in stages]


def conv_bn_act(c_in, c_out, kernel, stride, act=None, groups=1):
    layers = nn.Sequential()
    layers.add_module("conv", nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False))
    layers.add_module("bn", nn.BatchNorm2d(c_out))
    if act is not None:
        layers.add_module("act", nn.Hardswish() if act == "h_swish" else nn.ReLU())
    return layers


class SEModule(nn.Module):
    def __init__(self, channels):
        super().__init__()
        mid = make_divisible(channels // 4)
        self.fc = nn.Sequential()
        self.fc.add_module("reduce", nn.Conv2d(channels, mid, 1, bias=True))
        self.fc.add_module("relu", nn.ReLU())
        self.fc.add_module("expand", nn.Conv2d(mid, channels, 1, bias=True))
        self.fc.add_module("h_sigmoid", nn.Hardsigmoid())

    def forward(self, x):
        return x * self.fc(x.mean((2, 3), keepdim=True))


class MBConv(nn.Module):
    def __init__(self, c_in, c_out, mid, kernel, stride, act, se):
        super().__init__()
        # no 1x1 expansion when the hidden width is the input width (the fixed first block)
        self.inverted_bottleneck = None if mid == c_in else conv_bn_act(c_in, mid, 1, 1, act)
        self.depth_conv = conv_bn_act(mid, mid, kernel, stride, act, groups=mid)
        if se:
            self.depth_conv.add_module("se", SEModule(mid))
        self.point_linear = conv_bn_act(mid, c_out, 1, 1)

    def forward(self, x):
        if self.inverted_bottleneck is not None:
            x = self.inverted_bottleneck(x)
        return self.point_linear(self.depth_conv(x))


class ResidualBlock(nn.Module):
    def __init__(self, c_in, c_out, mid, kernel, stride, act, se):
        super().__init__()
        self.conv = MBConv(c_in, c_out, mid, kernel, stride, act, se)
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else None

    def forward(self, x):
        out = self.conv(x)
        return out + x if self.shortcut is not None else out


class OFAMobileNetV3(nn.Module):
    def __init__(self, arch_key=ARCH_KEY, num_classes=1000, width_mult=1.2, in_channels=3, dropout=0.0):
        super().__init__()
        w = [make_divisible(b * width_mult) for b in BASE_WIDTHS]
        _, stages = parse(arch_key)
        self.first_conv = conv_bn_act(in_channels, w[0], 3, 2, "h_swish")
        blocks = [ResidualBlock(w[0], w[1], w[0], 3, 1, "relu", False)]
        c = w[1]
        for s, stage in enumerate(stages):
            for b, (kernel, expand) in enumerate(stage):
                stride = STAGE_STRIDES[s] if b == 0 else 1
                mid = make_divisible(round(c * expand))
                blocks.append(ResidualBlock(c, w[2 + s], mid, kernel, stride, STAGE_ACTS[s], STAGE_SE[s]))
                c = w[2 + s]
        self.blocks = nn.ModuleList(blocks)
        self.final_expand_layer = conv_bn_act(c, w[7], 1, 1, "h_swish")
        self.feature_mix_layer = nn.Sequential()
        self.feature_mix_layer.add_module("conv", nn.Conv2d(w[7], w[8], 1, bias=False))
        self.feature_mix_layer.add_module("act", nn.Hardswish())
        self.classifier = nn.Sequential()
        if dropout > 0:
            self.classifier.add_module("dropout", nn.Dropout(dropout))
        self.classifier.add_module("linear", nn.Linear(w[8], num_classes))

    def forward(self, x):
        x = self.first_conv(x)
        for block in self.blocks:
            x = block(x)
        x = self.feature_mix_layer(self.final_expand_layer(x).mean((2, 3), keepdim=True))
        return self.classifier(x.flatten(1))


def build(num_classes=1000, width_mult=1.2, in_channels=3, dropout=0.0):
    return OFAMobileNetV3(ARCH_KEY, num_classes, width_mult, in_channels, dropout)


if __name__ == "__main__":
    net = build().eval()
    print(ARCH_KEY, sum(p.numel() for p in net.parameters()), "parameters")
    with torch.no_grad():
        print(net(torch.zeros(1, 3, RESOLUTION, RESOLUTION)).shape)
'''


def _text(value: Any) -> str:
    """``value`` as text that cannot end the module docstring or start an escape in it (a Windows path)."""
    return str(value).replace("\\", "/").replace('"""', "'''")


def _metrics(choice: dict[str, Any]) -> str:
    """The predicted and, where known, the benchmark's metrics, one line each."""
    lines = []
    if choice.get("predicted_error") is not None and choice.get("predicted_latency_ms") is not None:
        lines.append(
            f"Predicted: error {choice['predicted_error']:.2f} %, latency {choice['predicted_latency_ms']:.3g} ms"
        )
    if choice.get("true_error") is not None:  # the OFA benchmark's error is itself a prediction
        lines.append(f"Benchmark error: {choice['true_error']:.2f} % (100 - the OFA accuracy predictor's top-1)")
    if choice.get("true_latency_ms") is not None:
        lines.append(f"Known latency: {choice['true_latency_ms']:.3g} ms (the device's table or measurement)")
    return "\n".join(lines)


#: the choice's fields ``SOURCE`` keeps (the rest is in the JSON beside the module)
SOURCE_FIELDS = ("run", "device", "preference", "predicted_error", "predicted_latency_ms", "true_error",
                 "true_latency_ms")  # fmt: skip


def module_source(choice: dict[str, Any]) -> str:
    """Python source that builds ``choice['arch_str']`` (a canonical OFA key) with PyTorch only; ``choice`` holds
    the run, device, preference, predicted (and, where known, true) metrics and ``json_name`` (the JSON beside
    it)."""
    arch = OFAArch.from_key(choice["arch_str"])
    # through JSON: numpy scalars become plain numbers, whose repr is valid Python without numpy
    known = {k: choice[k] for k in SOURCE_FIELDS if choice.get(k) is not None}
    source = json.loads(json.dumps(known, default=float))
    header = HEADER.format(
        arch_str=arch.key,
        resolution=arch.r,
        run=_text(choice.get("run", "unknown")),
        device=_text(choice.get("device", "unknown")),
        preference=_text(choice.get("preference", "unknown")),
        metrics=_text(_metrics(choice)),
        json_name=_text(choice.get("json_name", "the exported JSON")),
        arch_key=arch.key,
        source=pprint.pformat(source, width=110, sort_dicts=False),
    )
    return header + BODY
