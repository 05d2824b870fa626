"""Test-wide isolation: no test sees the user's stored devices or leaves custom devices behind, one torch thread."""

from __future__ import annotations

import pytest
import torch

from modnas.hardware import devices as devices_module
from modnas.hardware import profiles


@pytest.fixture(autouse=True)
def isolated_device_registry(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("MODNAS_HOME", str(tmp_path_factory.mktemp("modnas_home")))
    custom = dict(devices_module.registry._custom)
    unavailable = dict(devices_module.registry._unavailable)
    loaded = set(profiles._LOADED_ROOTS)
    yield
    devices_module.registry._custom.clear()
    devices_module.registry._custom.update(custom)
    devices_module.registry._unavailable.clear()
    devices_module.registry._unavailable.update(unavailable)
    profiles._LOADED_ROOTS.clear()
    profiles._LOADED_ROOTS.update(loaded)


@pytest.fixture(autouse=True)
def one_torch_thread():
    # the tensors in tests are tiny: extra intra-op threads only add wake-up latency, badly so on a busy machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
