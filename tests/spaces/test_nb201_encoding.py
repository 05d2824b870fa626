"""Tests for the NB201 encodings: strings, op indices, canonical indices, one-hots and the HELP graph."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from modnas.errors import ModnasError
from modnas.spaces import get_space, nb201
from modnas.spaces.base import SearchSpace
from modnas.spaces.nb201 import NB201Space
from modnas.tables.nb201 import NUM_ARCHS, nb201_tables

ARCH0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MIXED = "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"
VALID = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"

# Canonical op index -> HELP feature column
# (input=0, avg=1, conv1x1=2, conv3x3=3, none=4, skip=5, output=6, global=7).
HELP_COLUMN_OF_OP = [4, 5, 2, 3, 1]  # none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3

# Written by hand: row i lists the predecessors of node i plus i itself (HELP's transposed adjacency).
EXPECTED_ADJACENCY = [
    # 0  1  2  3  4  5  6  7  8
    [1, 0, 0, 0, 0, 0, 0, 0, 0],  # 0 input
    [1, 1, 0, 0, 0, 0, 0, 0, 0],  # 1 edge 1<-0: reads the input
    [1, 0, 1, 0, 0, 0, 0, 0, 0],  # 2 edge 2<-0: reads the input
    [0, 1, 0, 1, 0, 0, 0, 0, 0],  # 3 edge 2<-1: reads cell-node 1 = op node 1
    [1, 0, 0, 0, 1, 0, 0, 0, 0],  # 4 edge 3<-0: reads the input
    [0, 1, 0, 0, 0, 1, 0, 0, 0],  # 5 edge 3<-1: reads cell-node 1 = op node 1
    [0, 0, 1, 1, 0, 0, 1, 0, 0],  # 6 edge 3<-2: reads cell-node 2 = op nodes 2 and 3
    [0, 0, 0, 0, 1, 1, 1, 1, 0],  # 7 output: the three edges into cell-node 3
    [1, 1, 1, 1, 1, 1, 1, 1, 1],  # 8 global: aggregates from everything
]

#                 in avg c1 c3 none skip out glob
EXPECTED_FEATURES = {
    ALL_CONV3: [
        [1, 0, 0, 0, 0, 0, 0, 0],  # input
        [0, 0, 0, 1, 0, 0, 0, 0],  # 1<-0 nor_conv_3x3
        [0, 0, 0, 1, 0, 0, 0, 0],  # 2<-0 nor_conv_3x3
        [0, 0, 0, 1, 0, 0, 0, 0],  # 2<-1 nor_conv_3x3
        [0, 0, 0, 1, 0, 0, 0, 0],  # 3<-0 nor_conv_3x3
        [0, 0, 0, 1, 0, 0, 0, 0],  # 3<-1 nor_conv_3x3
        [0, 0, 0, 1, 0, 0, 0, 0],  # 3<-2 nor_conv_3x3
        [0, 0, 0, 0, 0, 0, 1, 0],  # output
        [0, 0, 0, 0, 0, 0, 0, 1],  # global
    ],
    ARCH0: [
        [1, 0, 0, 0, 0, 0, 0, 0],  # input
        [0, 1, 0, 0, 0, 0, 0, 0],  # 1<-0 avg_pool_3x3
        [0, 0, 1, 0, 0, 0, 0, 0],  # 2<-0 nor_conv_1x1
        [0, 0, 0, 0, 0, 1, 0, 0],  # 2<-1 skip_connect
        [0, 0, 1, 0, 0, 0, 0, 0],  # 3<-0 nor_conv_1x1
        [0, 0, 0, 0, 0, 1, 0, 0],  # 3<-1 skip_connect
        [0, 0, 0, 0, 0, 1, 0, 0],  # 3<-2 skip_connect
        [0, 0, 0, 0, 0, 0, 1, 0],  # output
        [0, 0, 0, 0, 0, 0, 0, 1],  # global
    ],
    MIXED: [
        [1, 0, 0, 0, 0, 0, 0, 0],  # input
        [0, 0, 0, 0, 1, 0, 0, 0],  # 1<-0 none
        [0, 0, 0, 0, 0, 1, 0, 0],  # 2<-0 skip_connect
        [0, 0, 1, 0, 0, 0, 0, 0],  # 2<-1 nor_conv_1x1
        [0, 0, 0, 1, 0, 0, 0, 0],  # 3<-0 nor_conv_3x3
        [0, 1, 0, 0, 0, 0, 0, 0],  # 3<-1 avg_pool_3x3
        [0, 0, 0, 0, 1, 0, 0, 0],  # 3<-2 none
        [0, 0, 0, 0, 0, 0, 1, 0],  # output
        [0, 0, 0, 0, 0, 0, 0, 1],  # global
    ],
}


@pytest.fixture(scope="module")
def strings() -> np.ndarray:
    return nb201_tables.arch_strings


@pytest.fixture(scope="module")
def codes() -> np.ndarray:
    return nb201_tables.ops_codes


# -- constants -----------------------------------------------------------------------------------------------


def test_op_and_edge_conventions():
    assert nb201.OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert nb201.EDGES == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    assert (nb201.NUM_EDGES, nb201.NUM_OPS) == (6, 5)
    assert nb201.HELP_NODE_TYPES == (
        "input", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3", "none", "skip_connect", "output", "global",
    )


# -- round trips over all 15,625 architectures ---------------------------------------------------------------


def test_table_has_every_arch_once(strings, codes):
    assert len(strings) == NUM_ARCHS == 15_625
    assert codes.shape == (NUM_ARCHS, 6)
    assert len(set(strings.tolist())) == NUM_ARCHS
    assert len({tuple(row) for row in codes.tolist()}) == NUM_ARCHS


def test_string_to_indices_to_string_all(strings, codes):
    for i, s in enumerate(strings):
        ops = nb201.parse(s)
        assert ops.dtype == np.int64 and ops.shape == (6,)
        np.testing.assert_array_equal(ops, codes[i])
        assert nb201.to_string(ops) == s


def test_batch_parse_matches_ops_codes(strings, codes):
    np.testing.assert_array_equal(nb201.as_indices(list(strings)), codes)
    np.testing.assert_array_equal(nb201.as_indices(strings), codes)  # numpy array of strings


def test_string_to_index_is_table_row_order(strings):
    np.testing.assert_array_equal(nb201.to_index(list(strings)), np.arange(NUM_ARCHS))


def test_indices_batch_to_index_is_arange(codes):
    np.testing.assert_array_equal(nb201.to_index(codes), np.arange(NUM_ARCHS))


def test_to_index_keeps_leading_dims(codes):
    out = nb201.to_index(codes.reshape(125, 125, 6))
    np.testing.assert_array_equal(out, np.arange(NUM_ARCHS).reshape(125, 125))


@pytest.mark.parametrize("i", [0, 1, 6111, 7581, 15_624])
def test_to_index_of_single_string_is_scalar(strings, i):
    out = nb201.to_index(strings[i])
    assert np.ndim(out) == 0
    assert int(out) == i


def test_index_to_string_all(strings):
    for i in range(NUM_ARCHS):
        assert nb201.index_to_string(i) == strings[i]


def test_index_to_indices_to_onehot_to_indices(codes):
    ops = nb201.from_index(np.arange(NUM_ARCHS))
    np.testing.assert_array_equal(ops, codes)
    onehot = nb201.to_onehot(ops)
    assert onehot.shape == (NUM_ARCHS, 6, 5)
    assert onehot.dtype == torch.float32
    assert torch.all(onehot.sum(dim=-1) == 1)
    assert torch.all((onehot == 0) | (onehot == 1))
    np.testing.assert_array_equal(nb201.from_onehot(onehot), codes)


def test_from_index_scalar_shape(codes):
    np.testing.assert_array_equal(nb201.from_index(42), codes[42])
    assert nb201.from_index(np.int64(42)).shape == (6,)


def test_to_onehot_of_string_and_dtype():
    onehot = nb201.to_onehot(ARCH0, dtype=torch.float64)
    assert onehot.dtype == torch.float64 and onehot.shape == (6, 5)
    np.testing.assert_array_equal(onehot.argmax(-1).numpy(), [4, 2, 1, 2, 1, 1])


def test_from_onehot_takes_argmax_of_logits():
    logits = torch.tensor([[0.1, 0.2, 3.0, -1.0, 0.0]] * 6)
    logits[5] = torch.tensor([9.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(nb201.from_onehot(logits), [2, 2, 2, 2, 2, 0])


def test_canonical_index_is_not_base5(codes):
    assert nb201.index_to_string(0) == ARCH0
    np.testing.assert_array_equal(nb201.parse(ARCH0), [4, 2, 1, 2, 1, 1])
    base5 = int(np.asarray([4, 2, 1, 2, 1, 1]) @ (5 ** np.arange(5, -1, -1)))
    assert base5 != 0
    assert int(nb201.to_index(ARCH0)) == 0
    all_none = int(nb201.to_index([0] * 6))
    assert all_none != 0
    assert nb201.index_to_string(all_none) == VALID


def test_float_indices_that_are_integers_are_accepted():
    assert nb201.to_string([3.0] * 6) == ALL_CONV3


def test_parse_strips_surrounding_whitespace():
    np.testing.assert_array_equal(nb201.parse("  " + ARCH0 + "\n"), [4, 2, 1, 2, 1, 1])


# -- HELP graph encoding -------------------------------------------------------------------------------------


def test_help_adjacency_by_hand():
    expected = torch.tensor(EXPECTED_ADJACENCY, dtype=torch.float32)
    torch.testing.assert_close(nb201.help_adjacency(), expected)


def test_help_adjacency_is_transposed_orientation():
    adj = nb201.help_adjacency()
    assert torch.all(adj[8] == 1)  # global row: aggregates from all nodes
    assert adj[:8, 8].sum() == 0  # nobody aggregates from the global node
    assert torch.all(torch.diag(adj) == 1)
    assert adj[7, 4] == 1 and adj[4, 7] == 0  # output aggregates from edge 3<-0, not the reverse
    assert adj[1, 0] == 1 and adj[0, 1] == 0


@pytest.mark.parametrize("arch", list(EXPECTED_FEATURES))
def test_graph_encoding_by_hand(arch):
    x, adj = nb201.graph_encoding(nb201.to_onehot(arch))
    assert x.shape == (9, 8) and adj.shape == (9, 9)
    torch.testing.assert_close(x, torch.tensor(EXPECTED_FEATURES[arch], dtype=torch.float32))
    torch.testing.assert_close(adj, torch.tensor(EXPECTED_ADJACENCY, dtype=torch.float32))


def test_graph_encoding_of_arch0_from_table():
    x, _ = nb201.graph_encoding(nb201.to_onehot(nb201.from_index(0)))
    torch.testing.assert_close(x, torch.tensor(EXPECTED_FEATURES[ARCH0], dtype=torch.float32))


@pytest.mark.parametrize("batch", [(4,), (2, 3), (1, 2, 2)])
def test_graph_encoding_batched(batch):
    rng = np.random.default_rng(7)
    ops = rng.integers(0, 5, size=(*batch, 6))
    onehot = nb201.to_onehot(ops)
    x, adj = nb201.graph_encoding(onehot)
    assert x.shape == (*batch, 9, 8)
    assert adj.shape == (*batch, 9, 9)
    flat_ops = ops.reshape(-1, 6)
    flat_x, flat_adj = x.reshape(-1, 9, 8), adj.reshape(-1, 9, 9)
    for k in range(len(flat_ops)):
        x1, adj1 = nb201.graph_encoding(nb201.to_onehot(flat_ops[k]))
        torch.testing.assert_close(flat_x[k], x1)
        torch.testing.assert_close(flat_adj[k], adj1)


def test_graph_encoding_all_archs_rows_sum_to_one(codes):
    x, adj = nb201.graph_encoding(nb201.to_onehot(codes))
    assert x.shape == (NUM_ARCHS, 9, 8)
    assert torch.all(x.sum(-1) == 1)
    # op rows are the one-hot columns permuted to HELP order
    help_cols = x[:, 1:7].argmax(-1).numpy()
    np.testing.assert_array_equal(help_cols, np.asarray(HELP_COLUMN_OF_OP)[codes])
    assert torch.all(adj == nb201.help_adjacency())


def test_graph_encoding_keeps_dtype():
    x, adj = nb201.graph_encoding(nb201.to_onehot(ARCH0, dtype=torch.float64))
    assert x.dtype == torch.float64 and adj.dtype == torch.float64


def test_graph_encoding_gradient_is_permuted_weights():
    onehot = nb201.to_onehot(ARCH0).requires_grad_(True)
    weights = torch.arange(72, dtype=torch.float32).reshape(9, 8)
    x, _ = nb201.graph_encoding(onehot)
    (x * weights).sum().backward()
    # d/d onehot[e, op] = weights[1 + e, HELP column of op] = 8 * (1 + e) + column
    expected = torch.tensor(
        [[8.0 * (1 + e) + c for c in HELP_COLUMN_OF_OP] for e in range(6)], dtype=torch.float32
    )
    assert onehot.grad is not None
    torch.testing.assert_close(onehot.grad, expected)


def test_graph_encoding_gradient_reaches_logits_batched():
    logits = torch.randn(3, 6, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    probs = torch.softmax(logits, dim=-1)
    x, adj = nb201.graph_encoding(probs)
    torch.testing.assert_close(x[:, 1:7, 1:6], probs[..., [4, 2, 3, 0, 1]])
    assert not adj.requires_grad
    x[..., 1:7, 3].sum().backward()  # total nor_conv_3x3 probability
    assert logits.grad is not None
    assert torch.all(logits.grad[..., 3] > 0)  # raising the conv3x3 logit raises the objective
    assert torch.all(logits.grad[..., [0, 1, 2, 4]] < 0)


def test_graph_encoding_adjacency_does_not_alias_module_constant():
    # BUG: for an unbatched one-hot the returned adjacency IS the lru_cached tensor of help_adjacency()
    # (`.to()` and `.expand()` are no-ops), so an in-place edit by the caller (e.g. GCN normalisation
    # `adj /= adj.sum(-1, keepdim=True)`) corrupts every later encoding in the process.
    before = nb201.help_adjacency().clone()
    _, adj = nb201.graph_encoding(nb201.to_onehot(ARCH0))
    try:
        adj.div_(adj.sum(-1, keepdim=True))
        _, fresh = nb201.graph_encoding(nb201.to_onehot(ARCH0))
        assert torch.equal(fresh, before), "in-place edit of a returned adjacency changed later encodings"
    finally:
        nb201.help_adjacency().copy_(before)


# -- sampling and the SearchSpace interface ------------------------------------------------------------------


def test_sample_shape_range_and_determinism():
    a = nb201.sample(500, np.random.default_rng(3))
    b = nb201.sample(500, np.random.default_rng(3))
    assert a.shape == (500, 6) and a.dtype == np.int64
    assert a.min() == 0 and a.max() == 4
    np.testing.assert_array_equal(a, b)
    assert nb201.sample(0, np.random.default_rng(0)).shape == (0, 6)


def test_space_interface():
    space = get_space("nb201")
    assert isinstance(space, NB201Space) and isinstance(space, SearchSpace)
    assert space.name == "nb201"
    assert (space.num_decisions, space.num_choices, space.num_archs) == (6, 5, NUM_ARCHS)
    assert space.choice_names == nb201.OPS
    ops = space.parse(ARCH0)
    assert space.to_string(ops) == ARCH0
    assert int(space.to_index(ARCH0)) == 0
    np.testing.assert_array_equal(space.from_index(0), ops)
    onehot = space.to_onehot(ops)
    torch.testing.assert_close(onehot, nb201.to_onehot(ops))
    np.testing.assert_array_equal(space.from_logits(onehot), ops)
    assert space.keys(ops[None]) == [ARCH0] and space.to_key(ops) == ARCH0
    assert space.enumerate().shape == (NUM_ARCHS, 6) and not space.is_ragged and not space.is_conditional
    assert len(space.neighbours(ops)) == 24 and len(space.reference_architectures()) == 10
    torch.testing.assert_close(space.features(onehot), onehot.flatten(-2))
    x, adj = space.graph_encoding(onehot)
    torch.testing.assert_close(x, torch.tensor(EXPECTED_FEATURES[ARCH0], dtype=torch.float32))
    assert space.sample(5, np.random.default_rng(0)).shape == (5, 6)


# -- bad inputs ----------------------------------------------------------------------------------------------


def test_modnas_error_is_value_error():
    assert issubclass(ModnasError, ValueError)


@pytest.mark.parametrize(
    ("arch", "named"),
    [
        pytest.param("|none~0||none~0|none~1||none~0|none~1|none~2|", "'+'", id="missing-plus"),
        pytest.param("|none~0|+|none~0|none~1|", "'+'", id="two-groups"),
        pytest.param(VALID + "+|none~0|", "'+'", id="four-groups"),
        pytest.param(
            "|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 input edge(s), got 1", id="few-edges"
        ),
        pytest.param("|none~0|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1", id="many-edges"),
        pytest.param("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "'conv_5x5'", id="unknown-op"),
        pytest.param("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "'none~1'", id="wrong-input"),
        pytest.param("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "'none~0'", id="repeated-input"),
        pytest.param("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "'none'", id="no-tilde"),
        pytest.param("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "'none~0'", id="no-pipes"),
        pytest.param("|None~0|+|none~0|none~1|+|none~0|none~1|none~2|", "'None~0'", id="uppercase"),
        pytest.param("", "''", id="empty"),
        pytest.param("   ", "'   '", id="blank"),
    ],
)
def test_parse_rejects_malformed(arch, named):
    with pytest.raises(ModnasError) as info:
        nb201.parse(arch)
    assert named in str(info.value)


@pytest.mark.parametrize(("arch", "type_name"), [(123, "int"), (None, "NoneType"), (b"|none~0|", "bytes")])
def test_parse_rejects_non_string(arch, type_name):
    with pytest.raises(ModnasError, match=type_name):
        nb201.parse(arch)


def test_parse_rejects_embedded_newline():
    # BUG: the edge regex ends in `$`, which also matches before a trailing "\n", so a token like
    # "none~0\n" inside the string is accepted and the malformed string parses as if it were canonical.
    arch = "|none~0\n|+|none~0|none~1|+|none~0|none~1|none~2|"
    with pytest.raises(ModnasError, match="none~0"):
        nb201.parse(arch)


@pytest.mark.parametrize(
    ("indices", "named"),
    [
        pytest.param([0, 0, 0, 0, 0, 5], "5", id="too-big"),
        pytest.param([0, -1, 0, 0, 0, 0], "-1", id="negative"),
        pytest.param([[0] * 6, [0, 0, 0, 0, 0, 7]], "7", id="batch-too-big"),
    ],
)
def test_op_index_out_of_range(indices, named):
    with pytest.raises(ModnasError, match=f"op index {named} is out of range"):
        nb201.check_indices(indices)
    with pytest.raises(ModnasError, match=f"op index {named}"):
        nb201.to_index(indices)


@pytest.mark.parametrize(
    ("indices", "named"),
    [
        pytest.param([0] * 5, r"\(5,\)", id="five"),
        pytest.param([0] * 7, r"\(7,\)", id="seven"),
        pytest.param(3, r"\(\)", id="scalar"),
        pytest.param(np.zeros((2, 3), dtype=np.int64), r"\(2, 3\)", id="2x3"),
    ],
)
def test_op_indices_wrong_length(indices, named):
    with pytest.raises(ModnasError, match=named):
        nb201.check_indices(indices)
    with pytest.raises(ModnasError, match=named):
        nb201.to_onehot(indices)


@pytest.mark.parametrize(
    ("indices", "named"),
    [
        pytest.param([0.5, 0, 0, 0, 0, 0], "float64", id="fraction"),
        pytest.param([np.nan, 0, 0, 0, 0, 0], "float64", id="nan"),
        pytest.param(np.ones(6, dtype=bool), "bool", id="bool"),
        pytest.param(np.array([1, 2, 3, 4, 0, 1], dtype=object), "object", id="object"),
    ],
)
def test_op_indices_non_integer(indices, named):
    with pytest.raises(ModnasError, match=named):
        nb201.check_indices(indices)


def test_to_string_rejects_batch():
    with pytest.raises(ModnasError, match=r"\(2, 6\)"):
        nb201.to_string(np.zeros((2, 6), dtype=np.int64))


@pytest.mark.parametrize("bad", [-1, NUM_ARCHS])
def test_canonical_index_out_of_range(bad):
    with pytest.raises(ModnasError, match=f"architecture index {bad} is out of range"):
        nb201.from_index(bad)
    with pytest.raises(ModnasError, match=f"architecture index {bad}"):
        nb201.from_index(np.array([0, 1, bad]))
    with pytest.raises(ModnasError, match=f"architecture index {bad}"):
        nb201.index_to_string(bad)


def test_from_index_rejects_float():
    with pytest.raises(ModnasError, match="3.5"):
        nb201.from_index(3.5)


def test_index_to_string_rejects_non_integer():
    # BUG: index_to_string coerces with np.int64(index) before validating, so 3.7 is silently truncated to
    # arch 3 (from_index rejects the same value with "architecture index must be an integer").
    with pytest.raises(ModnasError, match="3.7"):
        nb201.index_to_string(3.7)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "shape", [(5, 6), (6, 4), (30,), (2, 6, 6), ()], ids=lambda s: "x".join(map(str, s)) or "scalar"
)
def test_wrong_onehot_shape(shape):
    bad = torch.zeros(shape)
    with pytest.raises(ModnasError, match=re.escape(str(tuple(shape)))):
        nb201.graph_encoding(bad)
    with pytest.raises(ModnasError, match=re.escape(str(tuple(shape)))):
        nb201.from_onehot(bad)


def test_unknown_space():
    with pytest.raises(ModnasError, match="'nb999'"):
        get_space("nb999")


def test_sample_negative():
    with pytest.raises(ModnasError, match="-1"):
        nb201.sample(-1, np.random.default_rng(0))


def _path_feature(ops: tuple[int, ...]) -> int:
    """Column of an op sequence in the path encoding: 1-edge paths first, then 2-edge, then 3-edge (base 5)."""
    offset = {1: 0, 2: 5, 3: 30}[len(ops)]
    return offset + int(np.ravel_multi_index(ops, (5,) * len(ops)))


def test_path_encoding_by_hand():
    # 1<-0 conv3x3, 2<-0 skip, 2<-1 conv1x1, 3<-0 none, 3<-1 pool, 3<-2 skip
    arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|skip_connect~2|"
    feats = nb201.path_encoding(nb201.to_onehot(arch))
    assert feats.shape == (155,) and feats.sum() == 4  # one feature per input-to-output path
    expected = {_path_feature((0,)), _path_feature((3, 4)), _path_feature((1, 1)), _path_feature((3, 2, 1))}
    assert set(torch.nonzero(feats).flatten().tolist()) == expected


def test_path_encoding_shares_the_two_short_paths():
    # 1<-0 pool, 3<-1 conv1x1 and 2<-0 pool, 3<-2 conv1x1 are the same op sequence: the feature counts 2
    arch = "|avg_pool_3x3~0|+|avg_pool_3x3~0|none~1|+|none~0|nor_conv_1x1~1|nor_conv_1x1~2|"
    feats = nb201.path_encoding(nb201.to_onehot(arch))
    assert feats[_path_feature((4, 2))] == 2 and feats.sum() == 4


def test_path_encoding_is_differentiable_and_batched(codes):
    onehot = nb201.to_onehot(codes[:7]).requires_grad_(True)
    feats = nb201.path_encoding(onehot.reshape(7, 6, 5))
    assert feats.shape == (7, 155)
    feats[:, _path_feature((3,))].sum().backward()  # the direct path 3<-0 being conv3x3 reads edge 3 only
    assert torch.all(onehot.grad[:, 3, 3] == 1) and onehot.grad.abs().sum() == 7
    with pytest.raises(ModnasError, match="one-hot"):
        nb201.path_encoding(torch.zeros(2, 5, 5))
