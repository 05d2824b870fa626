"""The GPT spaces: arch strings, the conditional encoding, networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modnas.errors import ModnasError
from modnas.spaces.gpt.arch import GPT_S, GPT_TINY, GPTArch
from modnas.spaces.gpt.network import build_network, count_parameters, flops_per_token
from modnas.spaces.gpt.space import GPTSpace
from modnas.spaces.gpt.surrogates import perplexity_features

S = GPTSpace(GPT_S)
TINY = GPTSpace(GPT_TINY)
KEY = "gpt-s-10-384-2-2-4-4-3-4-3-4-4-2-12-4-12-8-4-8-4-4-12-8-False"


def test_key_round_trip_and_hwgpt_spelling():
    idx = S.parse(KEY)
    assert S.to_key(idx) == KEY
    arch = S.arch(idx)
    assert (arch.embed, arch.n_layer, arch.bias) == (384, 10, False)
    assert arch.mlp_ratios[:3] == (2, 2, 4) and arch.heads[:3] == (12, 4, 12)
    assert S.num_decisions == 2 + 2 * 12 + 1 and S.num_features == 80


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ("gpt-m-10-384-" + "2-" * 10 + "4-" * 10 + "True", "must start with 'gpt-s-'"),
        ("gpt-s-9-384-" + "2-" * 9 + "4-" * 9 + "True", "n_layer 9"),
        ("gpt-s-10-384-" + "2-" * 10 + "4-" * 9 + "True", "need 20 per-layer values"),
        ("gpt-s-10-500-" + "2-" * 10 + "4-" * 10 + "True", "embedding 500"),
        ("gpt-s-10-384-" + "5-" * 10 + "4-" * 10 + "True", "MLP ratio 5"),
        ("gpt-s-10-384-" + "2-" * 10 + "6-" * 10 + "True", "heads 6"),
        ("gpt-s-10-384-" + "2-" * 10 + "4-" * 10 + "yes", "must end with True or False"),
        ("gpt-s-10-x-" + "2-" * 10 + "4-" * 10 + "True", "non-integer"),
        ("gpt-s-", "too short"),
    ],
)
def test_malformed_arch_strings_are_one_line_errors(key, needle):
    with pytest.raises(ModnasError, match=needle) as info:
        S.parse(key)
    assert "\n" not in str(info.value)


def test_inactive_layers_are_ignored():
    idx = S.parse(KEY)  # 10 layers: slots 10 and 11 inactive
    other = idx.copy()
    other[2 + 10], other[2 + 12 + 11] = 2, 1
    assert S.to_key(other) == KEY
    assert np.array_equal(S.canonicalise(other[None])[0], idx)
    assert not S.active(idx[None])[0][[2 + 10, 2 + 11, 2 + 12 + 10, 2 + 12 + 11]].any()


def test_sampling_mutation_and_argmax_respect_the_gates():
    rng = np.random.default_rng(0)
    drawn = S.sample(200, rng)
    inactive = ~S.active(drawn)
    assert (drawn[inactive] == 0).all()  # canonical: inactive slots at option 0
    for row in drawn[:20]:
        for near in S.neighbours(row):
            changed = np.flatnonzero(near != row)
            # a move changes one active decision; only a depth change may also reset the slots it switches off
            assert S.active(row[None])[0][changed[0]]
            assert len(changed) == 1 or S.decisions[changed[0]].name == "n_layer"
        assert S.to_key(S.mutate(row, rng)) != S.to_key(row)
    logits = torch.randn(5, S.num_decisions, S.max_options)
    logits[:, 1, 0] = 10.0  # n_layer = 10: the last two slots are inactive
    choices = S.from_logits(logits)
    assert (choices[:, [2 + 10, 2 + 11, 2 + 22, 2 + 23]] == 0).all()


def test_features_are_hwgpt_perplexity_inputs():
    idx = S.sample(20, np.random.default_rng(1))
    ours = S.features(S.to_onehot(idx)).numpy()
    theirs = perplexity_features([S.arch(i) for i in idx])
    assert np.array_equal(ours, theirs)


def test_network_parameters_flops_and_shapes():
    largest = GPTArch.largest(GPT_S)
    assert count_parameters(largest) == sum(p.numel() for p in build_network(largest).parameters())
    assert abs(count_parameters(largest) / 1e6 - 124.5) < 0.1  # GPT-2 small with the padded vocabulary
    for key in TINY.reference_architectures():
        arch = TINY._arch_of(key)
        net = build_network(arch)
        assert count_parameters(arch) == sum(p.numel() for p in net.parameters())
        logits = net(torch.randint(0, 256, (2, 16)))
        assert logits.shape == (2, 16, 256)
    small, large = (GPTArch.from_key(k, GPT_S) for k in S.extremes())
    assert 0 < flops_per_token(small) < flops_per_token(large)
    with pytest.raises(ModnasError, match="longer than the context"):
        build_network(GPTArch.smallest(GPT_TINY))(torch.zeros(1, 129, dtype=torch.long))


def test_timing_network_and_unknown_settings():
    net, tokens = S.timing_network(S.extremes()[0], 2, torch.Generator().manual_seed(0), sequence_length=8)
    assert tokens.shape == (2, 8) and net(tokens).shape == (2, 8, GPT_S.vocab_size)
    with pytest.raises(ModnasError, match="sequence length"):
        S.timing_network(S.extremes()[0], 1, torch.Generator(), sequence_length=2048)
    with pytest.raises(ModnasError, match="no setting 'C'"):
        TINY.build_network(TINY.extremes()[0], C=16)
    assert len(S.reference_architectures()) == 10 and all(S.canonical_key(k) == k for k in S.reference_architectures())
