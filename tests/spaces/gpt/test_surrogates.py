"""HW-GPT-Bench's GPT-S surrogates against the published test vectors, and their encodings."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest
import torch

from modnas.errors import ModnasError
from modnas.spaces.gpt import surrogates
from modnas.spaces.gpt.arch import GPT_S, GPT_TINY, GPTArch
from modnas.spaces.gpt.surrogates import (
    MEMORY_DIM,
    PERPLEXITY_DIM,
    TEST_VECTORS_FILE,
    memory_features,
    memory_model,
    perplexity_features,
    perplexity_model,
    perplexity_stats,
    predict_memory_mb,
    predict_perplexity,
)


@pytest.fixture(scope="module")
def vectors() -> pd.DataFrame:
    with resources.files("modnas.spaces.gpt").joinpath("data", TEST_VECTORS_FILE).open("rb") as f:
        frame = pd.read_csv(f, compression="gzip")
    assert len(frame) == 300 and (frame["scale"] == "s").all()
    return frame


@pytest.fixture(scope="module")
def archs(vectors: pd.DataFrame) -> list[GPTArch]:
    return [GPTArch.from_key(s, GPT_S) for s in vectors["arch_str"]]


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in str(text).split("-"))


def test_arch_strings_match_the_columns(vectors: pd.DataFrame, archs: list[GPTArch]):
    for arch, row in zip(archs, vectors.itertuples()):
        mlp, heads = _ints(row.mlp_ratios), _ints(row.n_heads)
        built = GPTArch(GPT_S, int(row.embed_dim), int(row.n_layer), mlp, heads, bool(row.bias))
        assert built == arch and built.key == row.arch_str


def test_test_vectors_are_reproduced(vectors: pd.DataFrame, archs: list[GPTArch]):
    ppl = predict_perplexity(archs)
    fp16 = predict_memory_mb(archs, "float16")
    bf16 = predict_memory_mb(archs, "bfloat16")
    assert ppl.dtype == fp16.dtype == bf16.dtype == np.float64 and ppl.shape == (300,)
    assert np.abs(ppl - vectors["pred_perplexity"].to_numpy()).max() < 1e-4
    assert np.abs(fp16 - vectors["pred_float16_memory_mb"].to_numpy()).max() < 5e-3
    assert np.abs(bf16 - vectors["pred_bfloat16_memory_mb"].to_numpy()).max() < 5e-3
    np.testing.assert_array_equal(predict_memory_mb(archs), fp16)


def test_extreme_configs():
    largest, smallest = GPTArch.largest(GPT_S), GPTArch.smallest(GPT_S)
    ppl = predict_perplexity([largest, smallest])
    assert ppl[0] == pytest.approx(21.30, abs=0.01) and ppl[1] == pytest.approx(43.02, abs=0.01)
    stats = perplexity_stats()
    assert set(stats) == {"ppl_min", "ppl_max", "ppl_mean", "ppl_std"}
    assert ppl[0] < stats["ppl_min"] < stats["ppl_mean"] < stats["ppl_max"] < ppl[1]
    assert surrogates.PERPLEXITY_STATS == stats


def test_features_shape_and_inactive_layers():
    full_a = (2, 3, 4, 2, 3, 4, 2, 3, 4, 2, 3, 4)
    full_b = (2, 3, 4, 2, 3, 4, 2, 3, 4, 2, 4, 2)  # differs only in layers 10 and 11
    heads_a = (4, 8, 12) * 4
    heads_b = (4, 8, 12) * 3 + (4, 8, 4)
    a = GPTArch(GPT_S, 384, 10, full_a[:10], heads_a[:10], True)
    b = GPTArch(GPT_S, 384, 10, full_b[:10], heads_b[:10], True)
    pa, pb = perplexity_features([a]), perplexity_features([b])
    ma, mb = memory_features([a]), memory_features([b])
    assert pa.shape == (1, PERPLEXITY_DIM) == (1, 80) and ma.shape == (1, MEMORY_DIM) == (1, 27)
    assert pa.dtype == ma.dtype == np.float32
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(ma, mb)
    mlp, heads = pa[0, 6:42].reshape(12, 3), pa[0, 42:78].reshape(12, 3)
    assert (mlp[10:] == 0).all() and (heads[10:] == 0).all() and (mlp[:10].sum(1) == 1).all()
    assert pa[0, :6].tolist() == [0, 1, 0, 1, 0, 0] and pa[0, 78:].tolist() == [1, 0]
    assert ma[0, :2].tolist() == pytest.approx([1 / 3, 0.0]) and (ma[0, [12, 13, 24, 25]] == -1).all()
    assert ma[0, 2:5].tolist() == [0.0, 0.5, 1.0] and ma[0, -1] == 1.0


def test_gradient_reaches_the_features():
    archs = [GPTArch.largest(GPT_S), GPTArch.smallest(GPT_S)]
    for model, features in (
        (perplexity_model(), perplexity_features(archs)),
        (memory_model("bfloat16"), memory_features(archs)),
    ):
        x = torch.tensor(features, requires_grad=True)
        out = model(x)
        assert out.shape == (2,)
        out.sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        assert all(not p.requires_grad for p in model.parameters())


def test_bad_dtype_and_other_variants_are_refused():
    with pytest.raises(ModnasError, match="'float32'.*float16, bfloat16"):
        memory_model("float32")
    with pytest.raises(ModnasError, match="float8"):
        predict_memory_mb([GPTArch.largest(GPT_S)], dtype="float8")
    tiny = GPTArch.largest(GPT_TINY)
    for fn in (predict_perplexity, predict_memory_mb, perplexity_features, memory_features):
        with pytest.raises(ModnasError, match="gpt-s only, got gpt-tiny"):
            fn([tiny])
