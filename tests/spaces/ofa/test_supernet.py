"""The elastic OFA supernet: a sub-network it extracts computes what the supernet computes for that architecture,
kernels and channels are shared as OFA shares them, and the one-hot's gradient reaches the active decisions only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modnas.errors import ModnasError
from modnas.spaces.ofa.arch import NUM_SLOTS
from modnas.spaces.ofa.space import OFASpace
from modnas.spaces.ofa.supernet import ElasticMobileNetV3, input_size


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    net = ElasticMobileNetV3(num_classes=10, in_channels=1, width_mult=0.35, image_size=32)
    with torch.no_grad():  # non-trivial kernel transforms and normalisation parameters
        for block in net.blocks:
            block.transform_5.add_(0.05 * torch.randn_like(block.transform_5))
            block.transform_3.add_(0.05 * torch.randn_like(block.transform_3))
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return net.train()


def test_input_sizes_keep_the_resolution_ratios():
    assert input_size(224, 32) == 32 and input_size(160, 32) == 23 and input_size(128, 224) == 128


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_extracted_subnet_computes_what_the_supernet_computes(supernet, seed):
    space = OFASpace()
    choices = space.sample(1, np.random.default_rng(seed))[0]
    arch = space.arch(choices)
    onehot = space.to_onehot(torch.as_tensor(choices)[None])[0]
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = supernet(x, onehot, choices.tolist())
        subnet = supernet.subnet(arch).train()  # batch statistics in both
        size = input_size(arch.r, 32)
        got = subnet(F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False))
    assert torch.allclose(got, expected, atol=1e-5), float((got - expected).abs().max())


def test_kernels_are_transformed_centres_of_one_seven_by_seven():
    torch.manual_seed(1)
    block = ElasticMobileNetV3(in_channels=1, width_mult=0.35, image_size=32).blocks[3]
    mid = 8
    seven = block.kernel(7, mid)
    # identity transforms: the 5x5 and 3x3 kernels are the centres of the 7x7 one
    assert torch.equal(block.kernel(5, mid), seven[:, :, 1:6, 1:6])
    assert torch.equal(block.kernel(3, mid), seven[:, :, 2:5, 2:5])
    with torch.no_grad():
        block.transform_3.mul_(2.0)
    assert torch.allclose(block.kernel(3, mid), 2 * seven[:, :, 2:5, 2:5])
    assert block.kernel(7, 2 * mid).shape == (2 * mid, 1, 7, 7)  # a wider block: more leading channels
    with pytest.raises(ModnasError, match="kernel 4"):
        block.kernel(4, mid)


def test_one_hot_gradient_reaches_the_active_decisions_only(supernet):
    space = OFASpace()
    choices = space.indices(space.arch(space.sample(1, np.random.default_rng(5))[0]))
    choices[1] = 0  # stage 0 at depth 2: its slots 2 and 3 are inactive
    arch = space.arch(choices)
    onehot = space.to_onehot(torch.as_tensor(choices)[None])[0].requires_grad_(True)
    logits = supernet(torch.randn(4, 1, 32, 32), onehot, choices.tolist())
    (grad,) = torch.autograd.grad(logits.square().sum(), onehot)
    row_has = grad.abs().sum(dim=1) > 0
    assert bool(row_has[0]) and bool(row_has[1 : 1 + 5].all())  # resolution and every depth
    active = {slot for _, slot, _, _ in arch.blocks()}
    for slot in range(NUM_SLOTS):
        for row in (6 + 2 * slot, 7 + 2 * slot):
            assert bool(row_has[row]) == (slot in active), (slot, row)


def test_wrong_number_of_choices_is_refused(supernet):
    with pytest.raises(ModnasError, match="3 choices given"):
        supernet(torch.randn(2, 1, 32, 32), torch.zeros(46, 25), [0, 0, 0])
