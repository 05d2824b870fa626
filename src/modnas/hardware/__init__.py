"""Hardware: devices and their embeddings (predictors and on-machine measurement build on these)."""

from modnas.hardware.devices import (
    EMBEDDING_DIM,
    PROTOCOL_DEVICES,
    REFERENCE_ARCH_INDICES,
    TEST_DEVICES,
    TRAIN_DEVICES,
    Device,
    DeviceRegistry,
    get_device,
    register_device,
    registry,
)

__all__ = [
    "EMBEDDING_DIM",
    "PROTOCOL_DEVICES",
    "REFERENCE_ARCH_INDICES",
    "TEST_DEVICES",
    "TRAIN_DEVICES",
    "Device",
    "DeviceRegistry",
    "get_device",
    "register_device",
    "registry",
]
