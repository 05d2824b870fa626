"""Standalone OFA MobileNetV3 subnets: the network OFA's ``get_active_subnet`` extracts from
``ofa_mbv3_d234_e346_k357_w1.2`` (or the ``w1.0`` supernet with ``width_mult=1.0``).

Skeleton (OFA ``OFAMobileNetV3`` / ``MobileNetV3``): 3x3 conv stride 2 + BN + h-swish; a fixed first MBConv
(expand 1, k3, identity skip); 5 stages of 2 to 4 MBConv blocks (widths
``make_divisible(base * width_mult, 8)`` of 24, 40, 80, 112, 160; first-block strides 2, 2, 2, 1, 2;
activations relu, relu, h-swish, h-swish, h-swish; squeeze-excite in stages 2, 4 and 5); the first block of a
stage has no skip, the others an identity skip; 1x1 conv to ``960 * width_mult`` + BN + h-swish; global
average pool; 1x1 conv to ``1280 * width_mult`` (no bias, no BN) + h-swish; dropout; linear classifier.

Module names follow OFA's (``first_conv.conv``, ``blocks.3.conv.depth_conv.se.fc.reduce``,
``classifier.linear``, ...), so a state dict of an OFA subnet has the same keys.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from modnas.errors import ModnasError
from modnas.spaces.ofa.arch import NUM_STAGES, OFAArch

#: OFA's base widths: first conv, first block, the 5 stages, final expand layer, feature mix layer.
BASE_WIDTHS: tuple[int, ...] = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
STAGE_STRIDES: tuple[int, ...] = (2, 2, 2, 1, 2)
STAGE_ACTS: tuple[str, ...] = ("relu", "relu", "h_swish", "h_swish", "h_swish")
STAGE_SE: tuple[bool, ...] = (False, True, False, True, True)
CHANNEL_DIVISIBLE = 8
SE_REDUCTION = 4


def make_divisible(value: float, divisor: int = CHANNEL_DIVISIBLE) -> int:
    """Round ``value`` to a multiple of ``divisor`` (at least ``divisor``, never more than 10% below), as OFA
    and the TensorFlow MobileNet code do."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@dataclass(frozen=True)
class Widths:
    """Channel counts of one width multiplier."""

    first_conv: int
    first_block: int
    stages: tuple[int, ...]
    final_expand: int
    feature_mix: int


def widths(width_mult: float = 1.2) -> Widths:
    """The channel counts OFA derives from its base widths (w1.2: 24, 24, 32/48/96/136/192, 1152, 1536)."""
    if not width_mult > 0:
        raise ModnasError(f"OFA MobileNetV3: width_mult must be positive, got {width_mult!r}")
    w = [make_divisible(b * width_mult) for b in BASE_WIDTHS]
    return Widths(w[0], w[1], tuple(w[2:7]), w[7], w[8])


def mid_channels(in_channels: int, expand: float) -> int:
    """Hidden width of an MBConv block.

    OFA's ``DynamicMBConvLayer.active_middle_channel`` uses ``make_divisible(round(in_c * e), 8)``; the
    Note10 latency table and the OFA tutorial use ``round(in_c * e)``. Every stage width of w1.0 and w1.2 is a
    multiple of 8 and the expand ratios are integers, so the two agree; this follows OFA's subnet
    extraction."""
    return make_divisible(round(in_channels * expand))


def se_channels(channels: int) -> int:
    """Squeeze width of OFA's SE module: ``make_divisible(channels // 4, 8)``."""
    return make_divisible(channels // SE_REDUCTION)


def conv_out(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded odd-kernel conv: ``(size - 1) // stride + 1``."""
    return (size - 1) // stride + 1


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block of a subnet: its input and output feature map, hidden width and options."""

    in_size: int
    in_channels: int
    out_size: int
    out_channels: int
    mid_channels: int
    kernel: int
    stride: int
    skip: bool
    se: bool
    act: str

    @property
    def expand(self) -> float:
        return self.mid_channels / self.in_channels


def block_specs(arch: OFAArch, width_mult: float = 1.2, resolution: int | None = None) -> list[BlockSpec]:
    """Every MBConv block of the subnet, the fixed first block included, in network order."""
    w = widths(width_mult)
    r = arch.r if resolution is None else _check_resolution(resolution)
    size = conv_out(r, 2)
    c, first_skip = w.first_conv, w.first_conv == w.first_block
    specs = [BlockSpec(size, c, size, w.first_block, c, 3, 1, first_skip, False, "relu")]
    c = w.first_block
    for stage, slot, kernel, expand in arch.blocks():
        first = slot % 4 == 0
        stride = STAGE_STRIDES[stage] if first else 1
        out_c, out_size = w.stages[stage], conv_out(size, stride)
        skip = stride == 1 and c == out_c
        mid = mid_channels(c, expand)
        specs.append(
            BlockSpec(size, c, out_size, out_c, mid, kernel, stride, skip, STAGE_SE[stage], STAGE_ACTS[stage])
        )
        c, size = out_c, out_size
    return specs


def _check_resolution(resolution: int) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ModnasError(f"OFA MobileNetV3: resolution must be a positive integer, got {resolution!r}")
    return resolution


def _act(name: str) -> nn.Module:
    # torch's Hardswish/Hardsigmoid compute OFA's x * relu6(x + 3) / 6 and relu6(x + 3) / 6
    return nn.Hardswish() if name == "h_swish" else nn.ReLU()


class SEModule(nn.Module):
    """OFA's squeeze-excite: global mean, 1x1 conv (bias) to ``make_divisible(C // 4, 8)``, ReLU, 1x1 conv
    (bias) back to ``C``, h-sigmoid, channel-wise scale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = se_channels(channels)
        self.fc = nn.Sequential(
            OrderedDict(
                reduce=nn.Conv2d(channels, mid, 1, bias=True),
                relu=nn.ReLU(),
                expand=nn.Conv2d(mid, channels, 1, bias=True),
                h_sigmoid=nn.Hardsigmoid(),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean((2, 3), keepdim=True))


def _conv_bn_act(
    c_in: int, c_out: int, kernel: int, stride: int, act: str | None, groups: int = 1
) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv=nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        bn=nn.BatchNorm2d(c_out),
    )
    if act is not None:
        layers["act"] = _act(act)
    return nn.Sequential(layers)


class MBConv(nn.Module):
    """Inverted bottleneck: 1x1 expand + BN + act (absent when the hidden width equals the input width, i.e.
    expand ratio 1), depthwise kxk + BN + act (+ SE), 1x1 project + BN."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        mid = spec.mid_channels
        self.inverted_bottleneck = (
            None if mid == spec.in_channels else _conv_bn_act(spec.in_channels, mid, 1, 1, spec.act)
        )
        self.depth_conv = _conv_bn_act(mid, mid, spec.kernel, spec.stride, spec.act, groups=mid)
        if spec.se:
            self.depth_conv.add_module("se", SEModule(mid))
        self.point_linear = _conv_bn_act(mid, spec.out_channels, 1, 1, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inverted_bottleneck is not None:
            x = self.inverted_bottleneck(x)
        return self.point_linear(self.depth_conv(x))


class ResidualBlock(nn.Module):
    """An MBConv with an optional identity shortcut."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.spec = spec
        self.conv = MBConv(spec)
        self.shortcut = nn.Identity() if spec.skip else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out + x if self.shortcut is not None else out


class OFAMobileNetV3(nn.Module):
    """One OFA MobileNetV3 subnet (see the module docstring); works at any input resolution."""

    def __init__(
        self,
        arch: OFAArch,
        num_classes: int = 1000,
        width_mult: float = 1.2,
        in_channels: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModnasError(f"OFA MobileNetV3: {name} must be a positive integer, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ModnasError(f"OFA MobileNetV3: dropout must be in [0, 1), got {dropout!r}")
        self.arch = arch
        w = widths(width_mult)
        self.first_conv = _conv_bn_act(in_channels, w.first_conv, 3, 2, "h_swish")
        self.blocks = nn.ModuleList(ResidualBlock(s) for s in block_specs(arch, width_mult))
        self.final_expand_layer = _conv_bn_act(w.stages[NUM_STAGES - 1], w.final_expand, 1, 1, "h_swish")
        self.feature_mix_layer = nn.Sequential(
            OrderedDict(conv=nn.Conv2d(w.final_expand, w.feature_mix, 1, bias=False), act=nn.Hardswish())
        )
        classifier: OrderedDict[str, nn.Module] = OrderedDict()
        if dropout > 0:
            classifier["dropout"] = nn.Dropout(dropout)
        classifier["linear"] = nn.Linear(w.feature_mix, num_classes)
        self.classifier = nn.Sequential(classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        for block in self.blocks:
            x = block(x)
        x = self.final_expand_layer(x)
        x = self.feature_mix_layer(x.mean((2, 3), keepdim=True))
        return self.classifier(x.flatten(1))


def build_network(
    arch: OFAArch,
    num_classes: int = 1000,
    width_mult: float = 1.2,
    in_channels: int = 3,
    dropout: float = 0.0,
) -> OFAMobileNetV3:
    """The standalone subnet of ``arch`` (randomly initialised; the resolution is only the input size)."""
    return OFAMobileNetV3(arch, num_classes, width_mult, in_channels, dropout)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_arch_parameters(
    arch: OFAArch, width_mult: float = 1.2, num_classes: int = 1000, in_channels: int = 3
) -> int:
    """Trainable parameters of ``build_network(arch, ...)`` without building it: conv weights, BN weight and
    bias, the SE convs' biases and the classifier's bias (the feature mix conv has no bias)."""
    w = widths(width_mult)
    params = in_channels * 9 * w.first_conv + 2 * w.first_conv
    for b in block_specs(arch, width_mult):
        if b.mid_channels != b.in_channels:
            params += b.in_channels * b.mid_channels + 2 * b.mid_channels
        params += b.kernel * b.kernel * b.mid_channels + 2 * b.mid_channels
        if b.se:
            s = se_channels(b.mid_channels)
            params += 2 * b.mid_channels * s + s + b.mid_channels
        params += b.mid_channels * b.out_channels + 2 * b.out_channels
    params += w.stages[-1] * w.final_expand + 2 * w.final_expand
    params += w.final_expand * w.feature_mix + w.feature_mix * num_classes + num_classes
    return params


def count_macs(
    arch: OFAArch,
    resolution: int | None = None,
    width_mult: float = 1.2,
    num_classes: int = 1000,
    in_channels: int = 3,
) -> int:
    """Multiply-accumulates of the convolutions and the linear layer for one image at ``arch.r`` (or
    ``resolution``), as OFA's ``profile`` counts them: ``C_in / groups * k * k`` per output element; biases,
    BN, activations, pooling and the SE scaling are not counted."""
    w = widths(width_mult)
    r = arch.r if resolution is None else _check_resolution(resolution)
    size = conv_out(r, 2)
    macs = in_channels * 9 * w.first_conv * size * size
    for b in block_specs(arch, width_mult, r):
        hw_in, hw_out = b.in_size * b.in_size, b.out_size * b.out_size
        if b.mid_channels != b.in_channels:
            macs += b.in_channels * b.mid_channels * hw_in
        macs += b.kernel * b.kernel * b.mid_channels * hw_out
        if b.se:
            macs += 2 * b.mid_channels * se_channels(b.mid_channels)
        macs += b.mid_channels * b.out_channels * hw_out
        size = b.out_size
    macs += w.stages[-1] * w.final_expand * size * size
    macs += w.final_expand * w.feature_mix + w.feature_mix * num_classes
    return macs
