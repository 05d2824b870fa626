"""Predictor training (determinism, test devices excluded), few-shot adaptation and evaluation rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modnas.errors import ModnasError
from modnas.hardware.predictor import PredictorConfig
from modnas.hardware.training import (
    TrainConfig,
    adapt,
    evaluate_predictor,
    over_all_archs,
    predict_normalised,
    summarise,
    train_predictor,
)
from modnas.spaces.nb201.devices import (
    REFERENCE_ARCH_INDICES,
    NB201Devices,
    all_onehots,
    latency_data,
    normalised_predicted_latencies,
    normalised_table,
    registry,
)
from modnas.tables.nb201 import nb201_tables

SMALL = PredictorConfig(gcn_hidden=16, device_hidden=16, head_hidden=32, flat_hidden=32)
QUICK = TrainConfig(steps=40, batch_size=64, lr=3e-3, devices=("1080ti_1", "titanx_256", "silver_4114"))


@pytest.fixture(scope="module")
def quick_model():
    torch.set_num_threads(1)
    return train_predictor(latency_data(), QUICK, SMALL)


def test_training_is_deterministic_under_a_seed(quick_model):
    again = train_predictor(latency_data(), QUICK, SMALL)
    for (name, a), b in zip(quick_model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


def test_training_learns(quick_model):
    from scipy.stats import spearmanr

    untrained = train_predictor(latency_data(), TrainConfig(steps=1, batch_size=2, devices=QUICK.devices), SMALL)
    idx = np.arange(0, 15625, 7)
    device = registry.get("titanx_256")
    truth = normalised_table("titanx_256")[idx]
    before = spearmanr(predict_normalised(untrained, all_onehots()[idx], device), truth)[0]
    after = spearmanr(predict_normalised(quick_model, all_onehots()[idx], device), truth)[0]
    assert after > before + 0.1


def test_training_refuses_test_devices():
    with pytest.raises(ModnasError, match="fpga"):
        train_predictor(latency_data(), TrainConfig(steps=1, devices=("1080ti_1", "fpga")), SMALL)


def test_adapt_fits_the_measurements_and_leaves_the_original(quick_model):
    device = registry.get("pixel2")
    rng = np.random.default_rng(0)
    chosen = rng.choice(np.setdiff1d(np.arange(15625), REFERENCE_ARCH_INDICES), 20, replace=False)
    true = nb201_tables.full_column("latency", "pixel2")
    measured = {nb201_tables.arch_strings[i]: float(true[i]) for i in chosen}
    before = {k: v.clone() for k, v in quick_model.state_dict().items()}
    tuned = adapt(quick_model, device, measured, steps=60, lr=1e-3)
    fit_idx = np.concatenate([REFERENCE_ARCH_INDICES, chosen])
    target = normalised_table("pixel2")[fit_idx]
    err_before = np.mean((predict_normalised(quick_model, all_onehots()[fit_idx], device) - target) ** 2)
    err_after = np.mean((predict_normalised(tuned, all_onehots()[fit_idx], device) - target) ** 2)
    assert err_after < 0.5 * err_before
    assert all(torch.equal(before[k], v) for k, v in quick_model.state_dict().items())


def test_adapt_uses_the_devices_extra_latencies(quick_model):

    fpga = registry.get("fpga")
    true = nb201_tables.full_column("latency", "fpga")
    extras = {nb201_tables.arch_strings[i]: float(true[i]) for i in (1, 2, 3)}
    custom = NB201Devices().register("my_fpga", list(fpga.reference_latencies), extra_latencies=extras)
    a = adapt(quick_model, custom, steps=5)
    b = adapt(quick_model, custom, measurements={}, steps=5)
    onehot = all_onehots()[:50]
    assert not np.allclose(predict_normalised(a, onehot, custom), predict_normalised(b, onehot, custom))


def test_evaluation_rows_and_summary(quick_model):
    rows = evaluate_predictor(quick_model, latency_data(), ["fpga", "1080ti_1"], shots=(5,), seeds=1, adapt_steps=3)
    assert [(r.device, r.setting) for r in rows] == [
        ("fpga", "zero-shot"), ("fpga", "5-shot"), ("1080ti_1", "zero-shot"), ("1080ti_1", "5-shot"),
    ]
    assert {r.split for r in rows} == {"test", "train"}
    assert all(-1 <= r.spearman <= 1 and -1 <= r.kendall <= 1 for r in rows)
    assert set(rows[0].to_dict()) == {"device", "split", "setting", "spearman", "kendall"}
    summary = summarise(rows)
    assert {(s["split"], s["setting"]) for s in summary} == {
        ("test", "zero-shot"), ("test", "5-shot"), ("train", "zero-shot"), ("train", "5-shot"),
    }


def test_over_all_archs_matches_one_pass():
    onehots = all_onehots()[:1000]
    weights = torch.arange(30, dtype=torch.float32)
    out = over_all_archs(lambda x: x.flatten(1) @ weights, onehots, chunk=300)  # 4 uneven chunks
    torch.testing.assert_close(out, onehots.flatten(1) @ weights)
    assert not out.requires_grad


def test_normalised_predicted_latencies_span_zero_to_one():
    from modnas.hardware.predictor import MetaPredictor

    torch.manual_seed(0)
    lat = normalised_predicted_latencies(["pixel3", "fpga"], MetaPredictor(SMALL))
    assert lat.shape == (15625, 2)
    np.testing.assert_allclose(lat.min(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(lat.max(axis=0), 1.0, atol=1e-6)
