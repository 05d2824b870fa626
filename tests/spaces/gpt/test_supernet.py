"""The GPT supernet: a sub-model it extracts computes what the supernet computes for that architecture, weights are
shared as leading slices, and the one-hot's gradient reaches the active decisions only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modnas.errors import ModnasError
from modnas.spaces.gpt.arch import GPT_TINY, GPTArch
from modnas.spaces.gpt.network import build_network, count_parameters
from modnas.spaces.gpt.space import GPTSpace
from modnas.spaces.gpt.supernet import GPTSupernet

SPACE = GPTSpace(GPT_TINY)
L = GPT_TINY.max_layers
BIAS = 2 + 2 * L  # the bias decision's row


def _archs() -> list[np.ndarray]:
    """4 seeded architectures: one without bias, one with the fewest layers, one with a middle depth."""
    out = SPACE.sample(4, np.random.default_rng(0))
    out[0, BIAS], out[1, BIAS] = 1, 0
    out[0, 1], out[1, 1], out[2, 1], out[3, 1] = 1, 0, 1, 2
    return [SPACE.canonicalise(a[None])[0] for a in out]


ARCHS = _archs()


def _onehot(indices: np.ndarray) -> torch.Tensor:
    return SPACE.to_onehot(torch.as_tensor(indices)[None])[0]


def _tokens(length: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, GPT_TINY.vocab_size, (2, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def supernet() -> GPTSupernet:
    torch.manual_seed(0)
    net = GPTSupernet(SPACE)
    with torch.no_grad():  # non-trivial biases and LayerNorm weights, so that their slicing is checked too
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.2, 0.2)
            elif ".ln" in name or name.startswith("ln_f"):
                p.uniform_(0.5, 1.5)
    return net


def test_the_architectures_cover_bias_off_and_shallow_models():
    archs = [SPACE.arch(a) for a in ARCHS]
    assert not archs[0].bias and any(a.bias for a in archs)
    assert {a.n_layer for a in archs} >= {min(GPT_TINY.layers), GPT_TINY.max_layers - 1}


@pytest.mark.parametrize("k", range(len(ARCHS)))
def test_supernet_computes_what_the_extracted_subnet_computes(supernet, k):
    indices = ARCHS[k]
    arch = SPACE.arch(indices)
    tokens = _tokens(seed=k)
    with torch.no_grad():
        expected = supernet(tokens, _onehot(indices))
        sub = supernet.subnet(arch)
        fresh = build_network(arch)
        fresh.load_state_dict(sub.state_dict())  # strict: the keys are the standalone model's
        got, got_fresh = sub(tokens), fresh(tokens)
    assert expected.shape == (2, 12, GPT_TINY.vocab_size)
    assert torch.allclose(got, expected, atol=1e-5), float((got - expected).abs().max())
    assert torch.allclose(got_fresh, expected, atol=1e-5), float((got_fresh - expected).abs().max())
    assert all(not n.endswith("bias") for n in sub.state_dict()) or arch.bias
    key_sub = supernet.subnet(arch.key)
    assert all(torch.equal(a, b) for a, b in zip(key_sub.state_dict().values(), sub.state_dict().values()))


def test_weights_are_the_leading_slices(supernet):
    arch = GPTArch(GPT_TINY, 96, 2, (2, 3), (3, 2), True)
    sub = supernet.subnet(arch)
    big, hs, inner_max = supernet.blocks[0], GPT_TINY.head_size, max(GPT_TINY.heads) * GPT_TINY.head_size
    qkv = torch.cat([big.attn.qkv.weight[j * inner_max : j * inner_max + 3 * hs, :96] for j in range(3)])
    assert torch.equal(sub.blocks[0].attn.qkv.weight, qkv)
    assert torch.equal(sub.blocks[0].attn.proj.weight, big.attn.proj.weight[:96, : 3 * hs])
    assert torch.equal(sub.blocks[0].mlp.fc.weight, big.mlp.fc.weight[:192, :96])
    assert torch.equal(sub.blocks[1].mlp.proj.weight, supernet.blocks[1].mlp.proj.weight[:96, :288])
    assert torch.equal(sub.blocks[1].ln2.bias, supernet.blocks[1].ln2.bias[:96])
    assert torch.equal(sub.wpe.weight, supernet.wpe.weight[:, :96])
    assert sub.lm_head.weight is sub.wte.weight


def test_largest_subnet_is_the_supernet_itself(supernet):
    sub = supernet.subnet(GPTArch.largest(GPT_TINY)).state_dict()
    own = supernet.state_dict()
    assert set(sub) == set(own)
    assert all(torch.equal(sub[k], own[k]) for k in own)


@pytest.mark.parametrize("k", [1, 0])  # fewest layers with bias, a middle depth without
def test_gradient_reaches_the_active_decisions_only(supernet, k):
    indices = ARCHS[k]
    arch = SPACE.arch(indices)
    onehot = _onehot(indices).requires_grad_(True)
    tokens = _tokens(seed=k)
    logits = supernet(tokens, onehot, indices.tolist())
    F.cross_entropy(logits.flatten(0, 1), _tokens(seed=10 + k).flatten()).backward()
    grad = onehot.grad
    assert grad is not None
    active = [0, 1, *range(2, 2 + arch.n_layer), *range(2 + L, 2 + L + arch.n_layer), BIAS]
    for d in active:
        assert grad[d, indices[d]] != 0, SPACE.decisions[d].name
    assert arch.n_layer < L
    for i in range(arch.n_layer, L):
        assert torch.all(grad[2 + i] == 0) and torch.all(grad[2 + L + i] == 0)


def test_inactive_layer_choices_do_not_change_the_output(supernet):
    a = ARCHS[1].copy()  # the fewest layers
    b = a.copy()
    n = GPT_TINY.layers[int(a[1])]
    for i in range(n, L):
        a[2 + i], a[2 + L + i] = 0, 2
        b[2 + i], b[2 + L + i] = 2, 1
    tokens = _tokens()
    with torch.no_grad():
        assert torch.equal(supernet(tokens, _onehot(a)), supernet(tokens, _onehot(b)))


def test_parameters_are_the_largest_models():
    net = GPTSupernet(SPACE)
    assert sum(p.numel() for p in net.parameters()) == count_parameters(GPTArch.largest(GPT_TINY))


def test_vocabulary_settings():
    assert GPTSupernet(SPACE).vocab_size == GPT_TINY.vocab_size
    assert GPTSupernet(SPACE, num_classes=50, in_channels=1).vocab_size == 50
    net = GPTSupernet(SPACE, vocab_size=60, num_classes=50, block_size=32)
    assert (net.vocab_size, net.block_size) == (60, 32)
    assert net.subnet(GPTArch.smallest(GPT_TINY)).wte.weight.shape == (60, min(GPT_TINY.embeds))


def test_bad_inputs(supernet):
    onehot = _onehot(ARCHS[0])
    with pytest.raises(ModnasError, match="longer than the context 128"):
        supernet(_tokens(length=GPT_TINY.block_size + 1), onehot)
    with pytest.raises(ModnasError, match="decisions"):
        supernet(_tokens(), onehot[:-1])
    with pytest.raises(ModnasError, match="dropout"):
        GPTSupernet(SPACE, dropout=1.0)
    with pytest.raises(ModnasError, match="foo"):
        SPACE.build_supernet(foo=1)
