"""GPT latency tables: settings, a real (tiny) measurement, the table sum and its exact one-hot model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modnas.errors import ModnasError
from modnas.spaces.gpt.arch import GPT_TINY
from modnas.spaces.gpt.hardware import TableModel
from modnas.spaces.gpt.latency import (
    LatencyTable,
    Setting,
    arch_entries,
    entry_keys,
    measure_table,
    validate_table,
)
from modnas.spaces.gpt.space import GPTSpace

TINY = GPTSpace(GPT_TINY)


def test_settings_parse_and_label():
    s = Setting.parse("cpu-b8-s128-t2")
    assert (s.hardware, s.batch_size, s.sequence_length, s.dtype, s.threads) == ("cpu", 8, 128, "fp32", 2)
    assert Setting.parse(s.label) == s
    assert Setting.parse("cuda-b64-s1024-bf16").dtype == "bf16"
    for bad, needle in (("cpu-b1", "needs a batch size and a sequence length"), ("cpu-b1-s8-x3", "unknown part"),
                        ("tpu-b1-s8", "runs on 'cpu' or 'cuda'"), ("cpu-b0-s8", "batch size")):  # fmt: skip
        with pytest.raises(ModnasError, match=needle):
            Setting.parse(bad)


@pytest.fixture(scope="module")
def table() -> LatencyTable:
    # a real measurement, kept tiny: 8 tokens, one timed pass per part
    return measure_table("gpt-tiny", Setting("cpu", 1, 8, "fp32", 1), warmup=1, repeats=1)


def test_measured_table_has_every_part_and_sums(table, tmp_path):
    assert set(table.latency_ms) == set(entry_keys(GPT_TINY))
    assert all(v > 0 for v in table.latency_ms.values())
    assert table.meta["threads"] == 1 and table.meta["repeats"] == 1
    archs = [TINY.arch(i) for i in TINY.sample(5, np.random.default_rng(0))]
    manual = [sum(table.latency_ms[k] for k in arch_entries(a)) for a in archs]
    assert np.allclose(table.predict(archs), manual)
    table.save(tmp_path / "t.json")
    assert LatencyTable.load(tmp_path / "t.json").latency_ms == table.latency_ms
    with pytest.raises(ModnasError, match="has no energy values"):
        table.predict(archs, "energy")


def test_table_model_is_exact_and_differentiable(table):
    idx = TINY.sample(16, np.random.default_rng(2))
    model = TableModel(TINY, table)
    assert np.allclose(model.predict(idx), table.predict([TINY.arch(i) for i in idx]))
    onehot = TINY.to_onehot(idx).requires_grad_(True)
    model(onehot).sum().backward()
    assert onehot.grad is not None and onehot.grad.abs().sum() > 0
    # inactive layer slots get no gradient
    inactive = ~TINY.active(idx)
    assert torch.all(onehot.grad[torch.as_tensor(inactive)] == 0)


def test_validation_times_whole_models(table):
    check = validate_table(table, count=4, repeats=1, warmup=0)
    assert len(check["measured_ms"]) == 10 + 4 and all(v > 0 for v in check["measured_ms"])
    assert -1.0 <= check["spearman"] <= 1.0 and check["mape_pct"] >= 0


def test_malformed_table_files(tmp_path, table):
    data = table.to_json()
    del data["latency_ms"][entry_keys(GPT_TINY)[0]]
    with pytest.raises(ModnasError, match="no latency for 1 parts"):
        LatencyTable.from_json(data)
    with pytest.raises(ModnasError, match="not a modnas-gpt-latency-table"):
        LatencyTable.from_json({"format": "x"})
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ModnasError, match="cannot be read"):
        LatencyTable.load(tmp_path / "bad.json")
