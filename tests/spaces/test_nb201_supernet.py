"""Tests for the one-shot NB201 supernet: single path, gradients to every logit, entanglement, standalone equality."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from modnas.errors import ModnasError
from modnas.samplers import make_sampler
from modnas.spaces.nb201 import build_network, to_onehot
from modnas.spaces.nb201.network import Cell, ReLUConvBN
from modnas.spaces.nb201.supernet import NB201Supernet, SearchCell

MIXED = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|"
NO_NONE = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|skip_connect~1|nor_conv_3x3~2|"


def tiny(**kwargs) -> NB201Supernet:
    torch.manual_seed(0)
    return NB201Supernet(**{"C": 4, "N": 1, "in_channels": 1, **kwargs})


def loss_of(net: NB201Supernet, onehot: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
    x = torch.randn(6, net.in_channels, 8, 8, generator=torch.Generator().manual_seed(1)) if x is None else x
    return net(x, onehot).square().mean()


@pytest.mark.parametrize(("in_channels", "size", "classes"), [(1, 8, 10), (1, 28, 10), (3, 32, 100)])
def test_output_shapes(in_channels, size, classes):
    net = NB201Supernet(C=4, N=1, num_classes=classes, in_channels=in_channels)
    out = net(torch.randn(2, in_channels, size, size), to_onehot(MIXED))
    assert out.shape == (2, classes)


def test_paper_layout_has_15_cells_sharing_one_architecture():
    net = NB201Supernet()  # C=16, N=5: the CIFAR supernet of the spec
    cells = [m for m in net.cells if isinstance(m, SearchCell)]
    assert len(cells) == 15 and len(net.cells) == 17
    assert net.classifier.in_features == 64


def test_only_the_sampled_op_runs():
    net = tiny()
    loss_of(net, to_onehot("|skip_connect~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|skip_connect~1|none~2|")).backward()
    for cell in (m for m in net.cells if isinstance(m, SearchCell)):
        for edge in cell.edges:
            assert edge.conv3.conv.weight.grad is None  # no conv was sampled: no conv ran
    net.zero_grad(set_to_none=True)
    loss_of(net, to_onehot(MIXED)).backward()
    cell = net.cells[0]
    assert cell.edges[0].conv3.conv.weight.grad is not None  # edge 1<-0 is conv3x3
    assert cell.edges[2].conv3.conv.weight.grad is None  # edge 2<-1 is skip


def test_every_logit_gets_a_gradient_and_the_output_is_the_sampled_ops():
    net = tiny()
    onehot = to_onehot(NO_NONE).requires_grad_(True)
    x = torch.randn(6, 1, 8, 8)
    loss_of(net, onehot, x).backward()
    assert torch.all(onehot.grad != 0)
    # through a sampler the logits of every op on every edge receive a gradient
    logits = torch.zeros(6, 5, requires_grad=True)
    sample = make_sampler("reinmax", generator=torch.Generator().manual_seed(0))(logits)
    loss_of(net, sample, x).backward()
    assert torch.all(logits.grad != 0)
    # the zero-valued weights add nothing to the output
    with torch.no_grad():
        assert torch.equal(net(x, to_onehot(NO_NONE)), net(x, to_onehot(NO_NONE).requires_grad_(True)))


def test_entangled_conv1x1_is_the_centre_of_conv3x3():
    net = tiny()
    edge = net.cells[0].edges[1]  # 2<-0, which feeds the output through 3<-2
    assert edge.conv1 is None
    only_1x1 = "|nor_conv_1x1~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|nor_conv_1x1~2|"
    loss_of(net, to_onehot(only_1x1)).backward()
    grad = edge.conv3.conv.weight.grad
    assert grad is not None and grad[:, :, 1, 1].abs().sum() > 0
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[1, 1] = False
    assert torch.all(grad[:, :, mask] == 0)
    free = tiny(entangle=False)
    assert free.cells[0].edges[0].conv1 is not None
    n_free = sum(p.numel() for p in free.parameters())
    n_tied = sum(p.numel() for p in net.parameters())
    assert n_free > n_tied


def copy_into_standalone(net: NB201Supernet, arch: str) -> torch.nn.Module:
    """The standalone network of ``arch`` with the supernet's weights (conv biases are dropped: batch-stat BN
    removes a per-channel constant anyway)."""
    standalone = build_network(arch, C=net.C, N=net.N, num_classes=net.num_classes, in_channels=net.in_channels)
    standalone.stem.load_state_dict(net.stem.state_dict())
    standalone.head.load_state_dict(net.head.state_dict())
    standalone.classifier.load_state_dict(net.classifier.state_dict())
    for mine, theirs in zip(net.cells, standalone.cells):
        if not isinstance(theirs, Cell):
            theirs.load_state_dict(mine.state_dict())
            continue
        for edge, op in zip(mine.edges, theirs.edges):
            if isinstance(op, ReLUConvBN):
                conv = op[1]
                weight = edge.conv3.conv.weight
                with torch.no_grad():
                    conv.weight.copy_(weight if conv.kernel_size == (3, 3) else weight[:, :, 1:2, 1:2])
    return standalone


@pytest.mark.parametrize("arch", [MIXED, NO_NONE, "|none~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"])
def test_matches_the_standalone_network_with_copied_weights(arch):
    net = tiny(N=2, num_classes=7)
    standalone = copy_into_standalone(net, arch)
    x = torch.randn(5, 1, 12, 12)
    net.train()
    standalone.train()  # both normalise with batch statistics
    expected = standalone(x)
    got = net(x, to_onehot(arch))
    assert torch.allclose(got, expected, atol=1e-5)
    grad = torch.randn_like(got)
    weight_grads = torch.autograd.grad(got, net.cells[0].edges[0].conv3.conv.weight, grad, allow_unused=True)[0]
    theirs = standalone.cells[0].edges[0]
    if isinstance(theirs, ReLUConvBN) and theirs[1].kernel_size == (3, 3):
        (their_grad,) = torch.autograd.grad(expected, theirs[1].weight, grad)
        assert torch.allclose(weight_grads, their_grad, rtol=1e-4, atol=1e-4)


def test_rejects_bad_inputs():
    net = tiny()
    with pytest.raises(ModnasError, match="one \\(6, 5\\) one-hot"):
        net(torch.randn(2, 1, 8, 8), torch.zeros(2, 6, 5))
    with pytest.raises(ModnasError, match="supernet C"):
        NB201Supernet(C=0)


def test_cross_entropy_trains_the_supernet_a_little():
    torch.manual_seed(0)
    net = tiny()
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    arch = to_onehot(MIXED)
    first = F.cross_entropy(net(x, arch), y).item()
    for _ in range(10):
        opt.zero_grad()
        F.cross_entropy(net(x, arch), y).backward()
        opt.step()
    assert F.cross_entropy(net(x, arch), y).item() < first
