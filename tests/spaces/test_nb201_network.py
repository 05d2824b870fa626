"""Tests for the standalone NB201 networks: parameter counts against the table, forward pass, options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modnas.errors import ModnasError
from modnas.spaces.nb201 import OPS, build_network, count_parameters, to_index
from modnas.spaces.nb201.network import Cell, NB201Network
from modnas.tables.nb201 import NUM_ARCHS, nb201_tables

ARCH0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
STEM_PARAMS_PER_INPUT_CHANNEL = 16 * 3 * 3  # the stem conv is 3x3, C=16, no bias


def table_params(index: int, dataset: str = "cifar10") -> int:
    return round(float(nb201_tables.params(int(index), dataset=dataset)) * 1e6)


@pytest.fixture(scope="module")
def sample_indices() -> np.ndarray:
    return np.random.default_rng(20_240_601).choice(NUM_ARCHS, size=200, replace=False)


@pytest.mark.parametrize("op", OPS)
def test_param_count_uniform_cells(op):
    ops = [OPS.index(op)] * 6
    net = build_network(ops)
    assert count_parameters(net) == table_params(to_index(ops))


def test_param_count_closed_form_extremes():
    assert count_parameters(build_network([0] * 6)) == 73_306  # skeleton only
    assert count_parameters(build_network([3] * 6)) == 73_306 + 6 * 243_040
    assert count_parameters(build_network([2] * 6)) == 73_306 + 6 * 28_000


@pytest.mark.parametrize("which", ["argmin", "argmax"])
def test_param_count_min_max_rows(which):
    params = nb201_tables.full_column("params_flops", "params_mb_cifar10")
    index = int(getattr(np, which)(params))
    net = build_network(nb201_tables.arch_strings[index])
    assert count_parameters(net) == table_params(index)


def test_param_count_random_sample(sample_indices):
    assert len(set(sample_indices.tolist())) >= 200
    mismatches = []
    for index in sample_indices:
        got = count_parameters(build_network(nb201_tables.arch_strings[index]))
        if got != table_params(index):
            mismatches.append((int(index), got, table_params(index)))
    assert mismatches == []


@pytest.mark.parametrize(("num_classes", "dataset"), [(100, "cifar100"), (120, "imagenet16")])
@pytest.mark.parametrize("index", [0, 6111])
def test_param_count_other_datasets(num_classes, dataset, index):
    net = build_network(nb201_tables.arch_strings[index], num_classes=num_classes)
    assert count_parameters(net) == table_params(index, dataset)


def test_forward_shape():
    net = build_network(ARCH0).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_in_channels_one():
    net = build_network(ARCH0, in_channels=1).eval()
    assert count_parameters(net) == table_params(0) - 2 * STEM_PARAMS_PER_INPUT_CHANNEL
    with torch.no_grad():
        assert net(torch.randn(2, 1, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("num_classes", [1, 7, 100])
def test_num_classes(num_classes):
    net = build_network([3, 0, 1, 2, 4, 1], C=4, N=1, num_classes=num_classes).eval()
    assert net.classifier.out_features == num_classes
    with torch.no_grad():
        assert net(torch.randn(2, 3, 16, 16)).shape == (2, num_classes)


def test_smaller_skeleton_options():
    net = build_network(ARCH0, C=8, N=1).eval()
    assert len(net.cells) == 3 + 2  # one cell per stage plus two reduction blocks
    assert net.classifier.in_features == 32
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize(
    "arch",
    [
        pytest.param(ARCH0, id="string"),
        pytest.param("  " + ARCH0 + "\n", id="padded-string"),
        pytest.param([4, 2, 1, 2, 1, 1], id="list"),
        pytest.param(np.array([4, 2, 1, 2, 1, 1]), id="array"),
    ],
)
def test_arch_str_is_canonical(arch):
    net = build_network(arch)
    assert isinstance(net, NB201Network)
    assert net.arch_str == ARCH0 == nb201_tables.arch_strings[0]


def test_all_none_network_ignores_input():
    net = build_network([0] * 6).eval()
    with torch.no_grad():
        a = net(torch.randn(2, 3, 32, 32))
        b = net(torch.randn(2, 3, 32, 32) * 10)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a[0], net.classifier.bias.detach())


def test_cell_wiring_all_skip():
    cell = Cell(["skip_connect"] * 6, 4)
    x = torch.randn(1, 4, 8, 8)
    # node1 = x, node2 = x + node1 = 2x, node3 = x + node1 + node2 = 4x
    torch.testing.assert_close(cell(x), 4 * x)


def test_cell_wiring_chain():
    ops = ["none", "skip_connect", "none", "none", "none", "skip_connect"]  # 3 <- 2 <- 0 only
    cell = Cell(ops, 4)
    x = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(cell(x), x)


def test_backward_reaches_every_parameter():
    net = build_network([3] * 6, C=4, N=1).train()
    loss = net(torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))).square().mean()
    loss.backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_space_builds_same_network():
    from modnas.spaces import get_space

    net = get_space("nb201").build_network(ARCH0, num_classes=5)
    assert net.arch_str == ARCH0
    assert count_parameters(net) == count_parameters(build_network(ARCH0, num_classes=5))


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"C": 0}, "C must be a positive integer, got 0"),
        ({"N": 0}, "N must be"),
        ({"num_classes": 0}, "num_classes must be"),
        ({"in_channels": -1}, "in_channels must be a positive integer, got -1"),
    ],
)
def test_bad_options(kwargs, named):
    with pytest.raises(ModnasError, match=named):
        build_network(ARCH0, **kwargs)


@pytest.mark.parametrize(
    ("arch", "named"),
    [
        ([[0] * 6, [1] * 6], "not a batch"),
        ([0, 0, 0, 0, 0, 5], "op index 5"),
        ([0] * 5, r"\(5,\)"),
        ("|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|", "'conv_7x7'"),
    ],
)
def test_bad_arch(arch, named):
    with pytest.raises(ModnasError, match=named):
        build_network(arch)
