"""Per-block latency look-up tables of GPT models, measured by modnas on the user's hardware.

Timing thousands of whole GPT-S models is too slow on a CPU, so a *setting* (hardware, batch size, sequence length,
dtype, threads) is measured once per distinct part instead:

* every transformer block ``(embed, heads, MLP ratio, bias)``: 54 for GPT-S;
* the ends of the model per ``(embed, bias)``: token and position embeddings, the final LayerNorm and the head.

A model's latency is the sum of its parts (:meth:`LatencyTable.predict`), as OFA's Note10 table does for
MobileNetV3. :func:`validate_table` times whole models of random architectures to check the sum's ranking and
error. On an NVIDIA GPU the energy of a part is read from NVML's energy counter when the driver exposes it.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from modnas.errors import ModnasError
from modnas.spaces.gpt.arch import VARIANTS, GPTArch, GPTVariant

#: the dtypes a setting may name, by their short names
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
TABLE_FORMAT = "modnas-gpt-latency-table"

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Setting:
    """What a latency depends on besides the architecture."""

    hardware: str  # "cpu" or "cuda"
    batch_size: int
    sequence_length: int
    dtype: str = "fp32"
    threads: int | None = None  # CPU threads (torch.set_num_threads); None leaves torch's default

    def __post_init__(self) -> None:
        if self.hardware not in ("cpu", "cuda"):
            raise ModnasError(f"a GPT latency setting runs on 'cpu' or 'cuda', not {self.hardware!r}")
        if self.dtype not in DTYPES:
            raise ModnasError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        for what, value in (("batch size", self.batch_size), ("sequence length", self.sequence_length),
                            ("threads", 1 if self.threads is None else self.threads)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModnasError(f"{what} must be a positive integer, got {value!r}")

    @property
    def label(self) -> str:
        """The setting as ``<hardware>-b<batch>-s<length>-<dtype>[-t<threads>]`` (what :meth:`parse` reads)."""
        threads = f"-t{self.threads}" if self.threads else ""
        return f"{self.hardware}-b{self.batch_size}-s{self.sequence_length}-{self.dtype}{threads}"

    @classmethod
    def parse(cls, text: str) -> Setting:
        """A setting written as ``cpu-b1-s128-fp32-t2`` or ``cuda-b16-s1024-bf16`` (dtype fp32 and threads
        optional)."""
        hardware, *parts = str(text).strip().lower().split("-")
        fields: dict[str, Any] = {"hardware": hardware}
        names = {"b": "batch_size", "s": "sequence_length", "t": "threads"}
        for part in parts:
            if part in DTYPES:
                fields["dtype"] = part
            elif part[:1] in names and part[1:].isdigit():
                fields[names[part[0]]] = int(part[1:])
            else:
                raise ModnasError(f"GPT setting {text!r}: unknown part {part!r} (e.g. cpu-b1-s128-fp32-t2)")
        if "batch_size" not in fields or "sequence_length" not in fields:
            raise ModnasError(f"GPT setting {text!r} needs a batch size and a sequence length (e.g. cpu-b1-s128)")
        return cls(**fields)


def entry_keys(variant: GPTVariant) -> list[str]:
    """Every part a table of ``variant`` measures, as ``block_<embed>_<heads>_<ratio>_<bias>`` and
    ``ends_<embed>_<bias>`` strings."""
    out = [f"ends_{e}_{b}" for e in variant.embeds for b in (True, False)]
    out += [f"block_{e}_{h}_{r}_{b}" for e in variant.embeds for h in variant.heads for r in variant.mlp_ratios
            for b in (True, False)]  # fmt: skip
    return out


def arch_entries(arch: GPTArch) -> list[str]:
    """The parts of ``arch`` whose latencies sum to its own."""
    return [f"ends_{arch.embed}_{arch.bias}"] + [f"block_{e}_{h}_{r}_{b}" for e, h, r, b in arch.blocks()]


@dataclass
class LatencyTable:
    """Measured latency (ms) and, where available, energy (mJ) of every part of one variant's models."""

    space: str
    setting: Setting
    latency_ms: dict[str, float]
    energy_mj: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def variant(self) -> GPTVariant:
        return VARIANTS[self.space]

    def predict(self, archs: Sequence[GPTArch], what: str = "latency") -> np.ndarray:
        """Latency (ms), or energy (mJ) with ``what="energy"``, of each architecture: the sum of its parts."""
        values = self.latency_ms if what == "latency" else self.energy_mj
        if what not in ("latency", "energy") or not values:
            raise ModnasError(f"this {self.space} table has no {what} values")
        return np.array([sum(values[k] for k in arch_entries(a)) for a in archs], dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {"format": TABLE_FORMAT, "version": 1, "space": self.space, "setting": asdict(self.setting),
                "latency_ms": self.latency_ms, "energy_mj": self.energy_mj, "meta": self.meta}  # fmt: skip

    @classmethod
    def from_json(cls, data: Any, origin: str = "table") -> LatencyTable:
        if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT:
            raise ModnasError(f"{origin}: not a {TABLE_FORMAT} file")
        space = data.get("space")
        if space not in VARIANTS:
            raise ModnasError(f"{origin}: unknown GPT space {space!r}")
        try:
            setting = Setting(**data["setting"])
        except (TypeError, KeyError):
            raise ModnasError(f"{origin}: malformed setting") from None
        table = cls(space, setting, {k: float(v) for k, v in data.get("latency_ms", {}).items()},
                    {k: float(v) for k, v in (data.get("energy_mj") or {}).items()}, dict(data.get("meta") or {}))  # fmt: skip
        missing = [k for k in entry_keys(table.variant) if k not in table.latency_ms]
        if missing:
            raise ModnasError(f"{origin}: no latency for {len(missing)} parts (first {missing[0]})")
        return table

    def save(self, path: str | Path) -> None:
        from modnas.io import atomic_write_json

        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModnasError(f"latency table {path}: cannot be read ({type(exc).__name__}: {exc})") from None
        return cls.from_json(data, origin=f"latency table {path}")


# -- measuring --------------------------------------------------------------------------------------------------


class _Ends:
    """The parts of a GPT outside its blocks: embeddings, then the final LayerNorm and the head."""

    def __init__(self, variant: GPTVariant, embed: int, bias: bool, vocab_size: int) -> None:
        from torch import nn

        self.wte = nn.Embedding(vocab_size, embed)
        self.wpe = nn.Embedding(variant.block_size, embed)
        self.ln_f = nn.LayerNorm(embed, bias=bias)
        self.head = nn.Linear(embed, vocab_size, bias=False)
        self.head.weight = self.wte.weight

    def modules(self) -> list[Any]:
        return [self.wte, self.wpe, self.ln_f, self.head]

    def __call__(self, tokens: Any) -> Any:
        import torch

        x = self.wte(tokens) + self.wpe(torch.arange(tokens.shape[-1], device=tokens.device))
        return self.head(self.ln_f(x))


class _Energy:
    """NVML's total-energy counter of one GPU (millijoules), or None where the driver does not expose it."""

    def __init__(self, device_index: int) -> None:
        self.handle: Any = None
        self.reason = ""
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            self.handle, self._read = handle, pynvml.nvmlDeviceGetTotalEnergyConsumption
        except Exception as exc:  # noqa: BLE001 - any NVML failure means "no energy", said in the table's meta
            self.reason = f"NVML energy counter unavailable ({type(exc).__name__}: {exc})"

    def read(self) -> float:
        return float(self._read(self.handle))


def _cpu_energy_note() -> str:
    rapl = Path("/sys/class/powercap/intel-rapl:0/energy_uj")
    if rapl.exists():
        return "RAPL exists on this machine but is not read by modnas"
    return "no energy counter: this CPU exposes no RAPL (usual in a virtual machine)"


def _time_energy(run: Callable[[], Any], device: Any, energy: _Energy | None, min_seconds: float) -> float | None:
    """Energy per call (mJ) over a loop of at least ``min_seconds`` (NVML's counter updates coarsely)."""
    import torch

    if energy is None or energy.handle is None:
        return None
    with torch.inference_mode():
        torch.cuda.synchronize(device)
        start, calls, t0 = energy.read(), 0, time.perf_counter()
        while time.perf_counter() - t0 < min_seconds or calls < 3:
            run()
            calls += 1
            if calls % 4 == 0:
                torch.cuda.synchronize(device)
        torch.cuda.synchronize(device)
        return (energy.read() - start) / calls


def measure_table(
    space: str,
    setting: Setting,
    warmup: int = 3,
    repeats: int = 20,
    energy: bool = False,
    energy_seconds: float = 0.3,
    progress: Progress | None = None,
    vocab_size: int | None = None,
) -> LatencyTable:
    """Time every part of ``space``'s models under ``setting`` (median of ``repeats`` passes after ``warmup``);
    with ``energy`` on CUDA also the NVML energy per pass."""
    import torch

    from modnas.hardware.measure import _torch_device, time_calls
    from modnas.spaces.gpt.network import Block

    variant = _variant(space)
    dev = _torch_device(setting.hardware)
    dtype = getattr(torch, DTYPES[setting.dtype])
    vocab = int(vocab_size or variant.vocab_size)
    gen = torch.Generator().manual_seed(0)
    b, t = setting.batch_size, setting.sequence_length
    if t > variant.block_size:
        raise ModnasError(f"sequence length {t} is longer than {space}'s context {variant.block_size}")
    tokens = torch.randint(0, vocab, (b, t), generator=gen).to(dev)
    meter = _Energy(dev.index or 0) if energy and dev.type == "cuda" else None
    keys = entry_keys(variant)
    latency: dict[str, float] = {}
    joules: dict[str, float] = {}
    with _threads(setting.threads):
        if progress:
            progress(0, len(keys), "")
        for done, key in enumerate(keys, start=1):
            kind, *fields = key.split("_")
            if kind == "ends":
                e, bias = int(fields[0]), fields[1] == "True"
                ends = _Ends(variant, e, bias, vocab)
                for m in ends.modules():
                    m.to(dev, dtype).eval()

                def run(ends: _Ends = ends) -> Any:
                    return ends(tokens)
            else:
                e, h, r, bias = int(fields[0]), int(fields[1]), int(fields[2]), fields[3] == "True"
                block = Block(e, h, r, variant.head_size, bias).to(dev, dtype).eval()
                x = torch.randn(b, t, e, generator=gen).to(dev, dtype)

                def run(block: Any = block, x: Any = x) -> Any:
                    return block(x)

            latency[key] = float(statistics.median(time_calls(run, dev, warmup, repeats)))
            used = _time_energy(run, dev, meter, energy_seconds)
            if used is not None:
                joules[key] = used
            if progress:
                progress(done, len(keys), key)
    meta = _machine_meta(dev, setting)
    meta.update({"warmup": warmup, "repeats": repeats, "vocab_size": vocab})
    if energy:
        meta["energy"] = "NVML total-energy counter" if joules else (meter.reason if meter else _cpu_energy_note())
    return LatencyTable(space, setting, latency, joules, meta)


def time_models(
    space: str,
    setting: Setting,
    archs: Sequence[GPTArch],
    warmup: int = 2,
    repeats: int = 10,
    progress: Progress | None = None,
    vocab_size: int | None = None,
    energy: bool = False,
    energy_seconds: float = 0.3,
) -> Any:
    """Median latency (ms) of whole models of ``archs`` under ``setting`` (what a table's sum must rank); with
    ``energy``, also their NVML energy per pass (mJ; NaN where unavailable) as a second array."""
    import torch

    from modnas.hardware.measure import _torch_device, time_calls
    from modnas.spaces.gpt.network import build_network

    variant = _variant(space)
    dev = _torch_device(setting.hardware)
    dtype = getattr(torch, DTYPES[setting.dtype])
    vocab = int(vocab_size or variant.vocab_size)
    tokens = torch.randint(0, vocab, (setting.batch_size, setting.sequence_length),
                           generator=torch.Generator().manual_seed(0)).to(dev)  # fmt: skip
    out, joules = [], []
    meter = _Energy(dev.index or 0) if energy and dev.type == "cuda" else None
    with _threads(setting.threads):
        for done, arch in enumerate(archs, start=1):
            net = build_network(arch, vocab_size=vocab).to(dev, dtype).eval()

            def run(net: Any = net) -> Any:
                return net(tokens)

            out.append(float(statistics.median(time_calls(run, dev, warmup, repeats))))
            used = _time_energy(run, dev, meter, energy_seconds)
            joules.append(np.nan if used is None else used)
            del net
            if progress:
                progress(done, len(archs), arch.key)
    if energy:
        return np.asarray(out, dtype=np.float64), np.asarray(joules, dtype=np.float64)
    return np.asarray(out, dtype=np.float64)


def validate_table(
    table: LatencyTable, count: int = 30, seed: int = 0, warmup: int = 2, repeats: int = 10,
    progress: Progress | None = None, energy: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Time the space's 10 reference architectures and ``count`` seeded random ones as whole models, and compare
    the random ones with the table's sums: Spearman, Kendall and the mean absolute percentage error (MAPE) of the
    sum. The per-architecture values are returned too (the references' whole-model latencies embed the device)."""
    from scipy import stats

    from modnas.spaces.gpt.space import GPTSpace

    space = GPTSpace(table.variant)
    references = [space._arch_of(k) for k in space.reference_architectures()]
    archs = [space.arch(i) for i in space.sample(count, np.random.default_rng(seed))]
    timed = time_models(table.space, table.setting, references + archs, warmup, repeats, progress,
                        table.meta.get("vocab_size"), energy=energy)  # fmt: skip
    measured, joules = timed if energy else (timed, None)
    predicted = table.predict(references + archs)
    out: dict[str, Any] = {"count": count, "seed": seed}
    for what, truth, guess in (("", measured, predicted),) + (
        (("energy_", joules, table.predict(references + archs, "energy")),) if joules is not None
        and table.energy_mj and np.isfinite(joules).all() else ()
    ):  # fmt: skip
        t, g = truth[len(references) :], guess[len(references) :]
        out[f"{what}spearman"] = float(stats.spearmanr(g, t).statistic)
        out[f"{what}kendall"] = float(stats.kendalltau(g, t).statistic)
        out[f"{what}mape_pct"] = float(100 * np.mean(np.abs(g - t) / t))
    out["archs"] = [a.key for a in references + archs]
    out["measured_ms"] = [float(x) for x in measured]
    out["predicted_ms"] = [float(x) for x in predicted]
    if joules is not None and np.isfinite(joules).any():
        out["measured_mj"] = [float(x) if np.isfinite(x) else None for x in joules]
    return out


# -- helpers ----------------------------------------------------------------------------------------------------


def _variant(space: str) -> GPTVariant:
    if space not in VARIANTS:
        raise ModnasError(f"unknown GPT space {space!r}; choose from: {', '.join(VARIANTS)}")
    return VARIANTS[space]


class _threads:
    """Run with ``n`` torch threads, then restore the previous count."""

    def __init__(self, n: int | None) -> None:
        self.n = n

    def __enter__(self) -> None:
        import torch

        self.before = torch.get_num_threads()
        if self.n:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.before)


def _machine_meta(dev: Any, setting: Setting) -> dict[str, Any]:
    import torch

    from modnas import __version__
    from modnas.hardware.measure import processor_name

    meta: dict[str, Any] = {
        "processor": processor_name(),
        "cpu_count": __import__("os").cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "modnas": __version__,
        "threads": setting.threads or torch.get_num_threads(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if dev.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(dev)
        meta["cuda"] = torch.version.cuda
    return meta
