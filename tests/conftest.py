"""Test-wide isolation: no test sees the user's stored devices or leaves custom devices behind, one torch thread."""

from __future__ import annotations

import pytest
import torch

from modnas.spaces.nb201.devices import nb201_devices


@pytest.fixture(autouse=True)
def isolated_device_registry(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("MODNAS_HOME", str(tmp_path_factory.mktemp("modnas_home")))
    registry = nb201_devices()
    custom = dict(registry._custom)
    unavailable = dict(registry._unavailable)
    loaded = set(registry._loaded_roots)
    yield
    registry._custom.clear()
    registry._custom.update(custom)
    registry._unavailable.clear()
    registry._unavailable.update(unavailable)
    registry._loaded_roots.clear()
    registry._loaded_roots.update(loaded)


@pytest.fixture(autouse=True)
def one_torch_thread():
    # the tensors in tests are tiny: extra intra-op threads only add wake-up latency, badly so on a busy machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
