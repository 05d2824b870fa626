"""Hypernetworks: the faithful MetaHyperNetwork and the continuous MLP variant."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modnas.errors import ModnasError
from modnas.hypernet import (
    MetaHyperNetwork,
    PreferenceMLPHyperNetwork,
    make_hypernet,
    pretrain_uniform,
)

# HELP embeddings of four devices (spec section 3): 1080ti_1, samsung_a50, titanx_256, fpga
EMBEDDINGS = torch.tensor(
    [
        [0.161, 0.184, 0.000, 0.224, 0.725, 0.498, 0.378, 0.670, 0.211, 1.000],
        [0.045, 0.164, 0.000, 0.149, 0.254, 0.209, 0.194, 0.433, 0.060, 1.000],
        [0.100, 0.103, 0.000, 0.188, 0.416, 0.276, 0.477, 0.677, 0.296, 1.000],
        [0.072, 0.119, 0.000, 0.176, 0.335, 0.263, 0.306, 0.601, 0.130, 1.000],
    ]
)


def _dirichlet(n: int, m: int, seed: int) -> torch.Tensor:
    exp = torch.empty(n, m).exponential_(generator=torch.Generator().manual_seed(seed))
    return exp / exp.sum(-1, keepdim=True)


def _reference_alpha(net: MetaHyperNetwork, r0: float, h: torch.Tensor) -> torch.Tensor:
    """Spec section 4 written out with a loop over prototypes, one (preference, device) at a time."""
    b = min(max(round(100 * r0), 0), 100)
    s = net.prototypes.weight @ h / math.sqrt(10)
    pi = torch.softmax(torch.sin(s), dim=0)
    out = torch.zeros(30)
    for k in range(50):
        out = out + pi[k] * net.tables[k, b]
    return out.reshape(6, 5)


# --- MetaHyperNetwork ---------------------------------------------------------------------------------------


def test_meta_parameter_count_and_init():
    torch.manual_seed(0)
    net = make_hypernet("meta", num_objectives=2)
    assert isinstance(net, MetaHyperNetwork) and net.num_objectives == 2
    assert sum(p.numel() for p in net.parameters()) == 152_000 == 50 * 10 + 50 * 101 * 30
    assert net.tables.std().item() == pytest.approx(1.0, abs=0.02)  # nn.Embedding's N(0, 1), as in MODNAS


def test_meta_matches_the_formula():
    torch.manual_seed(0)
    net = MetaHyperNetwork()
    for r0, dev in [(0.0, 0), (0.37, 1), (0.5, 2), (0.994, 3), (1.0, 0)]:
        out = net(torch.tensor([r0, 1 - r0]), EMBEDDINGS[dev])
        torch.testing.assert_close(out, _reference_alpha(net, r0, EMBEDDINGS[dev]), atol=1e-5, rtol=1e-5)


def test_meta_batched_shapes_and_broadcasting():
    torch.manual_seed(0)
    net = MetaHyperNetwork()
    r = _dirichlet(7, 2, 0)
    assert net(r, EMBEDDINGS[:1].expand(7, 10)).shape == (7, 6, 5)
    single = net(r, EMBEDDINGS[0])  # one device for all preferences
    assert single.shape == (7, 6, 5)
    torch.testing.assert_close(single, net(r, EMBEDDINGS[0].expand(7, 10)))
    assert net(r[0], EMBEDDINGS[0]).shape == (6, 5)
    grid = net(r[:, None, :], EMBEDDINGS[None])  # every preference x every device
    assert grid.shape == (7, 4, 6, 5)
    torch.testing.assert_close(grid[3, 2], net(r[3], EMBEDDINGS[2]))
    assert net(r.numpy().astype(np.float64), EMBEDDINGS.numpy()[1]).dtype == torch.float32
    other = MetaHyperNetwork(num_objectives=3, num_edges=4, num_ops=3, num_prototypes=5, num_bins=11)
    assert other(_dirichlet(2, 3, 1), EMBEDDINGS[:2]).shape == (2, 4, 3)
    assert sum(p.numel() for p in other.parameters()) == 5 * 10 + 5 * 11 * 12


def test_meta_bins_at_the_edges():
    net = MetaHyperNetwork()
    r0 = torch.tensor([0.0, 0.004, 0.005, 0.006, 0.015, 0.5, 0.994, 0.996, 1.0, 1.2, -0.3])
    bins = net.bins(torch.stack([r0, 1 - r0], -1))
    # torch.round rounds halves to even, like MODNAS: 0.5 -> 0, 1.5 -> 2
    assert bins.tolist() == [0, 0, 0, 1, 2, 50, 99, 100, 100, 100, 0]
    out = net(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), EMBEDDINGS[0])  # r0 = 1.0 is row 100, not an IndexError
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[1], _reference_alpha(net, 1.0, EMBEDDINGS[0]), atol=1e-5, rtol=1e-5)


def test_meta_gradient_reaches_prototypes_and_the_used_table_rows():
    torch.manual_seed(0)
    net = MetaHyperNetwork()
    out = net(torch.tensor([[0.3, 0.7], [1.0, 0.0]]), EMBEDDINGS[:2])
    (out * torch.randn_like(out)).sum().backward()
    assert net.prototypes.weight.grad.abs().sum() > 0
    used = net.tables.grad.abs().sum(dim=(0, 2)) > 0
    assert used.nonzero().flatten().tolist() == [30, 100]
    assert (net.tables.grad[:, 30].abs().sum(-1) > 0).all()  # every prototype's table gets a share


def test_meta_ignores_the_second_preference_component():
    torch.manual_seed(0)
    net = MetaHyperNetwork(num_objectives=3)
    r = torch.tensor([[0.3, 0.7, 0.0], [0.3, 0.0, 0.7]], requires_grad=True)
    out = net(r, EMBEDDINGS[0])
    torch.testing.assert_close(out[0], out[1], rtol=0, atol=1e-6)  # same bin: equal up to summation order
    assert out[0].abs().max() > 0.01
    out.sum().backward()
    assert r.grad is None or not r.grad.any()


def test_load_official_checkpoint_reverses_op_columns():
    gen = torch.Generator().manual_seed(0)
    state = {"hardware_embedding.weight": torch.randn(50, 10, generator=gen)}
    for k in range(50):
        state[f"hpn_factory.{k}.embedding.weight"] = torch.randn(101, 30, generator=gen)
    net = MetaHyperNetwork()
    net.load_official_state_dict(state)
    h, r0 = EMBEDDINGS[2], 0.42
    # the original forward, in its own column order [avg, c3, c1, skip, none]
    pi = torch.softmax(torch.sin(state["hardware_embedding.weight"] @ h / math.sqrt(10)), 0)
    official = sum(pi[k] * state[f"hpn_factory.{k}.embedding.weight"][42] for k in range(50)).reshape(6, 5)
    ours = net(torch.tensor([r0, 1 - r0]), h)
    torch.testing.assert_close(ours, official.flip(-1), atol=1e-5, rtol=1e-5)
    state["hpn_factory.3.embedding.weight"] = torch.zeros(101, 20)
    with pytest.raises(ModnasError, match=r"found shapes .*\(101, 20\)"):
        net.load_official_state_dict(state)
    del state["hpn_factory.7.embedding.weight"]
    with pytest.raises(ModnasError, match="hpn_factory.7"):
        net.load_official_state_dict(state)


# --- PreferenceMLPHyperNetwork ------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [2, 3, 5])
def test_mlp_shapes_size_and_near_zero_init(m):
    torch.manual_seed(0)
    net = make_hypernet("mlp", num_objectives=m)
    assert isinstance(net, PreferenceMLPHyperNetwork) and net.num_objectives == m
    assert sum(p.numel() for p in net.parameters()) < 50_000
    out = net(_dirichlet(9, m, 0), EMBEDDINGS[1])
    assert out.shape == (9, 6, 5)
    assert 0 < out.abs().max() < 0.01
    assert net(_dirichlet(1, m, 0)[0], EMBEDDINGS).shape == (4, 6, 5)


def test_mlp_responds_to_the_second_preference_component():
    torch.manual_seed(0)
    net = PreferenceMLPHyperNetwork(num_objectives=3)
    r = torch.tensor([[0.3, 0.7, 0.0], [0.3, 0.0, 0.7]], requires_grad=True)
    out = net(r, EMBEDDINGS[0])
    assert (out[0] - out[1]).abs().max() > 1e-6
    (out * torch.randn_like(out)).sum().backward()
    assert r.grad[:, 1].abs().min() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_mlp_is_generic_over_the_search_space():
    net = make_hypernet("mlp", 2, num_edges=10, num_ops=7, hidden=32)
    assert net(torch.tensor([0.5, 0.5]), EMBEDDINGS[0]).shape == (10, 7)


# --- pretraining --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["meta", "mlp"])
def test_pretraining_brings_logits_near_zero(name):
    torch.manual_seed(0)
    net = make_hypernet(name, 2)
    if name == "mlp":  # start far from 0 so that the test can fail
        torch.nn.init.normal_(net.head.weight, std=0.05)
        torch.nn.init.normal_(net.head.bias, std=0.2)
    r = _dirichlet(500, 2, 1)
    before = net(r[:, None], EMBEDDINGS[None]).abs().max().item()
    assert before > 0.1
    state = torch.get_rng_state()
    loss = net.pretrain_uniform(EMBEDDINGS, seed=0)
    assert torch.equal(torch.get_rng_state(), state)  # its own generator
    assert loss < 1e-4
    with torch.no_grad():
        assert net(r[:, None], EMBEDDINGS[None]).abs().max().item() < 0.05
        line = torch.linspace(0, 1, 101)
        every_bin = net(torch.stack([line, 1 - line], -1)[:, None], EMBEDDINGS[None])
        assert every_bin.abs().amax(dim=(-1, -2)).median().item() < 0.02


def test_pretraining_is_seeded():
    nets = []
    for _ in range(2):
        torch.manual_seed(0)
        net = MetaHyperNetwork(num_prototypes=4, num_bins=11)
        pretrain_uniform(net, EMBEDDINGS, steps=5, seed=3, batch_size=8)
        nets.append(net)
    assert torch.equal(nets[0].tables, nets[1].tables)
    torch.manual_seed(0)
    net = MetaHyperNetwork(num_prototypes=4, num_bins=11)
    pretrain_uniform(net, EMBEDDINGS, steps=5, seed=4, batch_size=8)
    assert not torch.equal(net.tables, nets[0].tables)


# --- validation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["meta", "mlp"])
def test_bad_shapes_raise_modnas_error(name):
    net = make_hypernet(name, 2)
    with pytest.raises(ModnasError, match=r"preference has shape \(4, 3\), expected \(\.\.\., 2\)"):
        net(torch.rand(4, 3), EMBEDDINGS[0])
    with pytest.raises(ModnasError, match=r"device embedding has shape \(4, 9\), expected \(\.\.\., 10\)"):
        net(torch.rand(4, 2), torch.rand(4, 9))
    with pytest.raises(ModnasError, match=r"preference has shape \(\)"):
        net(torch.tensor(0.5), EMBEDDINGS[0])
    with pytest.raises(ModnasError, match=r"\(3, 2\) and device embedding of shape \(4, 10\)"):
        net(torch.rand(3, 2), EMBEDDINGS)
    with pytest.raises(ModnasError, match="NaN"):
        net(torch.tensor([float("nan"), 0.5]), EMBEDDINGS[0])
    with pytest.raises(ModnasError, match=r"device embeddings have shape \(4, 9\)"):
        net.pretrain_uniform(torch.rand(4, 9))


def test_factory_rejects_unknown_names_and_sizes():
    with pytest.raises(ModnasError, match="unknown hypernetwork 'transformer'"):
        make_hypernet("transformer", 2)
    with pytest.raises(ModnasError, match="number of objectives"):
        make_hypernet("meta", 0)
    with pytest.raises(ModnasError, match="number of edges"):
        make_hypernet("mlp", 2, num_edges=0)
    with pytest.raises(ModnasError, match="number of ops"):
        make_hypernet("meta", 2, num_ops=1)
    with pytest.raises(ModnasError, match="number of objectives"):
        make_hypernet("mlp", 2.5)
    with pytest.raises(ModnasError, match="bad option"):
        make_hypernet("meta", 2, hidden=3)


# --- ragged spaces: outputs only for the real options ------------------------------------------------------------

RAGGED_MASK = np.array([[True, True, True, False], [True, True, False, False], [True, True, True, True]])


@pytest.mark.parametrize("name", ["meta", "mlp"])
def test_masked_hypernet_learns_only_real_options(name):
    torch.manual_seed(0)
    kwargs = {"num_prototypes": 5, "num_bins": 11} if name == "meta" else {"hidden": 16}
    dense = make_hypernet(name, 2, num_edges=3, num_ops=4, **kwargs)
    net = make_hypernet(name, 2, num_edges=3, num_ops=4, option_mask=RAGGED_MASK, **kwargs)
    assert net.num_outputs == 9 and dense.num_outputs == 12
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in dense.parameters())
    r = _dirichlet(7, 2, seed=1)
    out = net(r, EMBEDDINGS[:1])
    assert out.shape == (7, 3, 4)
    assert torch.all(out[:, ~torch.from_numpy(RAGGED_MASK)] == 0)  # padding is constant ...
    assert torch.any(out[:, torch.from_numpy(RAGGED_MASK)] != 0)  # ... the real options are learned
    out[:, torch.from_numpy(RAGGED_MASK)].sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_masked_pretraining_reaches_uniform_logits():
    torch.manual_seed(0)
    net = MetaHyperNetwork(num_edges=3, num_ops=4, num_prototypes=5, num_bins=11, option_mask=RAGGED_MASK)
    r = _dirichlet(64, 2, seed=2)
    with torch.no_grad():
        start = float(net(r, EMBEDDINGS[:1]).abs().mean())
    net.pretrain_uniform(EMBEDDINGS, steps=200, seed=0)
    with torch.no_grad():
        end = float(net(r, EMBEDDINGS[:1]).abs().mean())
    assert end < 0.1 * start


def test_bad_option_masks_are_refused():
    with pytest.raises(ModnasError, match="option mask has shape"):
        MetaHyperNetwork(num_edges=3, num_ops=4, option_mask=np.ones((4, 3), dtype=bool))
    with pytest.raises(ModnasError, match="without options"):
        MetaHyperNetwork(num_edges=3, num_ops=4, option_mask=np.array([[True] * 4, [False] * 4, [True] * 4]))
    net = MetaHyperNetwork(num_edges=3, num_ops=4, option_mask=RAGGED_MASK)
    with pytest.raises(ModnasError, match="dense space"):
        net.load_official_state_dict({})


def test_an_all_true_mask_is_the_dense_network():
    torch.manual_seed(0)
    dense = MetaHyperNetwork()
    torch.manual_seed(0)
    masked = MetaHyperNetwork(option_mask=np.ones((6, 5), dtype=bool))
    assert masked.output_index is None
    r = _dirichlet(5, 2, seed=3)
    assert torch.equal(dense(r, EMBEDDINGS[:1]), masked(r, EMBEDDINGS[:1]))
