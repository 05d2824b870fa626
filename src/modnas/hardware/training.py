"""Training, few-shot adaptation and evaluation of the hardware MetaPredictor.

Training uses a space's training devices only (NB201: the 13 MODNAS training devices): its test devices are never
seen, so their scores measure zero-shot transfer. Targets are reference-normalised latencies (see
:mod:`modnas.hardware.predictor`). The data is a :class:`LatencyData`: a fixed set of architectures measured on
several devices, provided by the space's problem (``Problem.latency_data``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from modnas.errors import ModnasError
from modnas.hardware.devices import Device, DeviceRegistry
from modnas.hardware.predictor import MetaPredictor, PredictorConfig

if TYPE_CHECKING:
    from modnas.problem import Problem

Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of predictor training (defaults: about 8 minutes on 2 CPU cores)."""

    steps: int = 8000
    batch_size: int = 512
    lr: float = 3e-3
    grad_clip: float = 5.0
    seed: int = 0
    #: training devices (empty: the space's ``train`` split)
    devices: tuple[str, ...] = ()
    #: Synthetic devices per step: random convex mixtures of the training devices' normalised latencies. They fill
    #: the space between the 13 real embeddings, which helps zero-shot transfer to unseen devices.
    mixed_devices: int = 4
    mix_concentration: float = 0.5
    #: Gaussian noise on the embeddings, so the head cannot key on the exact values of 13 training embeddings.
    embedding_noise: float = 0.02

    def to_dict(self) -> dict:
        out = asdict(self)
        out["devices"] = list(self.devices)
        return out


@dataclass(frozen=True)
class LatencyData:
    """Latencies of one fixed set of architectures measured on several devices, which a MetaPredictor is trained
    and evaluated on (NB201: all 15,625 architectures on HELP's 27 settings)."""

    #: canonical keys of the architectures, one per row
    keys: Sequence[str]
    #: their one-hots ``(N, decisions, options)``
    onehots: torch.Tensor
    #: rows of the space's reference architectures, in the order of ``devices.reference_keys``
    reference_rows: np.ndarray
    #: latency of every row on a device (the device's unit)
    column: Callable[[str], np.ndarray]
    devices: DeviceRegistry

    def normalised(self, device: str) -> np.ndarray:
        """Reference-normalised latency of every row on ``device``."""
        latency = self.column(device)
        ref = latency[self.reference_rows]
        return (latency - ref.min()) / (ref.max() - ref.min())


def with_sampled_truth(data: LatencyData, problem: Problem, count: int, seed: int = 0) -> LatencyData:
    """``data`` plus ``count`` seeded random architectures of the problem's (search) space, labelled by its ground
    truth's latency on every device that has one (NaN elsewhere).

    For a space whose ground truth knows latencies beyond the measured architectures (OFA: a surrogate fitted to
    HELP's measurements), training on these teaches the predictor the latencies a search is scored on. A test
    device's column is never trained on (:func:`train_predictor` refuses test devices).
    """
    if count < 1:
        raise ModnasError(f"the number of sampled architectures must be >= 1, got {count}")
    space = data.devices.space  # the data's one-hots are of the devices' space, which a search space may restrict
    search = problem.space
    keys = [space.canonical_key(k) for k in search.keys(search.sample(count, np.random.default_rng(seed)))]
    known = set(data.keys)
    keys = [k for k in dict.fromkeys(keys) if k not in known]
    cache: dict[str, np.ndarray] = {}

    def column(device: str) -> np.ndarray:
        if device not in cache:
            sampled = np.full(len(keys), np.nan)
            if problem.truth.supports("latency", device):
                sampled = problem.truth.evaluate(keys, device, ("error", "latency"))[:, 1]
            cache[device] = np.concatenate([data.column(device), sampled])
        return cache[device]

    onehots = torch.cat([data.onehots, space.to_onehot(space.parse_many(keys))])
    return LatencyData(keys=list(data.keys) + keys, onehots=onehots, reference_rows=data.reference_rows,
                       column=column, devices=data.devices)  # fmt: skip


@torch.no_grad()
def over_all_archs(
    model: Callable[[torch.Tensor], torch.Tensor], onehots: torch.Tensor, chunk: int = 4096
) -> torch.Tensor:
    """``model`` applied to every one-hot in chunks, without grad.

    Returns the outputs concatenated along the first dimension, e.g. ``(N,)`` errors or ``(N, D)`` latencies on
    D devices.
    """
    return torch.cat([model(onehots[i : i + chunk]) for i in range(0, len(onehots), chunk)])


def train_predictor(
    data: LatencyData,
    config: TrainConfig = TrainConfig(),
    model_config: PredictorConfig | None = None,
    progress: Progress | None = None,
    model: torch.nn.Module | None = None,
) -> torch.nn.Module:
    """Fit a MetaPredictor on the training devices of ``data`` (every architecture of it); deterministic per seed.

    ``model``: train this one instead (any ``f(onehot (B, D, O), embeddings (E, k)) -> (B, E)`` in
    reference-normalised units, e.g. OFA's HELP-shaped latency net); ``model_config`` is then ignored.
    """
    registry = data.devices
    names = config.devices or registry.names("train")
    for name in names:
        if registry.get(name).split == "test":
            raise ModnasError(f"{name!r} is a zero-shot test device and must not be used for training")
    model_config = model_config or PredictorConfig(space=registry.space_name)
    if model is None and model_config.space != registry.space_name:
        raise ModnasError(f"predictor config is for space {model_config.space!r}, the data for {registry.space_name!r}")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = MetaPredictor(model_config, registry.space) if model is None else model.requires_grad_(True)
    onehots = data.onehots
    targets = torch.tensor(np.stack([data.normalised(d) for d in names], axis=1), dtype=torch.float32)
    for name, column in zip(names, targets.T):
        if not torch.isfinite(column).all():
            raise ModnasError(f"training device {name!r} lacks the latency of some architectures of the data")
    embeddings = torch.tensor(np.stack([registry.get(d).embedding for d in names]), dtype=torch.float32)
    ref_targets = targets[list(data.reference_rows)]
    rng = np.random.default_rng(config.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.steps)
    model.train()
    for step in range(config.steps):
        batch = torch.randint(0, len(onehots), (config.batch_size,), generator=generator)
        step_targets, step_embeddings = targets[batch], embeddings
        if config.mixed_devices:
            mix = torch.tensor(
                rng.dirichlet(np.full(len(names), config.mix_concentration), size=config.mixed_devices).T,
                dtype=torch.float32,
            )
            mixed, mixed_ref = step_targets @ mix, ref_targets @ mix
            low, span = mixed_ref.min(0).values, mixed_ref.max(0).values - mixed_ref.min(0).values
            step_targets = torch.cat([step_targets, (mixed - low) / span], dim=1)
            step_embeddings = torch.cat([embeddings, ((mixed_ref - low) / span).T], dim=0)
        if config.embedding_noise:
            noise = torch.randn(step_embeddings.shape, generator=generator) * config.embedding_noise
            step_embeddings = step_embeddings + noise
        loss = torch.nn.functional.mse_loss(model(onehots[batch], step_embeddings), step_targets)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimiser.step()
        schedule.step()
        if progress is not None:
            progress(step + 1, config.steps, loss.item())
    model.eval()
    return model


# -- device-level prediction --------------------------------------------------------------------------------------


def device_embedding(device: Device) -> torch.Tensor:
    return torch.tensor(device.embedding, dtype=torch.float32)[None]


@torch.no_grad()
def predict_normalised(model: MetaPredictor, onehot: torch.Tensor, device: Device, chunk: int = 4096) -> np.ndarray:
    """Reference-normalised predictions for a batch of one-hots on one device."""
    emb = device_embedding(device)
    return torch.cat([model(onehot[i : i + chunk], emb)[:, 0] for i in range(0, len(onehot), chunk)]).numpy()


#: Latency predictions below ``LATENCY_KNEE`` x the device's fastest reference latency are compressed smoothly into
#: ``(LATENCY_FLOOR, LATENCY_KNEE)`` x that latency. On 25 of the 27 built-in devices no architecture runs faster
#: than 0.53 x the fastest reference architecture (pixel3's and raspi4's tables hold near-zero timings of degenerate
#: cells), so a prediction that low is the predictor extrapolating, typically from a noisy profile whose span of
#: reference latencies is inflated; read linearly it can be negative.
LATENCY_KNEE = 0.3
LATENCY_FLOOR = 0.05


def positive_latency(raw: np.ndarray, fastest_reference: float) -> np.ndarray:
    """Latencies with values below the knee mapped into ``(floor, knee)``, monotonically; others unchanged.

    Above ``LATENCY_KNEE * fastest_reference`` the values are returned exactly (every built-in device except pixel3
    predicts no lower, so their predictions are untouched); below it, ``floor + w * exp((x - knee) / w)`` with
    ``w = knee - floor`` continues the identity with slope 1 and never reaches the floor, so the order of the
    architectures is kept and every latency is > 0.
    """
    values = np.asarray(raw, dtype=np.float64)
    knee, floor = LATENCY_KNEE * fastest_reference, LATENCY_FLOOR * fastest_reference
    low = values < knee
    if not low.any():
        return values
    width = knee - floor
    out = values.copy()
    out[low] = floor + width * np.exp((values[low] - knee) / width)
    return out


def to_device_unit(normalised: np.ndarray, device: Device) -> np.ndarray:
    """Reference-normalised values -> the device's unit (ms), using its reference latencies; always > 0
    (see :func:`positive_latency`)."""
    ref = np.asarray(device.reference_latencies)
    return positive_latency(ref.min() + normalised * (ref.max() - ref.min()), float(ref.min()))


def adapt(
    model: MetaPredictor,
    device: Device,
    measurements: Mapping[str, float] | None = None,
    steps: int = 100,
    lr: float = 3e-4,
    seed: int = 0,
) -> MetaPredictor:
    """Few-shot adaptation: fine-tune a copy on the device's reference latencies plus extra measurements.

    ``measurements`` defaults to the device's ``extra_latencies`` (e.g. from ``modnas device measure --extra N``).
    The reference latencies are fitted only where they were measured (a device whose embedding was fitted from
    other architectures is adapted on its measurements alone). The original model is left untouched.
    """
    extra = dict(device.extra_latencies if measurements is None else measurements)
    ref_keys = list(device.reference_keys) if device.references_measured else []
    ref_values = np.asarray(device.reference_latencies if device.references_measured else (), dtype=float)
    values = np.concatenate([ref_values, np.asarray(list(extra.values()), dtype=float)])
    if not len(values):
        raise ModnasError(f"device {device.name!r} has no measured latencies to adapt to")
    ref = np.asarray(device.reference_latencies)
    targets = torch.tensor((values - ref.min()) / (ref.max() - ref.min()), dtype=torch.float32)
    # a model may read one-hots of a wider space than the search's (devices measured at any resolution)
    space = getattr(model, "measurement_space", model.space)
    onehot = space.to_onehot(space.parse_many(ref_keys + list(extra)))
    emb = device_embedding(device)
    torch.manual_seed(seed)
    tuned = copy.deepcopy(model)
    for p in tuned.parameters():  # a problem's shared predictor is frozen; its copy is tuned
        p.requires_grad_(True)
    tuned.train()
    optimiser = torch.optim.Adam(tuned.parameters(), lr=lr)
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(tuned(onehot, emb)[:, 0], targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    tuned.eval()
    return tuned


# -- evaluation ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalRow:
    device: str
    split: str
    setting: str
    spearman: float
    kendall: float

    def to_dict(self) -> dict:
        return asdict(self)


def rank_correlations(predicted: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """Spearman's rho and Kendall's tau-b."""
    return float(spearmanr(predicted, true)[0]), float(kendalltau(predicted, true)[0])


def evaluate_predictor(
    model: MetaPredictor,
    data: LatencyData,
    devices: Sequence[str],
    shots: Sequence[int] = (10, 20),
    seeds: int = 3,
    adapt_steps: int = 100,
    progress: Callable[[str], None] | None = None,
) -> list[EvalRow]:
    """Zero-shot and k-shot rank correlations per device on the architectures the predictor was not adapted on.

    Zero-shot: only the device embedding (reference latencies) is used; scored on the other architectures of
    ``data``. k-shot: ``k`` further random architectures are measured (read from ``data``) and used for
    :func:`adapt`; scored on the rest. Results are averaged over ``seeds`` draws of the k architectures.
    Architectures a device has no latency for (NaN in ``data``, e.g. resolutions a phone's table lacks) are left out.
    """
    onehots = data.onehots
    rows: list[EvalRow] = []
    for name in devices:
        device = data.devices.get(name)
        if not device.has_table:
            raise ModnasError(f"device {name!r} has no latency table to evaluate against")
        true = data.column(name)
        non_ref = np.setdiff1d(np.flatnonzero(np.isfinite(true)), data.reference_rows)
        predicted = predict_normalised(model, onehots, device)
        rows.append(EvalRow(name, device.split, "zero-shot", *rank_correlations(predicted[non_ref], true[non_ref])))
        for k in shots:
            scores = []
            for seed in range(seeds):
                rng = np.random.default_rng(seed)
                chosen = rng.choice(non_ref, size=k, replace=False)
                held_out = np.setdiff1d(non_ref, chosen)
                measurements = {data.keys[i]: float(true[i]) for i in chosen}
                tuned = adapt(model, device, measurements, steps=adapt_steps, seed=seed)
                pred = predict_normalised(tuned, onehots[held_out], device)
                scores.append(rank_correlations(pred, true[held_out]))
            rows.append(EvalRow(name, device.split, f"{k}-shot", *np.mean(scores, axis=0).tolist()))
        if progress is not None:
            progress(name)
    return rows


def summarise(rows: Sequence[EvalRow]) -> list[dict]:
    """Mean Spearman and Kendall per (split, setting)."""
    groups: dict[tuple[str, str], list[EvalRow]] = {}
    for row in rows:
        groups.setdefault((row.split, row.setting), []).append(row)
    return [
        {
            "split": split,
            "setting": setting,
            "n_devices": len(group),
            "spearman": float(np.mean([r.spearman for r in group])),
            "kendall": float(np.mean([r.kendall for r in group])),
            "min_spearman": float(np.min([r.spearman for r in group])),
        }
        for (split, setting), group in groups.items()
    ]

