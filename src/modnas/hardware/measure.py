"""Time NB201 networks on this machine and turn the timings into a :class:`DeviceProfile`.

Only the 10 HELP reference architectures are needed for a device embedding; further (random, seeded)
architectures give the hardware predictor measurements to adapt to the device with (few-shot).
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from modnas.errors import ModnasError
from modnas.hardware.devices import REFERENCE_ARCH_INDICES
from modnas.hardware.profiles import DeviceProfile, check_device_name, parse_profile
from modnas.spaces.nb201.encoding import ArchLike

if TYPE_CHECKING:  # torch is imported lazily: the profile and store modules must not need it
    import torch

DEFAULT_WARMUP = 5
DEFAULT_REPEATS = 30

#: ``progress(done, total, arch_str)``: called with ``done=0`` (and ``arch_str=""``) once the arguments are
#: validated, then after each architecture is timed.
Progress = Callable[[int, int, str], None]


def _check_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ModnasError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _torch_device(device: str | torch.device) -> torch.device:
    import torch

    try:
        dev = torch.device(device)  # type: ignore[arg-type]
    except (RuntimeError, TypeError) as exc:
        raise ModnasError(f"unknown torch device {device!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModnasError(f"device {str(device)!r} needs CUDA, but torch {torch.__version__} sees no CUDA GPU")
    return dev


def measure_latency(
    arch: ArchLike,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    warmup: int = DEFAULT_WARMUP,
    repeats: int = DEFAULT_REPEATS,
    input_size: int = 32,
    channels: int = 3,
    num_classes: int = 10,
) -> float:
    """Median wall-clock time (ms) of one inference forward pass of ``build_network(arch)``.

    The network runs in eval mode under ``torch.inference_mode`` on a fixed seeded input; ``warmup`` untimed passes
    come first (allocator, kernel selection, thread-pool start). On CUDA each pass is bracketed by
    ``torch.cuda.synchronize`` so the time covers the GPU work, not just the kernel launches.
    """
    import torch

    from modnas.spaces.nb201.network import build_network

    _check_int("batch size", batch_size, 1)
    _check_int("warm-up passes", warmup, 0)
    _check_int("repeats", repeats, 1)
    _check_int("channels", channels, 1)
    _check_int("num_classes", num_classes, 1)
    _check_int("input size", input_size, 4)
    if input_size % 4:  # two stride-2 reductions: the residual and shortcut paths only agree on multiples of 4
        raise ModnasError(f"input size must be a multiple of 4, got {input_size}")
    dev = _torch_device(device)
    cuda = dev.type == "cuda"

    net = build_network(arch, num_classes=num_classes, in_channels=channels).to(dev).eval()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, channels, input_size, input_size, generator=generator).to(dev)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    times: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            net(x)
        sync()
        for _ in range(repeats):
            start = time.perf_counter()
            net(x)
            sync()
            times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


def processor_name() -> str:
    """The CPU model: ``model name`` from /proc/cpuinfo, else ``platform.processor()`` or the machine type."""
    cpuinfo = Path("/proc/cpuinfo")
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def extra_architectures(n_extra: int, seed: int = 0, exclude: Sequence[int] = ()) -> list[str]:
    """``n_extra`` distinct random architectures (seeded), neither reference architectures nor in ``exclude``."""
    from modnas.spaces.nb201 import index_to_string
    from modnas.tables.nb201 import NUM_ARCHS

    taken = np.asarray(sorted(set(REFERENCE_ARCH_INDICES) | {int(i) for i in exclude}), dtype=np.int64)
    candidates = np.setdiff1d(np.arange(NUM_ARCHS), taken)
    _check_int("number of extra architectures", n_extra, 0)
    if n_extra > candidates.size:
        raise ModnasError(f"only {candidates.size} further architectures exist, asked for {n_extra}")
    chosen = np.random.default_rng(seed).choice(candidates, size=n_extra, replace=False)
    return [index_to_string(int(i)) for i in chosen]


def measure_device(
    name: str,
    archs: Sequence[ArchLike] | None = None,
    n_extra: int = 0,
    seed: int = 0,
    batch_size: int = 1,
    cuda: bool = False,
    warmup: int = DEFAULT_WARMUP,
    repeats: int = DEFAULT_REPEATS,
    progress: Progress | None = None,
) -> DeviceProfile:
    """Time the 10 reference architectures, the given ``archs`` and ``n_extra`` random ones; return the profile.

    Everything is validated before the first network is timed, so bad arguments fail fast.
    """
    import torch

    from modnas.spaces.nb201 import index_to_string, to_index

    check_device_name(name)
    _check_int("batch size", batch_size, 1)
    _check_int("warm-up passes", warmup, 0)
    _check_int("repeats", repeats, 1)
    if cuda and not torch.cuda.is_available():
        raise ModnasError(f"CUDA was requested (--cuda), but torch {torch.__version__} sees no CUDA GPU")
    dev = torch.device("cuda") if cuda else torch.device("cpu")

    chosen = [int(i) for i in REFERENCE_ARCH_INDICES]
    for arch in archs or ():
        idx = int(to_index(arch))
        if idx not in chosen:  # a reference or repeated architecture is timed once
            chosen.append(idx)
    todo = [index_to_string(i) for i in chosen] + extra_architectures(n_extra, seed, exclude=chosen)

    latencies: dict[str, float] = {}
    if progress is not None:
        progress(0, len(todo), "")
    for done, arch_str in enumerate(todo, start=1):
        latencies[arch_str] = measure_latency(arch_str, batch_size, dev, warmup=warmup, repeats=repeats)
        if progress is not None:
            progress(done, len(todo), arch_str)

    return parse_profile(
        {
            "name": name,
            "latencies_ms": latencies,
            "batch_size": batch_size,
            "torch_version": torch.__version__,
            "processor": processor_name(),
            "gpu": torch.cuda.get_device_name(dev) if cuda else None,
            "threads": torch.get_num_threads(),
            "warmup": warmup,
            "repeats": repeats,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": "measured",
        },
        origin=f"measured profile of {name!r}",
    )
