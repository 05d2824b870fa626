"""OFA devices (12 GPU settings, Note10 with a fitted embedding) and the reference-normalised latency predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from modnas.spaces.ofa.hardware import TEST_DEVICES, TRAIN_DEVICES, OFADevices, OFALatencyPredictor
from modnas.spaces.ofa.latency import measured_table
from modnas.spaces.ofa.note10 import NOTE10_RESOLUTIONS, note10_latency
from modnas.spaces.ofa.space import OFASpace


@pytest.fixture(scope="module")
def space():
    return OFASpace()


@pytest.fixture(scope="module")
def predictor(space):
    return OFALatencyPredictor(space)


@pytest.fixture(scope="module")
def devices(space):
    return OFADevices(space, load_profiles=False)


def test_devices_and_splits(devices):
    assert devices.names("train") == TRAIN_DEVICES and len(TRAIN_DEVICES) == 11
    assert devices.names("test") == TEST_DEVICES == ("titan_rtx_64", "note10")
    gpu = devices.get("titan_rtx_64")
    assert gpu.references_measured and gpu.embedding.min() == 0 and gpu.embedding.max() == 1
    phone = devices.get("note10")
    assert not phone.references_measured and len(phone.extra_latencies) == 20
    assert {k.split("_")[0] for k in phone.extra_latencies} <= {f"r{r}" for r in NOTE10_RESOLUTIONS}


def test_predictor_is_the_help_net_in_each_devices_reference_units(space, predictor, devices):
    rng = np.random.default_rng(0)
    onehot = space.to_onehot(space.sample(8, rng))
    emb = devices.embeddings(["v100_1", "note10"])
    out = predictor(onehot, emb)
    from modnas.spaces.ofa.encoding import help_features

    net = predictor.net
    for j in range(2):
        e = emb[j].expand(8, -1)
        ms = net(help_features(space, onehot), e)
        ref = net(predictor.reference_features, emb[j].expand(10, -1))
        torch.testing.assert_close(out[:, j], (ms - ref.min()) / (ref.max() - ref.min()))
    pairs = predictor.forward_pairs(onehot[:2], emb)
    torch.testing.assert_close(pairs, torch.stack([out[0, 0], out[1, 1]]))


def test_zero_shot_ranking_on_the_test_devices(space, predictor, devices):
    table = measured_table().iloc[::5]  # 1,000 of HELP's architectures
    onehot = space.to_onehot(np.stack([space.parse(k) for k in table["key"]]))
    with torch.no_grad():
        gpu = predictor(onehot, devices.embeddings(["titan_rtx_64"]))[:, 0].numpy()
    assert spearmanr(gpu, table["lat_titan_rtx_64"])[0] >= 0.95
    phone_space = OFASpace(NOTE10_RESOLUTIONS)
    archs = [phone_space.arch(i) for i in phone_space.sample(300, np.random.default_rng(11))]
    true = [note10_latency(a) for a in archs]
    onehot = space.to_onehot(np.stack([space.indices(a) for a in archs]))
    with torch.no_grad():
        phone = predictor(onehot, devices.embeddings(["note10"]))[:, 0].numpy()
    assert spearmanr(phone, true)[0] >= 0.85


def test_a_restricted_search_space_feeds_the_same_predictions(predictor, devices):
    restricted = OFASpace(range(160, 225, 4))
    small = OFALatencyPredictor(restricted)
    keys = [restricted.to_key(i) for i in restricted.sample(5, np.random.default_rng(2))]
    full = predictor.space
    emb = devices.embeddings(["titan_xp_32"])
    a = predictor(full.to_onehot(np.stack([full.parse(k) for k in keys])), emb)
    b = small(restricted.to_onehot(np.stack([restricted.parse(k) for k in keys])), emb)
    torch.testing.assert_close(a, b)


def test_the_predictor_meets_the_zero_shot_targets_on_the_test_devices():
    """The search's latency predictor on HELP's measured architectures (titan_rtx_64) and the Note10 table (where it
    covers the resolution), from the device embeddings alone: the issue's targets 0.95 and 0.85."""
    import numpy as np

    from modnas.hardware.training import evaluate_predictor
    from modnas.problem import get_problem
    from modnas.spaces.ofa.hardware import latency_data

    problem = get_problem("ofa")
    data = latency_data()
    assert len(data.keys) == 5000 and np.isnan(data.column("note10")).any()  # resolutions the table lacks
    rows = evaluate_predictor(problem.predictor_factory(), data, ["titan_rtx_64", "note10"], shots=())
    spearman = {r.device: r.spearman for r in rows}
    assert spearman["titan_rtx_64"] >= 0.95 and spearman["note10"] >= 0.85


def test_predictor_commands_on_ofa(tmp_path):
    """`predictor train --space ofa` trains HELP's latency net from scratch on the training settings; the checkpoint
    loads as an OFA latency net and the evaluate and predict commands read it."""
    import json

    from typer.testing import CliRunner

    from modnas.cli import app
    from modnas.hardware.predictor import load_predictor
    from modnas.hardware.training import evaluate_predictor
    from modnas.spaces.ofa.hardware import latency_data, predictor_from_config

    out = tmp_path / "ofa.pt"
    result = CliRunner().invoke(app, ["predictor", "train", "--space", "ofa", "--steps", "150", "--batch-size", "128",
                                      "--sampled", "300", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    model, metadata = load_predictor(out, "ofa")
    assert isinstance(model, OFALatencyPredictor) and metadata["train_config"]["steps"] == 150
    assert metadata["sampled"] == 300 and "--sampled 300" in metadata["command"]
    assert not any(p.requires_grad for p in model.parameters())
    data = latency_data()
    torch.manual_seed(0)
    untrained = predictor_from_config({"space": "ofa"}).eval()
    scores = {
        name: {r.device: r.spearman for r in evaluate_predictor(m, data, ["v100_32", "titan_rtx_64"], shots=())}
        for name, m in {"trained": model, "untrained": untrained}.items()
    }
    assert scores["trained"]["v100_32"] > 0.8 > scores["untrained"]["v100_32"]
    assert scores["trained"]["titan_rtx_64"] > 0.8  # zero-shot: never trained on
    result = CliRunner().invoke(app, ["predictor", "evaluate", "--space", "ofa", "--shots", "", "--device",
                                      "titan_rtx_64", "--json", "--checkpoint", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["spearman"] == pytest.approx(scores["trained"]["titan_rtx_64"])
    result = CliRunner().invoke(app, ["predictor", "train", "--space", "ofa", "--steps", "1", "--out", str(out)])
    assert result.exit_code == 2 and "already exists" in result.output  # nothing the user has is overwritten
    result = CliRunner().invoke(app, ["predictor", "evaluate", "--space", "ofa", "--shots", "", "--device",
                                      "titan_rtx_64", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert '"device": "titan_rtx_64"' in result.output


def test_sampled_truth_extends_the_training_data_with_ground_truth_latencies():
    from modnas.errors import ModnasError
    from modnas.hardware.training import TrainConfig, train_predictor, with_sampled_truth
    from modnas.problem import get_problem
    from modnas.spaces.ofa.hardware import latency_data, predictor_from_config

    problem = get_problem("ofa")
    data = latency_data()
    extended = with_sampled_truth(data, problem, 40, seed=3)
    added = list(extended.keys[len(data.keys) :])
    assert 0 < len(added) <= 40 and not set(added) & set(data.keys)
    assert extended.onehots.shape[0] == len(extended.keys)
    assert all(OFASpace().canonical_key(k) == k for k in added)  # keys of the devices' (full) space
    for device in ("v100_1", "titan_rtx_64"):
        column = extended.column(device)
        np.testing.assert_array_equal(column[: len(data.keys)], data.column(device))
        np.testing.assert_allclose(column[len(data.keys) :], problem.truth.evaluate(added, device, ("error", "latency"))[:, 1])
    with pytest.raises(ModnasError, match=">= 1"):
        with_sampled_truth(data, problem, 0)
    # a training device without the latency of every architecture is refused in one line, not trained on NaN
    partial = type(data)(keys=data.keys, onehots=data.onehots, reference_rows=data.reference_rows,
                         column=lambda d: np.where(np.arange(len(data.keys)) == 7, np.nan, data.column(d)),
                         devices=data.devices)  # fmt: skip
    with pytest.raises(ModnasError, match="lacks the latency"):
        train_predictor(partial, TrainConfig(steps=1, devices=("v100_1",)), model=predictor_from_config({}))
