"""Time a space's networks on this machine and turn the timings into a :class:`DeviceProfile`.

Only the space's reference architectures (NB201: HELP's 10) are needed for a device embedding; further (random,
seeded) architectures give the hardware predictor measurements to adapt to the device with (few-shot). The network
and its input come from :meth:`~modnas.spaces.base.SearchSpace.timing_network`.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modnas.errors import ModnasError
from modnas.hardware.profiles import DeviceProfile, check_device_name, parse_profile, space_devices
from modnas.problem import DEFAULT_SPACE

if TYPE_CHECKING:  # torch is imported lazily: the profile and store modules must not need it
    import torch

    from modnas.spaces.base import SearchSpace

#: An architecture: its string key, or (for the spaces that accept them) choice indices.
ArchLike = Any

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
    space: SearchSpace | None = None,
    **network: Any,
) -> float:
    """Median wall-clock time (ms) of one inference forward pass of the network of ``arch`` (options as in
    :func:`time_forward_passes`).

    The network runs in eval mode under ``torch.inference_mode`` on a fixed seeded input; ``warmup`` untimed passes
    come first (allocator, kernel selection, thread-pool start). On CUDA each pass is bracketed by
    ``torch.cuda.synchronize`` so the time covers the GPU work, not just the kernel launches.
    """
    times = time_forward_passes(arch, batch_size, device, warmup, repeats, space, **network)
    return float(statistics.median(times))


def time_forward_passes(
    arch: ArchLike,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    warmup: int = DEFAULT_WARMUP,
    repeats: int = DEFAULT_REPEATS,
    space: SearchSpace | None = None,
    **network: Any,
) -> list[float]:
    """Wall-clock times (ms) of the ``repeats`` timed forward passes that :func:`measure_latency` takes the
    median of (their spread tells a quiet machine from a busy one).

    ``space`` defaults to NB201's; ``network`` are its :meth:`~modnas.spaces.base.SearchSpace.timing_network`
    options (NB201: ``input_size``, ``channels``, ``num_classes``).
    """
    import torch

    _check_int("batch size", batch_size, 1)
    _check_int("warm-up passes", warmup, 0)
    _check_int("repeats", repeats, 1)
    space = space or space_devices(DEFAULT_SPACE).space
    net, x = space.timing_network(arch, batch_size, torch.Generator().manual_seed(0), **network)
    dev = _torch_device(device)
    net, x = net.to(dev).eval(), x.to(dev)
    return time_calls(lambda: net(x), dev, warmup, repeats)


def time_calls(run: Callable[[], Any], device: str | torch.device, warmup: int, repeats: int) -> list[float]:
    """Wall-clock times (ms) of ``repeats`` calls of ``run`` after ``warmup`` untimed ones, under
    ``torch.inference_mode``; on CUDA every timed call ends with ``torch.cuda.synchronize`` so that it covers the
    GPU work, not only the kernel launches."""
    import torch

    dev = _torch_device(device)
    cuda = dev.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    times: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            run()
        sync()
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            sync()
            times.append((time.perf_counter() - start) * 1000.0)
    return times


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


def extra_architectures(
    n_extra: int, seed: int = 0, exclude: Sequence[str] = (), space: str = DEFAULT_SPACE
) -> list[str]:
    """``n_extra`` distinct random architectures of ``space`` (seeded), neither its reference architectures nor in
    ``exclude`` (keys).

    In a space that can be enumerated they are drawn without replacement from the rest of it; otherwise they are
    sampled until enough distinct new ones are found.
    """
    devices = space_devices(space)
    search_space = devices.space
    taken = set(devices.reference_keys) | {search_space.canonical_key(k) for k in exclude}
    _check_int("number of extra architectures", n_extra, 0)
    rng = np.random.default_rng(seed)
    every = search_space.enumerate()
    if every is not None:
        keys = search_space.keys(every)
        candidates = np.asarray([i for i, k in enumerate(keys) if k not in taken], dtype=np.int64)
        if n_extra > candidates.size:
            raise ModnasError(f"only {candidates.size} further architectures exist, asked for {n_extra}")
        return [keys[int(i)] for i in rng.choice(candidates, size=n_extra, replace=False)]
    chosen: list[str] = []
    while len(chosen) < n_extra:
        for key in search_space.keys(search_space.sample(n_extra, rng)):
            if key not in taken and len(chosen) < n_extra:
                taken.add(key)
                chosen.append(key)
    return chosen


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
    timings: Callable[[str, list[float]], None] | None = None,
    space: str = DEFAULT_SPACE,
) -> DeviceProfile:
    """Time the reference architectures of ``space``, the given ``archs`` and ``n_extra`` random ones; return the
    profile.

    Everything is validated before the first network is timed, so bad arguments fail fast. ``timings`` is called
    with each architecture and its timed passes (ms), e.g. to check them with :func:`noise_warnings`.
    """
    import torch

    check_device_name(name)
    _check_int("batch size", batch_size, 1)
    _check_int("warm-up passes", warmup, 0)
    _check_int("repeats", repeats, 1)
    if cuda and not torch.cuda.is_available():
        raise ModnasError(f"CUDA was requested (--cuda), but torch {torch.__version__} sees no CUDA GPU")
    dev = torch.device("cuda") if cuda else torch.device("cpu")

    devices = space_devices(space)
    search_space = devices.space
    chosen = list(devices.reference_keys)
    for arch in archs or ():
        key = search_space.canonical_key(arch) if isinstance(arch, str) else search_space.to_key(arch)
        if key not in chosen:  # a reference or repeated architecture is timed once
            chosen.append(key)
    todo = chosen + extra_architectures(n_extra, seed, exclude=chosen, space=space)

    latencies: dict[str, float] = {}
    if progress is not None:
        progress(0, len(todo), "")
    for done, arch_str in enumerate(todo, start=1):
        times = time_forward_passes(arch_str, batch_size, dev, warmup=warmup, repeats=repeats, space=search_space)
        latencies[arch_str] = float(statistics.median(times))
        if timings is not None:
            timings(arch_str, times)
        if progress is not None:
            progress(done, len(todo), arch_str)

    return parse_profile(
        {
            "name": name,
            "space": space,
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


#: Repeated timings whose interquartile range exceeds this share of their median, for the typical reference
#: architecture, come from a busy machine (an idle one gives a few per cent).
NOISY_SPREAD = 0.2
#: A reference network with fewer FLOPs than another yet this many times slower: on the 27 built-in devices the
#: largest such ratio is 1.74 (eyeriss); beyond 3 the timings are disturbed rather than the hardware's.
IMPLAUSIBLE_SLOWDOWN = 3.0


def noise_warnings(profile: DeviceProfile, timings: Mapping[str, Sequence[float]] | None = None) -> list[str]:
    """Reasons to distrust a profile's timings, one line each (empty when they look plausible).

    Two signs of a busy machine: the repeated passes of the reference architectures disagree (``timings``, the
    passes per architecture, as :func:`measure_device` reports them), and a reference network is far slower than
    one with more FLOPs.
    """
    devices = space_devices(profile.space)
    reasons = []
    reference = list(devices.reference_keys)
    spreads = []
    for arch in reference:
        times = np.asarray((timings or {}).get(arch, ()), dtype=np.float64)
        if times.size >= 4:
            q1, median, q3 = np.percentile(times, [25, 50, 75])
            spreads.append((q3 - q1) / median)
    if spreads and float(np.median(spreads)) > NOISY_SPREAD:
        reasons.append(
            f"repeated timings disagree: their interquartile range is {100 * float(np.median(spreads)):.0f} % of "
            f"the median for the typical reference architecture (up to {100 * max(spreads):.0f} %)"
        )
    if profile.embedding_fit is not None or not hasattr(devices.space, "flops"):
        return reasons  # the reference latencies were not measured, or the space cannot count FLOPs
    latency = np.asarray(profile.reference_latencies)
    flops = np.asarray(devices.space.flops(reference), dtype=np.float64)
    label = [devices.space.short_name(k) for k in reference]
    worst, pair = 0.0, (0, 0)
    for a in range(len(latency)):
        for b in range(len(latency)):
            if flops[a] < flops[b] and latency[a] / latency[b] > worst:
                worst, pair = latency[a] / latency[b], (a, b)
    if worst > IMPLAUSIBLE_SLOWDOWN:
        a, b = pair
        reasons.append(
            f"reference network {label[a]} ({flops[a]:.0f} MFLOPs) took {latency[a]:.3g} ms, "
            f"{worst:.1f}x longer than network {label[b]} ({flops[b]:.0f} MFLOPs, "
            f"{latency[b]:.3g} ms)"
        )
    return reasons
