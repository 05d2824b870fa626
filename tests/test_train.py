"""Training a found architecture standalone: architecture sources, settings, outputs and refusals."""

from __future__ import annotations

import json

import pytest
import torch

from modnas.errors import ModnasError
from modnas.train import TrainSettings, load_architecture, resolve_device, train_architecture

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
FAST = {"dataset": "digits", "epochs": 2, "C": 4, "N": 1, "batch_size": 32, "lr": 0.1, "train_limit": 256}


def test_architecture_from_string_index_and_export_json(tmp_path):
    assert load_architecture(ARCH) == (ARCH, {})
    arch_str, _ = load_architecture("0")
    assert arch_str.startswith("|")
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"arch_str": ARCH, "device": "pixel3", "preference": [1.0, 0.0]}))
    arch_str, meta = load_architecture(str(path))
    assert arch_str == ARCH and meta["device"] == "pixel3"


@pytest.mark.parametrize(
    ("content", "match"),
    [("{", "not valid JSON"), ('{"arch": 1}', "no 'arch_str'"), ('{"arch_str": "|bad~0|"}', "malformed")],
)
def test_bad_architecture_files(tmp_path, content, match):
    path = tmp_path / "a.json"
    path.write_text(content)
    with pytest.raises(ModnasError, match=match):
        load_architecture(str(path))
    with pytest.raises(ModnasError, match="does not exist"):
        load_architecture(str(tmp_path / "missing.json"))


def test_settings_presets_and_checks():
    s = TrainSettings(dataset="Fashion_MNIST").resolved()
    assert s.dataset == "fashion-mnist" and s.epochs == 3 and s.batch_size == 128
    with pytest.raises(ModnasError, match="epochs"):
        TrainSettings(epochs=0).resolved()
    with pytest.raises(ModnasError, match="unknown dataset"):
        TrainSettings(dataset="imagenet").resolved()
    assert resolve_device("cpu").type == "cpu"


def test_training_writes_checkpoint_and_result(tmp_path):
    seen = []
    result = train_architecture(ARCH, TrainSettings(**FAST), tmp_path / "out", progress=lambda d, t, i: seen.append(d))
    assert seen[-1] == 2 * (256 // 32)  # 2 epochs over the first 256 training images
    saved = json.loads((tmp_path / "out" / "result.json").read_text())
    assert saved["test_accuracy"] == result["test_accuracy"] and len(saved["history"]) == 2
    assert saved["params"] > 0 and saved["settings"]["C"] == 4 and saved["arch_str"] == ARCH
    assert 10.0 <= result["test_accuracy"] <= 100.0
    state = torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and state["arch_str"] == ARCH
    meta = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert meta["kind"] == "train" and meta["seed"] == 0 and meta["status"] == "complete" and meta["epoch"] == 2
    assert meta["versions"]["torch"] == torch.__version__ and meta["end_time"] is not None
    with pytest.raises(ModnasError, match="not empty"):
        train_architecture(ARCH, TrainSettings(**FAST), tmp_path / "out")


def test_training_is_reproducible_and_learns(tmp_path):
    quick = TrainSettings(**{**FAST, "epochs": 1})
    a = train_architecture(ARCH, quick, tmp_path / "a")
    b = train_architecture(ARCH, quick, tmp_path / "b")
    assert a["history"][0]["test_acc"] == b["history"][0]["test_acc"]
    learned = train_architecture(ARCH, TrainSettings(**{**FAST, "epochs": 3, "train_limit": None}), tmp_path / "c")
    assert learned["test_accuracy"] > 80.0  # 8x8 digits are easy: a few epochs of a tiny network suffice
