"""One-shot search on the OFA space: the elastic supernet trained by the shared one-shot loop, its settings, and the
one-line errors of wrong ones."""

from __future__ import annotations

import json
import math

import pytest
import torch

from modnas.config import load_config
from modnas.errors import ModnasError
from modnas.search.oneshot import OneShotSearch
from modnas.spaces.ofa.supernet import ElasticMobileNetV3

TINY = {
    "space": "ofa",
    "mode": "oneshot",
    "epochs": 1,
    "seed": 3,
    "pretrain_steps": 3,
    "oneshot.train_limit": 64,
    "oneshot.batch_size": 16,
    "oneshot.warmup_epochs": 0,
    "oneshot.supernet": {"width_mult": 0.25, "image_size": 16},
}


def test_the_shared_loop_trains_the_elastic_supernet():
    loop = OneShotSearch(load_config(None, TINY))
    assert isinstance(loop.supernet, ElasticMobileNetV3)
    assert loop.supernet.image_size == 16 and loop.supernet.width_mult == 0.25
    assert loop.supernet.resolutions == loop.space.resolutions  # the benchmark space's 160-224
    before = {k: v.clone() for k, v in loop.supernet.state_dict().items()}
    info = loop.train_epoch()
    assert math.isfinite(info["ce_weights"]) and math.isfinite(info["loss"])
    changed = [k for k, v in loop.supernet.state_dict().items() if not torch.equal(v, before[k])]
    assert any("expand_conv" in k for k in changed) and any("transform_5" in k or "transform_3" in k for k in changed)
    rows, fronts = loop.evaluate()
    assert len(rows) == 13 and all(0.0 <= r["hv"] <= 1.0 for r in rows)
    assert all(f["arch_str"].startswith("r") for f in fronts)


def test_supernet_settings_are_checked():
    with pytest.raises(ModnasError, match="no setting depth"):
        OneShotSearch(load_config(None, {**TINY, "oneshot.supernet": {"depth": 3}}))
    with pytest.raises(ModnasError, match="width_mult must be a number"):
        OneShotSearch(load_config(None, {**TINY, "oneshot.supernet": {"width_mult": "wide"}}))
    with pytest.raises(ModnasError, match="give it as oneshot.C"):
        OneShotSearch(load_config(None, {**TINY, "space": "nb201", "oneshot.supernet": {"C": 4}}))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from modnas.search import search

    out = tmp_path_factory.mktemp("ofa") / "run"
    search(load_config(None, TINY), out)
    return out


def test_batch_norm_is_recalibrated_to_the_mean_over_the_images():
    from modnas.search.inherited import recalibrate_batch_norm

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    net[1].running_mean.fill_(7.0)
    images = torch.randn(12, 3, 8, 8)
    assert recalibrate_batch_norm(net, images, batch_size=4) == 1
    with torch.no_grad():
        expected = net[0](images).mean(dim=(0, 2, 3))
    torch.testing.assert_close(net[1].running_mean, expected, atol=1e-5, rtol=1e-5)
    assert not net.training and net[1].momentum == 0.1  # eval mode, the layer's own momentum back


def test_a_pick_exports_with_its_inherited_weights(run, tmp_path):
    from typer.testing import CliRunner

    from modnas.cli import app
    from modnas.export import build_for_export
    from modnas.search.inherited import inherited_network
    from modnas.spaces.ofa.arch import OFAArch
    from modnas.spaces.ofa.supernet import input_size

    out = tmp_path / "pick"
    result = CliRunner().invoke(app, ["export", str(run), "--device", "titan_rtx_64", "--preference", "0.5,0.5",
                                      "--format", "pt2", "--inherited", "--calibration-images", "32",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.with_suffix(".json").read_text())
    network = record["network"]
    key = record["arch_str"]
    side = input_size(OFAArch.from_key(key).r, 16)
    assert network["width_mult"] == 0.25 and network["num_classes"] == 10 and network["in_channels"] == 1
    assert network["image_size"] == side and network["input_shape"][-1] == side
    assert "inherited from the supernet" in network["weights"] and "32 of its weight-training images" in network["weights"]
    # the exported program computes what the standalone network with the inherited weights computes
    spec, state, _ = inherited_network(run, key, calibration_images=32)
    model = build_for_export(spec, state)
    x = torch.randn(3, 1, side, side)
    program = torch.export.load(str(out.with_suffix(".pt2"))).module()
    torch.testing.assert_close(program(x), model(x), atol=1e-5, rtol=1e-4)
    # the weights are the supernet's: a freshly initialised network computes something else
    fresh = build_for_export(spec)
    assert not torch.allclose(fresh(x), model(x), atol=1e-3)


def test_inherited_export_refusals(run, tmp_path):
    from typer.testing import CliRunner

    from modnas.cli import app

    base = ["export", str(run), "--device", "titan_rtx_64", "--preference", "0.5,0.5", "--out", str(tmp_path / "p")]
    result = CliRunner().invoke(app, [*base, "--inherited"])
    assert result.exit_code != 0 and "--inherited goes into --format onnx or pt2" in result.output
    result = CliRunner().invoke(app, [*base, "--inherited", "--format", "pt2", "--weights", str(tmp_path / "w.pt")])
    assert result.exit_code != 0 and "give one of them" in result.output
    assert not list(tmp_path.iterdir())  # nothing written
