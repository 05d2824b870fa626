"""Tests for the standalone OFA MobileNetV3 subnets, checked against DyNAS-T's parameter and MAC counts.

Outside reference: ``ofa_dynast_w10_imagenet_top1.csv.gz`` (DyNAS-T example runs of 2022-11 on the OFA
``ofa_mbv3_d234_e346_k357_w1.0`` supernet at r=224; 2,373 rows, 2,162 distinct architectures, every row has
``params`` and ``macs``). DyNAS-T counted parameters as the sum of ``numel`` of the subnet's parameters and
MACs with fvcore's ``FlopCountAnalysis`` on a 1x3x224x224 input. With ``width_mult=1.0``:

- ``count_arch_parameters`` equals ``params`` and ``count_macs`` equals ``macs`` **exactly on all 2,373 rows**
  (max deviation 0 for both): the counted layers are the convolutions (``C_in / groups * k * k`` per output
  element, the SE convs included, no biases) and the classifier, as OFA's ``ofa.utils.flops_counter.profile``
  counts them.
- ``count_parameters(build_network(...))`` equals ``params`` exactly on a seeded sample of 100 distinct
  architectures (building all 2,162 networks takes minutes on 2 busy CPU cores; done once, all equal).

Checked once against OFA's own code (PyPI ``ofa`` 0.1.0.post202307202001, torchvision stubbed out since only its
data loaders use it; 2-core AMD EPYC CPU, 2026-11-29): for 12 random subnets (w1.0 and w1.2, r 128/132/160/224)
of a randomly initialised ``OFAMobileNetV3`` supernet, the state dict of ``get_active_subnet()`` loads into
``build_network`` with ``strict=True``, the outputs agree to 7e-8 (float32), the parameter counts are equal, and
``ofa.utils.flops_counter.profile`` differs from ``count_macs`` by at most 16 MACs, because it accumulates in
float32.

Regression values for w1.2 (recorded after the w1.0 rule matched DyNAS-T): the largest subnet (d=4, k=7, e=6
everywhere) has 10,701,632 parameters and 843,101,040 MACs at r=224; the smallest (d=2, k=3, e=3) has
4,602,456 parameters and 193,078,200 MACs at r=224. For w1.0 the same two have 7,664,760 and 3,410,792
parameters.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from modnas.errors import ModnasError
from modnas.spaces.ofa.arch import OFAArch
from modnas.spaces.ofa.network import (
    block_specs,
    build_network,
    count_arch_parameters,
    count_macs,
    count_parameters,
    make_divisible,
    mid_channels,
    se_channels,
    widths,
)

TUTORIAL_KEY = "r192_5333_5434_767334_54547433_363656"  # the OFA tutorial's Note10 architecture
LARGEST = OFAArch(224, (4,) * 5, (7,) * 20, (6,) * 20)
SMALLEST = OFAArch(224, (2,) * 5, (3,) * 20, (3,) * 20)


def _arch_from_row(row: pd.Series) -> OFAArch:
    return OFAArch.from_dict(
        {
            "r": int(row["r"]),
            "d": [int(row[f"d{s}"]) for s in range(5)],
            "ks": [int(row[f"ks{i}"]) for i in range(20)],
            "e": [int(row[f"e{i}"]) for i in range(20)],
        }
    )


@pytest.fixture(scope="module")
def dynast() -> pd.DataFrame:
    path = resources.files("modnas.spaces.ofa").joinpath("data", "ofa_dynast_w10_imagenet_top1.csv.gz")
    with resources.as_file(path) as p:
        frame = pd.read_csv(p)
    frame["arch"] = [_arch_from_row(row) for _, row in frame.iterrows()]
    return frame


def _meta_network(arch: OFAArch, **kwargs) -> nn.Module:
    # the meta device skips weight allocation: shapes and parameter counts only
    with torch.device("meta"):
        return build_network(arch, **kwargs)


def hook_macs(net: nn.Module, resolution: int, in_channels: int = 3) -> int:
    """MACs by OFA's counting rule, from the shapes a forward pass actually produces."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out) -> None:
        nonlocal total
        total += m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1] * out.numel()

    def linear_hook(m: nn.Linear, _inp, _out) -> None:
        nonlocal total
        total += m.in_features * m.out_features

    handles = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, in_channels, resolution, resolution))
    for h in handles:
        h.remove()
    return total


def test_make_divisible_matches_ofa_rule():
    scaled = (16 * 1.2, 24 * 1.2, 40 * 1.2, 112 * 1.2, 160 * 1.2)
    assert [make_divisible(v) for v in scaled] == [24, 32, 48, 136, 192]
    assert make_divisible(3) == 8  # never below the divisor
    assert make_divisible(20) == 24  # 16 would be more than 10% below
    assert se_channels(72) == 24 and se_channels(120) == 32 and se_channels(1152) == 288


def test_widths_of_both_supernets():
    w12, w10 = widths(1.2), widths(1.0)
    assert (w12.first_conv, w12.first_block, w12.stages, w12.final_expand, w12.feature_mix) == (
        24, 24, (32, 48, 96, 136, 192), 1152, 1536,
    )  # fmt: skip
    assert (w10.first_conv, w10.first_block, w10.stages, w10.final_expand, w10.feature_mix) == (
        16, 16, (24, 40, 80, 112, 160), 960, 1280,
    )  # fmt: skip
    # mid channels: OFA's make_divisible(round(in * e), 8) equals the README's round(in * e) on every width
    for c in (w12.first_block, *w12.stages, w10.first_block, *w10.stages):
        for e in (3, 4, 6):
            assert mid_channels(c, e) == round(c * e)


def test_block_specs_follow_the_macro_net():
    arch = OFAArch.from_key(TUTORIAL_KEY)
    specs = block_specs(arch)
    assert len(specs) == 1 + sum(arch.d)
    first = specs[0]
    assert (first.in_size, first.in_channels, first.out_channels, first.mid_channels) == (96, 24, 24, 24)
    assert first.kernel == 3 and first.stride == 1
    assert first.skip and not first.se and first.act == "relu"
    stage_starts = np.cumsum([1, *arch.d[:-1]])
    assert [specs[i].stride for i in stage_starts] == [2, 2, 2, 1, 2]
    assert [specs[i].skip for i in stage_starts] == [False] * 5
    assert all(s.skip and s.stride == 1 for i, s in enumerate(specs[1:], 1) if i not in stage_starts)
    assert [specs[i].se for i in stage_starts] == [False, True, False, True, True]
    assert [specs[i].act for i in stage_starts] == ["relu", "relu", "h_swish", "h_swish", "h_swish"]
    assert [s.out_size for s in specs][-1] == 6  # 192 -> 96 -> 48 -> 24 -> 12 -> 12 -> 6
    assert [(s.kernel, round(s.expand)) for s in specs[1:3]] == [(5, 3), (3, 3)]


def test_all_dynast_rows_match_params_and_macs_exactly(dynast):
    params = np.array([count_arch_parameters(a, width_mult=1.0) for a in dynast["arch"]])
    macs = np.array([count_macs(a, width_mult=1.0) for a in dynast["arch"]])
    assert len(dynast) == 2373 and dynast["params"].notna().all() and dynast["macs"].notna().all()
    assert np.abs(params - dynast["params"].to_numpy()).max() == 0
    assert np.abs(macs - dynast["macs"].to_numpy()).max() == 0


def test_built_networks_match_dynast_params_on_a_sample(dynast):
    unique = dynast.drop_duplicates("arch_key")
    sample = unique.sample(n=100, random_state=20_240_601)
    for arch, params in zip(sample["arch"], sample["params"]):
        net = _meta_network(arch, width_mult=1.0)
        assert count_parameters(net) == params == count_arch_parameters(arch, width_mult=1.0), arch.key


@pytest.mark.parametrize("resolution", [128, 132, 224, 97])
@pytest.mark.parametrize("width_mult", [1.2, 1.0])
def test_count_macs_equals_a_forward_hook_count(resolution, width_mult):
    rng = np.random.default_rng(resolution)
    d, ks, e = rng.choice([2, 3, 4], 5), rng.choice([3, 5, 7], 20), rng.choice([3, 4, 6], 20)
    arch = OFAArch(224, tuple(map(int, d)), tuple(map(int, ks)), tuple(map(int, e)))
    net = build_network(arch, width_mult=width_mult, num_classes=10, in_channels=1)
    expected = hook_macs(net, resolution, in_channels=1)
    assert count_macs(arch, resolution, width_mult=width_mult, num_classes=10, in_channels=1) == expected


def test_count_macs_uses_the_arch_resolution_by_default():
    arch = OFAArch.from_key(TUTORIAL_KEY)
    assert count_macs(arch) == count_macs(arch, resolution=192) < count_macs(arch, resolution=224)
    assert count_macs(arch) == hook_macs(build_network(arch), 192)


def test_extreme_w12_parameter_counts():
    # regression values (see the module docstring)
    assert count_parameters(_meta_network(LARGEST)) == count_arch_parameters(LARGEST) == 10_701_632
    assert count_parameters(_meta_network(SMALLEST)) == count_arch_parameters(SMALLEST) == 4_602_456
    assert count_macs(LARGEST) == 843_101_040 and count_macs(SMALLEST) == 193_078_200
    assert count_arch_parameters(LARGEST, width_mult=1.0) == 7_664_760
    assert count_arch_parameters(SMALLEST, width_mult=1.0) == 3_410_792


@pytest.mark.parametrize("resolution", [128, 224, 132])
def test_forward_shape(resolution):
    torch.manual_seed(0)
    arch = OFAArch.from_key("r128_5333_5434_767334_54547433_363656")
    net = build_network(arch, num_classes=7).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, resolution, resolution))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_one_input_channel_and_dropout():
    torch.manual_seed(0)
    net = build_network(SMALLEST, num_classes=10, in_channels=1, dropout=0.2)
    assert net.first_conv.conv.in_channels == 1
    assert isinstance(net.classifier.dropout, nn.Dropout) and net.classifier.dropout.p == 0.2
    assert count_parameters(net) == count_arch_parameters(SMALLEST, num_classes=10, in_channels=1)
    net.train()
    out = net(torch.randn(2, 1, 128, 128))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert net.first_conv.conv.weight.grad is not None
    assert not hasattr(build_network(SMALLEST).classifier, "dropout")


def test_modules_follow_ofa():
    net = _meta_network(OFAArch.from_key(TUTORIAL_KEY))
    keys = set(net.state_dict())
    # OFA's MobileNetV3 names, so an extracted OFA subnet's state dict loads
    for key in (
        "first_conv.conv.weight",
        "first_conv.bn.running_var",
        "blocks.0.conv.depth_conv.conv.weight",
        "blocks.1.conv.inverted_bottleneck.conv.weight",
        "blocks.3.conv.depth_conv.se.fc.reduce.bias",
        "blocks.3.conv.depth_conv.se.fc.expand.weight",
        "blocks.5.conv.point_linear.bn.weight",
        "final_expand_layer.conv.weight",
        "feature_mix_layer.conv.weight",
        "classifier.linear.bias",
    ):
        assert key in keys, key
    assert "blocks.0.conv.inverted_bottleneck.conv.weight" not in keys  # expand ratio 1: no expansion conv
    assert "feature_mix_layer.conv.bias" not in keys and "feature_mix_layer.bn.weight" not in keys
    assert "blocks.1.conv.depth_conv.se.fc.reduce.weight" not in keys  # stage 1 has no SE
    assert isinstance(net.first_conv.act, nn.Hardswish)
    assert isinstance(net.feature_mix_layer.act, nn.Hardswish)
    assert isinstance(net.blocks[1].conv.depth_conv.act, nn.ReLU)
    assert isinstance(net.blocks[5].conv.depth_conv.act, nn.Hardswish)
    assert isinstance(net.blocks[3].conv.depth_conv.se.fc.h_sigmoid, nn.Hardsigmoid)
    skips = [True, False, True, False, True, False, True, True, False, True, True, True, False, True, True]
    assert [b.shortcut is not None for b in net.blocks] == skips
    se = net.blocks[3].conv.depth_conv.se.fc  # stage 2, first block: in 32, e4 -> mid 128, squeeze 32
    assert se.reduce.in_channels == 128 and se.reduce.out_channels == 32


def test_residual_adds_the_input():
    torch.manual_seed(0)
    net = build_network(SMALLEST).eval()
    block = net.blocks[2]  # stage 1, second block: identity skip
    x = torch.randn(1, 32, 16, 16)
    with torch.no_grad():
        assert torch.allclose(block(x), block.conv(x) + x)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_classes": 0}, "num_classes"),
        ({"in_channels": 2.5}, "in_channels"),
        ({"dropout": 1.0}, "dropout"),
        ({"width_mult": 0.0}, "width_mult"),
    ],
)
def test_bad_options_are_one_line_errors(kwargs, match):
    with pytest.raises(ModnasError, match=match) as err:
        build_network(SMALLEST, **kwargs)
    assert "\n" not in str(err.value)


def test_bad_resolution_is_a_one_line_error():
    with pytest.raises(ModnasError, match="resolution") as err:
        count_macs(SMALLEST, resolution=0)
    assert "\n" not in str(err.value)
