"""On-machine latency measurement: timing of one network and a measured profile of this CPU."""

from __future__ import annotations

import math
from datetime import datetime

import pytest
import torch
from torch import nn

from modnas.errors import ModnasError
from modnas.hardware import measure
from modnas.hardware.devices import normalise_reference_latencies
from modnas.hardware.measure import extra_architectures, measure_device, measure_latency
from modnas.hardware.profiles import load_profile, register_profile, save_profile
from modnas.spaces.nb201 import index_to_string
from modnas.spaces.nb201.devices import REFERENCE_ARCH_INDICES, NB201Devices

REFERENCE_ARCHS = [index_to_string(i) for i in REFERENCE_ARCH_INDICES]
ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


class Recorder(nn.Module):
    """Stands in for a network: records how it is called."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[bool, bool, bool, tuple[int, ...]]] = []
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        modes = (self.training, torch.is_inference_mode_enabled(), torch.is_grad_enabled())
        self.calls.append((*modes, tuple(x.shape)))
        self.inputs.append(x.clone())
        return x


def test_measure_latency_runs_eval_inference_mode_with_warmup_and_repeats(monkeypatch):
    built: list[Recorder] = []

    def fake_build(arch, num_classes=10, in_channels=3):
        built.append(Recorder())
        return built[-1]

    monkeypatch.setattr("modnas.spaces.nb201.network.build_network", fake_build)
    ms = measure_latency(ALL_CONV, batch_size=3, warmup=2, repeats=5, input_size=16, channels=4)
    assert ms >= 0 and math.isfinite(ms)
    calls = built[0].calls
    assert len(calls) == 2 + 5
    assert all(call == (False, True, False, (3, 4, 16, 16)) for call in calls)
    # the same deterministic input in every pass and every call
    measure_latency(ALL_CONV, batch_size=3, warmup=0, repeats=1, input_size=16, channels=4)
    assert torch.equal(built[0].inputs[0], built[1].inputs[0])


def test_measure_latency_returns_the_median(monkeypatch):
    ticks = iter([0.0, 0.001, 1.0, 1.100, 2.0, 2.003])  # passes of 1 ms, 100 ms, 3 ms
    monkeypatch.setattr(measure.time, "perf_counter", lambda: next(ticks))
    monkeypatch.setattr("modnas.spaces.nb201.network.build_network", lambda *a, **k: Recorder())
    assert measure_latency(ALL_CONV, warmup=0, repeats=3) == pytest.approx(3.0)


def test_measure_latency_times_real_networks():
    # 15 3x3 convolutions per cell against a cell that computes nothing: a timer that measures anything at all
    # sees the difference by far more than the noise of a shared machine
    conv = measure_latency(ALL_CONV, warmup=1, repeats=3)
    empty = measure_latency(ALL_NONE, warmup=1, repeats=3)
    assert 0 < empty < conv


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"batch_size": 0}, "batch size"),
        ({"repeats": 0}, "repeats"),
        ({"warmup": -1}, "warm-up"),
        ({"input_size": 30}, "multiple of 4"),
        ({"device": "tpu9"}, "tpu9"),
    ],
)
def test_measure_latency_refuses_bad_arguments(kwargs, needle):
    with pytest.raises(ModnasError, match=needle):
        measure_latency(ALL_CONV, **kwargs)


def test_measure_latency_refuses_malformed_arch():
    with pytest.raises(ModnasError, match="malformed"):
        measure_latency("|nor_conv_3x3~0|")


def test_cuda_without_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModnasError, match="CUDA"):
        measure_device("gpu_box", cuda=True)
    with pytest.raises(ModnasError, match="CUDA"):
        measure_latency(ALL_CONV, device="cuda")


def test_measured_cpu_profile_of_the_reference_architectures(tmp_path):
    ticks: list[tuple[int, int, str]] = []
    profile = measure_device(
        "this_cpu", batch_size=1, warmup=1, repeats=2, progress=lambda d, t, a: ticks.append((d, t, a))
    )
    assert list(profile.latencies_ms) == REFERENCE_ARCHS
    assert all(math.isfinite(v) and v > 0 for v in profile.latencies_ms.values())
    assert profile.embedding == pytest.approx(
        normalise_reference_latencies(list(profile.latencies_ms.values())).tolist(), abs=1e-6
    )
    assert min(profile.embedding) == 0.0 and max(profile.embedding) == 1.0
    assert profile.source == "measured" and profile.batch_size == 1 and profile.unit == "ms"
    assert profile.torch_version == torch.__version__
    assert profile.threads == 1 and profile.gpu is None
    assert profile.processor
    assert profile.warmup == 1 and profile.repeats == 2
    assert datetime.fromisoformat(profile.created).tzinfo is not None
    assert ticks == [(0, 10, "")] + [(i + 1, 10, a) for i, a in enumerate(REFERENCE_ARCHS)]
    # the measured profile survives a file round trip and registers as a device with the same embedding
    save_profile(profile, tmp_path / "this_cpu.json")
    assert load_profile(tmp_path / "this_cpu.json") == profile
    device = register_profile(profile, NB201Devices())
    assert device.embedding.tolist() == pytest.approx(profile.embedding, abs=1e-6)


def test_extra_architectures_are_seeded_distinct_and_not_reference(monkeypatch):
    timed: list[str] = []

    def fake_latency(arch, batch_size, device, warmup, repeats, **network):
        timed.append(arch)
        return [1.0 + len(timed)]

    monkeypatch.setattr(measure, "time_forward_passes", fake_latency)
    given = "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|"
    profile = measure_device("few_shot", archs=[given, REFERENCE_ARCHS[3]], n_extra=25, seed=7)
    extras = list(profile.extra_latencies)
    assert len(timed) == len(profile.latencies_ms) == 10 + 1 + 25  # the repeated reference is timed once
    assert extras[0] == given
    assert len(set(extras)) == 26 and not set(extras) & set(REFERENCE_ARCHS)
    again = measure_device("few_shot", archs=[given], n_extra=25, seed=7)
    assert list(again.extra_latencies) == extras
    other_seed = measure_device("few_shot", archs=[given], n_extra=25, seed=8)
    assert list(other_seed.extra_latencies) != extras
    assert extra_architectures(5, seed=1) == extra_architectures(5, seed=1)
    assert not set(extra_architectures(200, seed=3)) & set(REFERENCE_ARCHS)


def test_extra_architectures_refuses_impossible_counts():
    with pytest.raises(ModnasError, match="extra"):
        extra_architectures(-1)
    with pytest.raises(ModnasError, match="15615"):
        extra_architectures(15_616)


def test_measure_device_validates_before_timing(monkeypatch):
    monkeypatch.setattr(measure, "time_forward_passes", lambda *a, **k: pytest.fail("timed despite bad arguments"))
    for kwargs, needle in (
        ({"name": "bad name"}, "invalid device name"),
        ({"name": "ok", "n_extra": -2}, "extra"),
        ({"name": "ok", "batch_size": 0}, "batch size"),
        ({"name": "ok", "repeats": 0}, "repeats"),
        ({"name": "ok", "archs": ["|bogus|"]}, "malformed"),
    ):
        with pytest.raises(ModnasError, match=needle):
            measure_device(**kwargs)


def quiet_passes(ms: float, repeats: int = 10) -> list[float]:
    return [ms * (1 + 0.01 * (k % 3)) for k in range(repeats)]


def test_noise_warnings_flag_disagreeing_repeats_and_implausible_references():
    from modnas.hardware.measure import noise_warnings
    from modnas.hardware.profiles import DeviceProfile
    from modnas.tables.nb201 import nb201_tables

    ref = [float(x) for x in nb201_tables.latency("gold_6240", list(REFERENCE_ARCH_INDICES))]
    quiet = DeviceProfile(name="quiet", latencies_ms=dict(zip(REFERENCE_ARCHS, ref)))
    assert noise_warnings(quiet, {a: quiet_passes(v) for a, v in zip(REFERENCE_ARCHS, ref)}) == []
    busy = {a: [v, 2 * v, v, 3 * v, v, 0.9 * v, 2.5 * v, v] for a, v in zip(REFERENCE_ARCHS, ref)}
    (reason,) = noise_warnings(quiet, busy)
    assert "repeated timings disagree" in reason
    # the smallest reference network (index 55, 8 MFLOPs) timed slower than the all-conv one (220 MFLOPs)
    slow = dict(zip(REFERENCE_ARCHS, ref))
    slow[REFERENCE_ARCHS[2]] = 10 * max(ref)
    (reason,) = noise_warnings(DeviceProfile(name="odd", latencies_ms=slow))
    assert "reference network 55" in reason and "longer than network" in reason
