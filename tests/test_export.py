"""Exporting a network: ONNX (checked in ONNX Runtime) and torch.export files match PyTorch, with or without the
weights of a ``modnas train`` checkpoint; every bad input is a one-line error before any file is written."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from modnas.errors import ModnasError
from modnas.export import NetworkSpec, build_for_export, export_choice, load_weights
from modnas.train import TrainSettings, train_architecture

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
OTHER = "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|nor_conv_3x3~0|none~1|avg_pool_3x3~2|"
# ONNX Runtime's kernels differ from PyTorch's in summation order only: float32 round-off, far below these bounds
# (measured: max abs difference ~1e-8 on logits of magnitude ~0.3)
ONNX_TOL = {"rtol": 1e-4, "atol": 1e-5}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A `modnas train` checkpoint of ARCH on digits (1 x 8 x 8 images): a tiny network, one short epoch."""
    out = tmp_path_factory.mktemp("trained") / "run"
    settings = TrainSettings(dataset="digits", epochs=1, C=4, N=1, batch_size=32, train_limit=64, device="cpu")
    train_architecture(ARCH, settings, out)
    return out / "checkpoint.pt"


def _inputs(spec: NetworkSpec, batch: int) -> torch.Tensor:
    return torch.randn(spec.input_shape(batch), generator=torch.Generator().manual_seed(1))


def test_weights_give_the_network_spec(checkpoint):
    spec, state = load_weights(checkpoint, ARCH)
    assert spec == NetworkSpec(ARCH, C=4, N=1, num_classes=10, in_channels=1, image_size=8)
    model = build_for_export(spec, state)
    assert not model.training
    assert torch.equal(model.state_dict()["classifier.weight"], state["classifier.weight"])


def test_onnx_with_weights_matches_pytorch_in_onnx_runtime(checkpoint, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    written = export_choice({"arch_str": ARCH}, tmp_path / "net", ["onnx"], weights=checkpoint)
    assert [p.name for p in written] == ["net.json", "net.onnx"]
    spec, state = load_weights(checkpoint, ARCH)
    model = build_for_export(spec, state)
    session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    for batch in (1, 5):  # the batch axis is dynamic (the export used a batch of 2)
        x = _inputs(spec, batch)
        (logits,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            expected = model(x).numpy()
        assert logits.shape == (batch, 10)
        np.testing.assert_allclose(logits, expected, **ONNX_TOL)
    record = json.loads((tmp_path / "net.json").read_text())
    assert record["network"]["weights"] == str(checkpoint) and record["network"]["input_shape"] == ["batch", 1, 8, 8]
    assert record["network"]["onnx_exporter"] == "torchscript"


def test_pt2_with_weights_loads_with_torch_export_and_matches(checkpoint, tmp_path):
    export_choice({"arch_str": ARCH}, tmp_path / "net", ["pt2"], weights=checkpoint)
    spec, state = load_weights(checkpoint, ARCH)
    model = build_for_export(spec, state)
    program = torch.export.load(str(tmp_path / "net.pt2")).module()
    for batch in (1, 3):
        x = _inputs(spec, batch)
        with torch.no_grad():
            torch.testing.assert_close(program(x), model(x), rtol=1e-5, atol=1e-6)


def test_onnx_without_weights_is_the_nb201_network(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    export_choice({"arch_str": OTHER}, tmp_path / "plain", ["onnx"])
    session = ort.InferenceSession(str(tmp_path / "plain.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": np.zeros((2, 3, 32, 32), dtype=np.float32)})
    assert logits.shape == (2, 10)
    record = json.loads((tmp_path / "plain.json").read_text())
    assert record["network"]["C"] == 16 and record["network"]["N"] == 5 and record["network"]["weights"] is None


def test_weights_of_another_architecture_are_refused(checkpoint, tmp_path):
    with pytest.raises(ModnasError, match="holds the weights of .* not of the exported architecture"):
        export_choice({"arch_str": OTHER}, tmp_path / "net", ["onnx"], weights=checkpoint)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"not a checkpoint", "not a readable checkpoint"), (None, "not a `modnas train` checkpoint")],
)
def test_files_that_are_not_train_checkpoints(tmp_path, content, needle):
    path = tmp_path / "weights.pt"
    if content is None:
        torch.save({"hypernet": {}}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ModnasError, match=needle):
        load_weights(path, ARCH)
    with pytest.raises(ModnasError, match="does not exist"):
        load_weights(tmp_path / "missing.pt", ARCH)


def test_bad_export_requests_write_nothing(checkpoint, tmp_path, monkeypatch):
    choice = {"arch_str": ARCH}
    with pytest.raises(ModnasError, match="unknown export format 'tflite'"):
        export_choice(choice, tmp_path / "a", ["tflite"])
    with pytest.raises(ModnasError, match="--weights goes into --format onnx or pt2"):
        export_choice(choice, tmp_path / "a", ["py"], weights=checkpoint)
    with pytest.raises(ModnasError, match="unknown ONNX exporter"):
        export_choice(choice, tmp_path / "a", ["onnx"], exporter="tf")
    with pytest.raises(ModnasError, match="input-size"):
        export_choice(choice, tmp_path / "a", ["pt2"], image_size=2)
    (tmp_path / "b.onnx").write_text("old")
    with pytest.raises(ModnasError, match="already exists"):
        export_choice(choice, tmp_path / "b", ["onnx"])
    assert (tmp_path / "b.onnx").read_text() == "old" and not (tmp_path / "b.json").exists()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    with pytest.raises(ModnasError, match=r"needs the onnx package: pip install 'modnas\[export\]'"):
        export_choice(choice, tmp_path / "c", ["onnx"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.onnx"]
