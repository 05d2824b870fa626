"""Hardware: devices and their embeddings, the latency MetaPredictor, on-machine measurement, device profiles.

Nothing here knows a particular search space: a space's devices are defined in its own folder and reached
through its problem (``get_problem(name).devices``).
"""

from modnas.hardware.devices import Device, DeviceRegistry, DeviceSet

__all__ = ["Device", "DeviceRegistry", "DeviceSet"]
