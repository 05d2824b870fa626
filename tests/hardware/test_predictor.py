"""MetaPredictor: shapes, differentiability through the graph encoding, checkpoints, the shipped model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from modnas.errors import ModnasError
from modnas.hardware.predictor import (
    MetaPredictor,
    PredictorConfig,
    load_predictor,
    save_predictor,
)
from modnas.hardware.training import predict_normalised, to_device_unit
from modnas.spaces.nb201 import to_onehot
from modnas.spaces.nb201.devices import (
    REFERENCE_ARCH_INDICES,
    NB201Devices,
    all_onehots,
    normalised_table,
    registry,
)
from modnas.tables.nb201 import nb201_tables

SMALL = PredictorConfig(gcn_hidden=16, device_hidden=16, head_hidden=16, flat_hidden=16)


def embeddings(*names: str) -> torch.Tensor:
    return torch.tensor(np.stack([registry.get(n).embedding for n in names]))


def test_forward_grid_matches_pairs():
    torch.manual_seed(0)
    model = MetaPredictor(SMALL)
    torch.nn.init.normal_(model.wide_net.weight)  # the wide path starts at zero; make it count here
    onehot = to_onehot(nb201_tables.ops_codes[:7])
    emb = embeddings("fpga", "1080ti_1", "pixel2")
    grid = model(onehot, emb)
    assert grid.shape == (7, 3)
    for j in range(3):
        pairs = model.forward_pairs(onehot, emb[j].expand(7, -1))
        torch.testing.assert_close(pairs, grid[:, j])


def test_gradient_reaches_every_edge_of_the_onehot():
    torch.manual_seed(0)
    model = MetaPredictor(PredictorConfig(wide=False, flat_hidden=0))  # the GCN path alone
    logits = torch.zeros(4, 6, 5, requires_grad=True)
    onehot = torch.softmax(logits, -1)
    model(onehot, embeddings("fpga")).sum().backward()
    assert logits.grad is not None
    assert (logits.grad.abs().sum(-1) > 0).all()  # every edge of every architecture gets a gradient


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    model = MetaPredictor(SMALL)
    path = tmp_path / "p.pt"
    save_predictor(model, path, {"note": "x"})
    loaded, meta = load_predictor(path)
    assert meta == {"space": "nb201", "note": "x"} and loaded.config == SMALL
    onehot = to_onehot(nb201_tables.ops_codes[:5])
    torch.testing.assert_close(loaded(onehot, embeddings("fpga")), model.eval()(onehot, embeddings("fpga")))


def test_save_refuses_to_overwrite(tmp_path):
    path = tmp_path / "p.pt"
    path.write_bytes(b"keep me")
    with pytest.raises(ModnasError, match="already exists"):
        save_predictor(MetaPredictor(SMALL), path)
    assert path.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"not a checkpoint at all", "not readable"),
        ("truncated", "not readable"),
        ({"format": "something-else"}, "not a modnas predictor"),
        ({"format": "modnas-metapredictor", "version": 99}, "version 99"),
        ({"format": "modnas-metapredictor", "version": 1, "config": {"gcn_hidden": 7}, "state_dict": {}}, "does not match"),
    ],
)
def test_bad_checkpoints_are_refused(tmp_path, content, needle):
    path = tmp_path / "bad.pt"
    if content == "truncated":
        save_predictor(MetaPredictor(SMALL), path)
        path.write_bytes(path.read_bytes()[:200])
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(ModnasError, match=needle):
        load_predictor(path)
    with pytest.raises(ModnasError, match="does not exist"):
        load_predictor(tmp_path / "missing.pt")


def test_input_shapes_are_checked():
    with pytest.raises(ModnasError):
        MetaPredictor(SMALL)(torch.zeros(6, 5), torch.zeros(1, 10))


# -- the shipped checkpoint -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    model, meta = load_predictor()
    return model, meta


def test_shipped_checkpoint_is_small_and_documented(shipped):
    from modnas.spaces.nb201.problem import PREDICTOR_CHECKPOINT

    path = PREDICTOR_CHECKPOINT
    assert path.stat().st_size < 5 * 1024 * 1024  # type: ignore[attr-defined]
    _, meta = shipped
    assert meta["train_config"]["devices"] == list(registry.names("train"))
    assert "modnas predictor train" in meta["command"]


def test_checkpoints_name_their_space(tmp_path):
    path = tmp_path / "p.pt"
    save_predictor(MetaPredictor(SMALL), path)
    model, meta = load_predictor(path)
    assert meta["space"] == "nb201" and model.config.space == "nb201"
    with pytest.raises(ModnasError, match="for search space 'nb201', not 'toy'"):
        load_predictor(path, space="toy")


@pytest.mark.parametrize(("device", "floor"), [("1080ti_1", 0.97), ("titanx_256", 0.98), ("fpga", 0.95), ("gold_6226", 0.95)])
def test_shipped_predictor_ranks_latency(shipped, device, floor):
    model, _ = shipped
    rng = np.random.default_rng(0)
    idx = rng.choice(15625, 3000, replace=False)
    pred = predict_normalised(model, all_onehots()[idx], registry.get(device))
    assert spearmanr(pred, normalised_table(device)[idx])[0] >= floor


def test_shipped_predictor_speaks_milliseconds(shipped):
    """Reference-normalised outputs convert back to the device's ms scale (fpga is ~1-9 ms, eyeriss ~2-11 ms)."""
    model, _ = shipped
    for name in ("fpga", "titan_rtx_256"):
        device = registry.get(name)
        ms = to_device_unit(predict_normalised(model, all_onehots()[list(REFERENCE_ARCH_INDICES)], device), device)
        true = np.asarray(device.reference_latencies)
        assert np.median(np.abs(ms - true) / true) < 0.25


#: Reference timings of a busy machine (ms): one reference network timed 2.5 s, the fastest 2.5 ms.
BUSY_REFERENCES = [167.3, 2.5, 23.4, 17.1, 33.0, 30.2, 5.0, 47.6, 10.1, 2501.9]


def test_latency_predictions_are_positive_and_ordered_for_a_noisy_custom_device(shipped):
    """Read linearly, a noisy profile's inflated span gave 250 negative latencies (down to -184 ms)."""

    model, _ = shipped
    device = NB201Devices().register("busy", BUSY_REFERENCES)
    normalised = predict_normalised(model, all_onehots(), device)
    ms = to_device_unit(normalised, device)
    assert (ms > 0).all() and np.isfinite(ms).all()
    order = np.argsort(normalised, kind="stable")
    assert (np.diff(ms[order]) >= 0).all()  # the predictor's ranking is kept
    ref = np.asarray(BUSY_REFERENCES)
    raw = ref.min() + normalised * (ref.max() - ref.min())
    high = raw >= 0.3 * ref.min()
    np.testing.assert_array_equal(ms[high], raw[high])  # only implausibly low predictions move


def test_latency_predictions_of_builtin_devices_are_unchanged(shipped):
    """The positive transform leaves every built-in device's predictions exactly as the linear read-out gives
    them, except pixel3's, whose lowest ones were negative."""
    from modnas.hardware.training import over_all_archs

    model, _ = shipped
    names = [n for n in registry.names("all") if n != "pixel3"]
    emb = torch.tensor(np.stack([registry.get(n).embedding for n in names]), dtype=torch.float32)
    normalised = over_all_archs(lambda x: model(x, emb), all_onehots()).numpy()
    for k, name in enumerate(names):
        ref = np.asarray(registry.get(name).reference_latencies)
        linear = ref.min() + normalised[:, k] * (ref.max() - ref.min())
        np.testing.assert_array_equal(to_device_unit(normalised[:, k], registry.get(name)), linear, err_msg=name)
    pixel3 = registry.get("pixel3")
    assert (to_device_unit(predict_normalised(model, all_onehots(), pixel3), pixel3) > 0).all()
