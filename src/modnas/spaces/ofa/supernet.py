"""The elastic OFA MobileNetV3 supernet for one-shot search: one set of weights, every architecture of the space.

Weight sharing as in Once-for-All (Cai et al., ICLR 2020), written from the paper's description:

* **kernel**: each block owns one depthwise 7x7 kernel; a 5x5 kernel is its centre, passed through a learned 25x25
  transform, and a 3x3 kernel the centre of that, through a 9x9 transform (both start as the identity and are
  shared by the block's channels);
* **expand ratio**: a block's hidden layer uses the leading ``make_divisible(C_in * e)`` channels of the widest
  one (e = 6), in the expand convolution, the depthwise convolution, squeeze-excite and the projection;
* **depth**: a stage of depth d runs its first d blocks;
* **resolution**: the input is resized to ``round(image_size * r / 224)`` pixels, so the resolution options keep
  their ratios at any ``image_size`` (a CPU search on 32-pixel images, the GPU configuration on ImageNet's 224).

``supernet(x, onehot, choices)`` follows the NB201 supernet's single-path convention: ``choices`` are the argmax
option of every decision (resolution, 5 depths, kernel and expand of 20 slots, the order of
:class:`~modnas.spaces.ofa.space.OFASpace`), only that path runs, and each decision's one-hot row ``w`` enters as
``w_k * out + sum_{i != k} w_i``, equal to ``out`` in value, so every logit receives a gradient through the
sampler's estimator. Decisions of inactive slots (beyond a stage's depth) receive none.

Batch normalisation always uses the batch's statistics of the active channels (the search never reads running
statistics). :meth:`ElasticMobileNetV3.subnet` extracts one architecture as a standalone
:class:`~modnas.spaces.ofa.network.OFAMobileNetV3` with the inherited weights (kernels cropped and transformed,
channels sliced): the network ``modnas train`` and ``modnas export`` use.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modnas.errors import ModnasError
from modnas.spaces.ofa.arch import DEPTHS, EXPANDS, KERNELS, NUM_STAGES, RESOLUTIONS, SLOTS_PER_STAGE, OFAArch
from modnas.spaces.ofa.network import (
    STAGE_ACTS,
    STAGE_SE,
    STAGE_STRIDES,
    OFAMobileNetV3,
    SEModule,
    _act,
    _conv_bn_act,
    mid_channels,
    se_channels,
    widths,
)

__all__ = ["ElasticBatchNorm2d", "ElasticMBConv", "ElasticMobileNetV3", "input_size"]

#: the resolution of OFA's largest networks: ``image_size`` pixels stand for it
FULL_RESOLUTION = 224


def input_size(resolution: int, image_size: int) -> int:
    """Pixels of the network input for OFA resolution ``resolution`` when ``image_size`` stands for 224."""
    return max(1, round(image_size * resolution / FULL_RESOLUTION))


def _through(row: Tensor, k: int, out: Tensor) -> Tensor:
    """``w_k * out + sum_{i != k} w_i`` for one decision's one-hot ``row``: ``out`` in value, a gradient for every
    option's weight."""
    wk = row[k]
    return wk * out + (row.sum() - wk)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """Batch normalisation of the leading ``x.shape[1]`` channels of its parameters and running statistics."""

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        return F.batch_norm(
            x, self.running_mean[:c] if self.running_mean is not None else None,
            self.running_var[:c] if self.running_var is not None else None,
            self.weight[:c] if self.affine else None, self.bias[:c] if self.affine else None,
            self.training or not self.track_running_stats, self.momentum or 0.0, self.eps,
        )


class ElasticMBConv(nn.Module):
    """An MBConv block at its largest (kernel 7, expand 6) whose kernel and hidden width are chosen per call."""

    def __init__(self, c_in: int, c_out: int, stride: int, act: str, se: bool) -> None:
        super().__init__()
        self.c_in, self.c_out, self.stride, self.act_name = c_in, c_out, stride, act
        self.max_mid = mid_channels(c_in, max(EXPANDS))
        k = max(KERNELS)
        self.expand_conv = nn.Conv2d(c_in, self.max_mid, 1, bias=False)
        self.expand_bn = ElasticBatchNorm2d(self.max_mid)
        self.depth_conv = nn.Conv2d(self.max_mid, self.max_mid, k, stride, k // 2, groups=self.max_mid, bias=False)
        self.depth_bn = ElasticBatchNorm2d(self.max_mid)
        # kernel transforms, identity at the start: 7 -> 5 on the 5x5 centre, 5 -> 3 on the 3x3 centre of that
        self.transform_5 = nn.Parameter(torch.eye(25))
        self.transform_3 = nn.Parameter(torch.eye(9))
        self.se = SEModule(self.max_mid) if se else None
        self.project_conv = nn.Conv2d(self.max_mid, c_out, 1, bias=False)
        self.project_bn = ElasticBatchNorm2d(c_out)
        self.act = _act(act)
        self.skip = stride == 1 and c_in == c_out

    def kernel(self, k: int, mid: int) -> Tensor:
        """The depthwise kernel ``(mid, 1, k, k)`` of kernel size ``k`` for the leading ``mid`` channels."""
        if k not in KERNELS:
            raise ModnasError(f"OFA supernet: kernel {k} is not one of {KERNELS}")
        w = self.depth_conv.weight[:mid]
        if k == 7:
            return w
        w5 = F.linear(w[:, :, 1:6, 1:6].reshape(mid, 25), self.transform_5).reshape(mid, 1, 5, 5)
        if k == 5:
            return w5
        return F.linear(w5[:, :, 1:4, 1:4].reshape(mid, 9), self.transform_3).reshape(mid, 1, 3, 3)

    def forward(self, x: Tensor, kernel: int, expand: int) -> Tensor:
        """The block's branch (without the skip) for one kernel size and expand ratio."""
        mid = mid_channels(self.c_in, expand)
        h = self.act(self.expand_bn(F.conv2d(x, self.expand_conv.weight[:mid])))
        h = F.conv2d(h, self.kernel(kernel, mid), None, self.stride, kernel // 2, 1, mid)
        h = self.act(self.depth_bn(h))
        if self.se is not None:
            s = se_channels(mid)
            fc = self.se.fc
            z = h.mean((2, 3), keepdim=True)
            z = F.relu(F.conv2d(z, fc.reduce.weight[:s, :mid], fc.reduce.bias[:s]))
            h = h * F.hardsigmoid(F.conv2d(z, fc.expand.weight[:mid, :s], fc.expand.bias[:mid]))
        return self.project_bn(F.conv2d(h, self.project_conv.weight[:, :mid]))


class ElasticMobileNetV3(nn.Module):
    """The OFA MobileNetV3 supernet (d234, e346, k357) at ``width_mult`` for ``image_size``-pixel inputs."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width_mult: float = 1.2,
        image_size: int = FULL_RESOLUTION,
        resolutions: Sequence[int] = RESOLUTIONS,
    ) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels), ("image_size", image_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModnasError(f"OFA supernet: {name} must be a positive integer, got {value!r}")
        self.num_classes, self.in_channels = num_classes, in_channels
        self.width_mult, self.image_size = width_mult, image_size
        self.resolutions = tuple(resolutions)
        w = widths(width_mult)
        self.widths = w
        self.first_conv = _conv_bn_act(in_channels, w.first_conv, 3, 2, "h_swish")
        # the fixed first block: expand 1, kernel 3, identity skip when the widths agree (as in OFA)
        first = OrderedDict(
            depth_conv=_conv_bn_act(w.first_conv, w.first_conv, 3, 1, "relu", groups=w.first_conv),
            point_linear=_conv_bn_act(w.first_conv, w.first_block, 1, 1, None),
        )
        self.first_block = nn.Sequential(first)
        self.first_skip = w.first_conv == w.first_block
        blocks = []
        c = w.first_block
        for stage in range(NUM_STAGES):
            for slot in range(SLOTS_PER_STAGE):
                stride = STAGE_STRIDES[stage] if slot == 0 else 1
                blocks.append(ElasticMBConv(c, w.stages[stage], stride, STAGE_ACTS[stage], STAGE_SE[stage]))
                c = w.stages[stage]
        self.blocks = nn.ModuleList(blocks)
        self.final_expand_layer = _conv_bn_act(w.stages[-1], w.final_expand, 1, 1, "h_swish")
        self.feature_mix = nn.Conv2d(w.final_expand, w.feature_mix, 1, bias=False)
        self.classifier = nn.Linear(w.feature_mix, num_classes)
        for module in list(self.modules()):  # the standalone network's normalisation layers are elastic here too
            for name, child in list(module.named_children()):
                if type(child) is nn.BatchNorm2d:
                    setattr(module, name, ElasticBatchNorm2d(child.num_features))

    @property
    def num_decisions(self) -> int:
        return 1 + NUM_STAGES + 2 * NUM_STAGES * SLOTS_PER_STAGE

    def forward(self, x: Tensor, onehot: Tensor, choices: Sequence[int]) -> Tensor:
        """Logits of the architecture ``choices`` (option index per decision), differentiable in ``onehot``
        ``(decisions, options)``."""
        if len(choices) != self.num_decisions:
            raise ModnasError(f"OFA supernet: {len(choices)} choices given, the space has {self.num_decisions}")
        r = self.resolutions[choices[0]]
        size = input_size(r, self.image_size)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        x = _through(onehot[0], choices[0], x)
        x = self.first_conv(x)
        y = self.first_block(x)
        x = y + x if self.first_skip else y
        for stage in range(NUM_STAGES):
            depth_choice = choices[1 + stage]
            for b in range(DEPTHS[depth_choice]):
                slot = stage * SLOTS_PER_STAGE + b
                kc, ec = choices[6 + 2 * slot], choices[7 + 2 * slot]
                block = self.blocks[slot]
                out = block(x, KERNELS[kc], EXPANDS[ec])
                out = _through(onehot[7 + 2 * slot], ec, _through(onehot[6 + 2 * slot], kc, out))
                x = out + x if block.skip else out
            x = _through(onehot[1 + stage], depth_choice, x)
        x = self.final_expand_layer(x)
        x = F.hardswish(self.feature_mix(x.mean((2, 3), keepdim=True)))
        return self.classifier(x.flatten(1))

    def subnet_settings(self, arch: OFAArch | str) -> dict[str, Any]:
        """The build settings of :meth:`subnet`'s network and the side of its input (the supernet resizes its input
        to the architecture's share of ``image_size``; a deployment feeds images of that side)."""
        arch = OFAArch.from_key(arch) if isinstance(arch, str) else arch
        return {"num_classes": self.num_classes, "in_channels": self.in_channels, "width_mult": self.width_mult,
                "image_size": input_size(arch.r, self.image_size)}

    @torch.no_grad()
    def subnet(self, arch: OFAArch | str) -> OFAMobileNetV3:
        """A standalone network of ``arch`` (an :class:`OFAArch` or its key) holding the weights it inherits from
        this supernet; its input is :meth:`subnet_settings`' ``image_size``."""
        arch = OFAArch.from_key(arch) if isinstance(arch, str) else arch
        if arch.r not in self.resolutions:
            raise ModnasError(f"OFA supernet: resolution {arch.r} is not one of its {len(self.resolutions)} options")
        net = OFAMobileNetV3(arch, self.num_classes, self.width_mult, self.in_channels)
        net.first_conv.load_state_dict(self.first_conv.state_dict())
        first = net.blocks[0].conv
        first.depth_conv.load_state_dict(self.first_block.depth_conv.state_dict())
        first.point_linear.load_state_dict(self.first_block.point_linear.state_dict())
        for target, (_, slot, kernel, expand) in zip(net.blocks[1:], arch.blocks()):
            _copy_block(self.blocks[slot], target.conv, kernel, expand)
        net.final_expand_layer.load_state_dict(self.final_expand_layer.state_dict())
        net.feature_mix_layer.conv.weight.copy_(self.feature_mix.weight)
        net.classifier.linear.load_state_dict(self.classifier.state_dict())
        return net


def _copy_bn(source: nn.BatchNorm2d, target: nn.BatchNorm2d) -> None:
    c = target.num_features
    target.weight.copy_(source.weight[:c])
    target.bias.copy_(source.bias[:c])
    target.running_mean.copy_(source.running_mean[:c])  # type: ignore[index]
    target.running_var.copy_(source.running_var[:c])  # type: ignore[index]


def _copy_block(block: ElasticMBConv, target: nn.Module, kernel: int, expand: int) -> None:
    mid = mid_channels(block.c_in, expand)
    if target.inverted_bottleneck is None:  # pragma: no cover - expand ratios 3-6 always widen
        raise ModnasError("OFA supernet: a searchable block without an expand layer")
    target.inverted_bottleneck.conv.weight.copy_(block.expand_conv.weight[:mid])
    _copy_bn(block.expand_bn, target.inverted_bottleneck.bn)
    target.depth_conv.conv.weight.copy_(block.kernel(kernel, mid))
    _copy_bn(block.depth_bn, target.depth_conv.bn)
    if block.se is not None:
        s = se_channels(mid)
        src, dst = block.se.fc, target.depth_conv.se.fc
        dst.reduce.weight.copy_(src.reduce.weight[:s, :mid])
        dst.reduce.bias.copy_(src.reduce.bias[:s])
        dst.expand.weight.copy_(src.expand.weight[:mid, :s])
        dst.expand.bias.copy_(src.expand.bias[:mid])
    target.point_linear.conv.weight.copy_(block.project_conv.weight[:, :mid])
    _copy_bn(block.project_bn, target.point_linear.bn)

