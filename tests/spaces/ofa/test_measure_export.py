"""OFA networks to time on a device (``modnas device measure --space ofa``), their MACs, and the standalone source
``modnas export`` writes for them."""

from __future__ import annotations

import ast
import importlib.util
import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from modnas.errors import ModnasError
from modnas.export import default_spec, export_choice
from modnas.hardware.profiles import ProfileStore, load_profile
from modnas.problem import get_problem
from modnas.spaces.ofa.arch import NUM_SLOTS, NUM_STAGES, OFAArch
from modnas.spaces.ofa.export import module_source
from modnas.spaces.ofa.network import OFAMobileNetV3, build_network, count_macs
from modnas.spaces.ofa.space import REFERENCE_KEYS, OFASpace

SPACE = OFASpace()
SMALLEST = SPACE.extremes()[0]  # r128, depth 2, k3 e3: the cheapest network to build and run
#: the cheapest network of the benchmark's space (resolutions 160-224), which `modnas export` builds
SMALLEST_SEARCHED = get_problem("ofa").space.extremes()[0]
#: deep stages, skips, SE, every kernel and expand ratio: a network whose every module kind the export must mirror
MIXED = "r200_34735376_333354_36365436_73563676_74545436"


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# -- timing_network ------------------------------------------------------------------------------------------


def test_timing_network_defaults_to_the_imagenet_network_at_the_architectures_resolution():
    net, x = SPACE.timing_network(REFERENCE_KEYS[0], 2, _gen())
    assert isinstance(net, OFAMobileNetV3) and net.arch == OFAArch.from_key(REFERENCE_KEYS[0])
    assert x.shape == (2, 3, 196, 196)
    assert net.first_conv.conv.out_channels == 24 and net.classifier.linear.out_features == 1000  # w1.2, ImageNet
    _, again = SPACE.timing_network(REFERENCE_KEYS[0], 2, _gen())
    assert torch.equal(x, again)  # a seeded generator gives the same input every time


def test_timing_network_options_and_a_forward_pass():
    net, x = SPACE.timing_network(SMALLEST, 2, _gen(), input_size=64, channels=1, num_classes=10, width_mult=1.0)
    assert x.shape == (2, 1, 64, 64)
    assert net.first_conv.conv.in_channels == 1 and net.first_conv.conv.out_channels == 16  # w1.0
    with torch.inference_mode():
        out = net.eval()(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    # choice indices name the same architecture as its key
    by_indices, _ = SPACE.timing_network(SPACE.parse(SMALLEST), 1, _gen())
    assert by_indices.arch.key == SMALLEST


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"input_size": 16}, "input size must be an integer >= 32"),
        ({"input_size": "64"}, "input size"),
        ({"input_size": True}, "input size"),
        ({"channels": 0}, "channels must be an integer >= 1"),
        ({"num_classes": 2.5}, "num_classes must be an integer >= 1"),
        ({"width_mult": 0}, "width_mult must be a positive number"),
        ({"width_mult": "1.2"}, "width_mult"),
        ({"width_mult": math.nan}, "width_mult"),
        ({"width_mult": True}, "width_mult"),
    ],
)
def test_timing_network_refuses_bad_options_in_one_line(options, needle):
    with pytest.raises(ModnasError, match=needle) as info:
        SPACE.timing_network(SMALLEST, 1, _gen(), **options)
    assert "\n" not in str(info.value)


def test_timing_network_refuses_architectures_outside_the_space():
    with pytest.raises(ModnasError, match="malformed OFA architecture"):
        SPACE.timing_network("r192_53", 1, _gen())
    with pytest.raises(ModnasError, match="outside this OFA space"):
        OFASpace((160, 224)).timing_network(SMALLEST, 1, _gen())  # r128 is not among its resolutions


def test_build_network_refuses_nb201_settings_in_one_line():
    # `modnas train` builds with NB201's C and N: one line instead of a TypeError traceback
    with pytest.raises(ModnasError, match="OFA networks have no setting 'C'"):
        SPACE.build_network(SMALLEST, C=16, N=5, num_classes=10)
    assert SPACE.build_network(SMALLEST, num_classes=10, dropout=0.1).classifier.linear.out_features == 10


# -- flops ---------------------------------------------------------------------------------------------------


def test_flops_are_count_macs_in_millions_and_grow_with_resolution():
    keys = [*REFERENCE_KEYS[:3], *SPACE.extremes()]
    expected = [count_macs(OFAArch.from_key(k)) / 1e6 for k in keys]
    np.testing.assert_allclose(SPACE.flops(keys), expected, rtol=0, atol=1e-9)
    # the largest network at r224: 843,101,040 MACs (regression value of test_network.py)
    assert SPACE.flops(SPACE.extremes()[1])[0] == pytest.approx(843.10104)
    at = [OFAArch(r, (3,) * NUM_STAGES, (5,) * NUM_SLOTS, (4,) * NUM_SLOTS).key for r in (128, 160, 192, 224)]
    assert (np.diff(SPACE.flops(at)) > 0).all()


# -- export_source -------------------------------------------------------------------------------------------

CHOICE = {
    "arch_str": MIXED, "space": "ofa", "device": "note10", "preference": [0.25, 0.75], "predicted_error": 20.5,
    "predicted_latency_ms": np.float32(31.25), "true_error": 21.0, "true_latency_ms": None,
    "run": 'C:\\runs\\ofa """tiny"""', "json_name": "net.json",
}  # fmt: skip


def _import(path) -> object:
    spec = importlib.util.spec_from_file_location("exported_ofa", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_exported_source_needs_only_torch_and_records_its_origin(tmp_path):
    source = SPACE.export_source(CHOICE)
    imports = [n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = {a.name for n in imports if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in imports if isinstance(n, ast.ImportFrom)}
    assert modules == {"torch"}
    doc = ast.get_docstring(ast.parse(source))
    assert MIXED in doc and "200 x 200" in doc and "note10" in doc and "net.json" in doc and "31.2 ms" in doc
    path = tmp_path / "net.py"
    path.write_text(source)
    module = _import(path)
    assert module.ARCH_KEY == MIXED and module.RESOLUTION == 200
    # the awkward run path survives verbatim in SOURCE (and did not break the docstring)
    assert module.SOURCE["run"] == CHOICE["run"] and module.SOURCE["predicted_latency_ms"] == 31.25
    assert "true_latency_ms" not in module.SOURCE  # unknown values are left out, not written as None


@pytest.mark.parametrize("width_mult", [1.2, 1.0])
def test_exported_network_is_build_network_with_the_same_weights_and_outputs(tmp_path, width_mult):
    path = tmp_path / "net.py"
    path.write_text(module_source(CHOICE))
    exported = _import(path).build(num_classes=10, width_mult=width_mult).eval()
    torch.manual_seed(0)
    original = build_network(OFAArch.from_key(MIXED), num_classes=10, width_mult=width_mult).eval()
    for name, buffer in original.named_buffers():  # non-trivial BN statistics, so a BN out of place would show
        if name.endswith("running_mean"):
            buffer.normal_(0.0, 0.1)
        elif name.endswith("running_var"):
            buffer.uniform_(0.5, 1.5)
    state = original.state_dict()
    assert {k: v.shape for k, v in exported.state_dict().items()} == {k: v.shape for k, v in state.items()}
    assert [n for n, _ in exported.named_modules()] == [n for n, _ in original.named_modules()]
    exported.load_state_dict(state)  # strict
    x = torch.randn(2, 3, 128, 128, generator=_gen())
    with torch.inference_mode():
        assert torch.equal(exported(x), original(x))
    # and the other way round: the exported network's weights load into build_network
    original.load_state_dict(exported.state_dict())


def test_modnas_export_builds_the_ofa_network_for_onnx_and_pt2(tmp_path, monkeypatch):
    exported = {}

    def fake_pt2(model, example, path):  # torch.export itself takes ~10 s on a slow CPU: what it is given matters
        exported.update(model=model, example=example)
        return path

    monkeypatch.setattr("modnas.export.export_pt2", fake_pt2)
    choice = dict(CHOICE, arch_str=SMALLEST_SEARCHED, predicted_latency_ms=31.25)  # as JSON-able as a run's
    paths = export_choice(choice, tmp_path / "net", ["py", "pt2"], image_size=64)
    assert [p.name for p in paths] == ["net.json", "net.py", "net.pt2"]
    model, example = exported["model"], exported["example"]
    assert isinstance(model, OFAMobileNetV3) and model.arch.key == SMALLEST_SEARCHED and not model.training
    assert example.shape == (2, 3, 64, 64) and model(example).shape == (2, 1000)
    record = json.loads((tmp_path / "net.json").read_text())
    assert record["network"]["input_shape"] == ["batch", 3, 64, 64] and record["network"]["num_classes"] == 1000
    assert "C" not in record["network"]  # NB201's cell settings mean nothing here
    assert _import(tmp_path / "net.py").ARCH_KEY == SMALLEST_SEARCHED
    # without --input-size: the architecture's own resolution
    assert default_spec(MIXED, "ofa").input_shape() == (1, 3, 200, 200)


# -- modnas device measure --space ofa -----------------------------------------------------------------------


@pytest.fixture
def ofa_registry(monkeypatch, tmp_path):
    """Own MODNAS_HOME and working directory; the OFA device set forgets the measured device afterwards."""
    monkeypatch.setenv("MODNAS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    registry = get_problem("ofa").devices
    saved = (dict(registry._custom), dict(registry._unavailable), set(registry._loaded_roots))
    yield registry
    for kept, now in zip(saved, (registry._custom, registry._unavailable, registry._loaded_roots)):
        now.clear()
        now.update(kept)


def test_device_measure_times_the_ofa_references_and_registers_an_ofa_device(ofa_registry, tmp_path):
    from modnas.commands.device import app

    args = ["measure", "--space", "ofa", "--name", "ofa_cpu", "--warmup", "0", "--repeats", "1", "--extra", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    profile = load_profile(tmp_path / "ofa_cpu.json")
    assert profile.space == "ofa" and profile.repeats == 1 and profile.source == "measured"
    keys = list(profile.latencies_ms)
    assert keys[:10] == list(REFERENCE_KEYS) and len(keys) == 11 and keys[10] not in REFERENCE_KEYS
    assert all(v > 0 and math.isfinite(v) for v in profile.latencies_ms.values())
    assert ProfileStore().load("ofa_cpu") == profile
    # the OFA device set loads it from the store (as `modnas front --device ofa_cpu` would)
    device = ofa_registry.get("ofa_cpu")
    assert device.split == "custom" and device.space == "ofa" and device.batch_size == 1
    np.testing.assert_allclose(device.embedding, profile.embedding, atol=1e-6)  # the file keeps 6 decimals
    assert list(device.extra_latencies) == keys[10:]


# -- a tiny OFA run through `modnas export` and `modnas plot` ------------------------------------------------


@pytest.fixture(scope="module")
def ofa_run(tmp_path_factory):
    from modnas.cli import app

    out = tmp_path_factory.mktemp("ofa") / "run"
    args = ["search", "--space", "ofa", "--out", str(out), "--epochs", "1",
            "--set", "steps_per_epoch=2", "--set", "query_budget=30", "--set", "initial_queries=20",
            "--set", "eval_rays=4", "--set", "pretrain_steps=3", "--set", "error_predictor.steps=20",
            "--set", "error_predictor.ensemble=1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_export_of_a_pick_writes_the_ofa_module(ofa_run, tmp_path):
    # a pick's row once lacked the space, and the export fell back to NB201's module for an OFA architecture
    from modnas.cli import app

    base = tmp_path / "knee"
    args = ["export", str(ofa_run), "--device", "note10", "--pick", "knee", "--out", str(base)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(base.with_suffix(".json").read_text())
    assert record["space"] == "ofa" and record["arch_str"] == result.stdout.strip()
    module = _import(base.with_suffix(".py"))
    assert module.ARCH_KEY == record["arch_str"] and module.SOURCE["device"] == "note10"
    assert module.build(num_classes=10).classifier.linear.out_features == 10


def test_plot_draws_the_stored_reference_front_as_such(ofa_run, tmp_path, monkeypatch):
    from modnas import plots
    from modnas.cli import app

    seen = {}
    real = plots.plot_front

    def spy(path, **kwargs):
        seen.update(kwargs)
        return real(path, **kwargs)

    monkeypatch.setattr(plots, "plot_front", spy)
    names = {}
    for figure in ("plot_hv_per_epoch", "plot_hv_per_device", "plot_hv_per_epoch_devices"):
        def other(path, _real=getattr(plots, figure), _name=figure, **kwargs):
            names[_name] = kwargs["front_name"]
            return _real(path, **kwargs)

        monkeypatch.setattr(plots, figure, other)
    result = CliRunner().invoke(
        app, ["plot", str(ofa_run), "--device", "note10", "--per-device", "--out", str(tmp_path / "p")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / "fronts" / "note10.png").is_file()
    # the space cannot be listed: no cloud of "all architectures", and the front is a best-known reference
    assert seen["cloud"].shape == (0, 2) and seen["front_name"] == "reference" and len(seen["true_front"]) > 20
    assert names == dict.fromkeys(("plot_hv_per_epoch", "plot_hv_per_device", "plot_hv_per_epoch_devices"),
                                  "reference")


def test_modnas_train_trains_an_ofa_subnet_and_refuses_bad_keys(tmp_path, monkeypatch):
    import json

    from modnas.cli import app
    from modnas.spaces.ofa.arch import OFAArch
    from modnas.spaces.ofa.network import count_arch_parameters

    key = "r176_5333_5434_767334_54547433_363656"
    out = tmp_path / "trained"
    args = ["train", key, "--space", "ofa", "--data", "digits", "--epochs", "1", "--train-limit", "128",
            "--out", str(out), "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "result.json").read_text())
    assert record["space"] == "ofa" and record["arch_str"] == key
    assert record["params"] == count_arch_parameters(OFAArch.from_key(key), num_classes=10, in_channels=1)
    # its checkpoint exports with its weights: digits' 1 x 8 x 8 images and 10 classes, not ImageNet's
    exported = {}
    monkeypatch.setattr("modnas.export.export_pt2", lambda model, example, path: exported.update(model=model))
    export_choice({"arch_str": key, "space": "ofa"}, tmp_path / "net", ["pt2"], weights=out / "checkpoint.pt")
    network = json.loads((tmp_path / "net.json").read_text())["network"]
    assert network["input_shape"] == ["batch", 1, 8, 8] and network["num_classes"] == 10
    trained = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(v, trained[k]) for k, v in exported["model"].state_dict().items())
    bad = CliRunner().invoke(app, ["train", "r176_5333", "--space", "ofa", "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    assert not (tmp_path / "bad").exists()


def test_modnas_train_takes_the_width_and_input_size_of_a_one_shot_pick(tmp_path, monkeypatch):
    import json

    from modnas.cli import app
    from modnas.spaces.ofa.arch import OFAArch
    from modnas.spaces.ofa.network import count_arch_parameters

    key = "r176_5333_5434_767334_54547433_363656"
    out = tmp_path / "narrow"
    args = ["train", key, "--space", "ofa", "--data", "digits", "--epochs", "1", "--train-limit", "64",
            "--width-mult", "0.35", "--image-size", "12", "--out", str(out), "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "result.json").read_text())
    assert record["params"] == count_arch_parameters(
        OFAArch.from_key(key), width_mult=0.35, num_classes=10, in_channels=1
    )
    # the checkpoint records the width and the input size, and exports with both
    exported = {}
    monkeypatch.setattr("modnas.export.export_pt2", lambda model, example, path: exported.update(example=example))
    export_choice({"arch_str": key, "space": "ofa"}, tmp_path / "net", ["pt2"], weights=out / "checkpoint.pt")
    network = json.loads((tmp_path / "net.json").read_text())["network"]
    assert network["input_shape"] == ["batch", 1, 12, 12] and network["width_mult"] == 0.35
    assert tuple(exported["example"].shape[-2:]) == (12, 12)
    bad = CliRunner().invoke(app, ["train", key, "--space", "ofa", "--width-mult", "0", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "width_mult must be positive" in bad.output
