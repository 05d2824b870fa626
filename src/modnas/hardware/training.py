"""Training, few-shot adaptation and evaluation of the hardware MetaPredictor.

Training uses the 13 MODNAS training devices only: the 6 test devices are never seen, so their scores measure
zero-shot transfer. Targets are reference-normalised latencies (see :mod:`modnas.hardware.predictor`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from modnas.errors import ModnasError
from modnas.hardware.devices import REFERENCE_ARCH_INDICES, TRAIN_DEVICES, Device, registry
from modnas.hardware.predictor import MetaPredictor, PredictorConfig
from modnas.spaces.nb201.encoding import to_index, to_onehot
from modnas.tables.nb201 import NUM_ARCHS, nb201_tables

Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of predictor training (defaults: about 8 minutes on 2 CPU cores)."""

    steps: int = 8000
    batch_size: int = 512
    lr: float = 3e-3
    grad_clip: float = 5.0
    seed: int = 0
    devices: tuple[str, ...] = TRAIN_DEVICES
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


def normalised_table(device: str) -> np.ndarray:
    """Reference-normalised latency of all 15,625 architectures on a device that has a table."""
    latency = nb201_tables.full_column("latency", device)
    ref = latency[list(REFERENCE_ARCH_INDICES)]
    return (latency - ref.min()) / (ref.max() - ref.min())


def all_onehots() -> torch.Tensor:
    """One-hot ``(15625, 6, 5)`` of every architecture in canonical index order."""
    return to_onehot(nb201_tables.ops_codes)


@torch.no_grad()
def over_all_archs(
    model: Callable[[torch.Tensor], torch.Tensor], onehots: torch.Tensor | None = None, chunk: int = 4096
) -> torch.Tensor:
    """``model`` applied to every architecture's one-hot (default :func:`all_onehots`) in chunks, without grad.

    Returns the outputs concatenated along the first dimension, e.g. ``(15625,)`` errors or ``(15625, D)``
    latencies on D devices.
    """
    x = all_onehots() if onehots is None else onehots
    return torch.cat([model(x[i : i + chunk]) for i in range(0, len(x), chunk)])


def normalised_predicted_latencies(names: Sequence[str], model: MetaPredictor | None = None) -> np.ndarray:
    """Predicted latency of every architecture on each named device, min-max normalised per device ``(N, D)``.

    This is how a search sees latency (``model`` defaults to the shipped MetaPredictor): the bounds are the
    predictions' own min and max over all 15,625 architectures.
    """
    from modnas.hardware.predictor import load_predictor

    predictor = model if model is not None else load_predictor()[0]
    emb = torch.tensor(np.stack([registry.get(n).embedding for n in names]), dtype=torch.float32)
    lat = over_all_archs(lambda x: predictor(x, emb)).numpy()
    return (lat - lat.min(axis=0)) / (lat.max(axis=0) - lat.min(axis=0))


def train_predictor(
    config: TrainConfig = TrainConfig(),
    model_config: PredictorConfig = PredictorConfig(),
    progress: Progress | None = None,
) -> MetaPredictor:
    """Fit a MetaPredictor on the given training devices (all 15,625 architectures each); deterministic per seed."""
    for name in config.devices:
        if registry.get(name).split == "test":
            raise ModnasError(f"{name!r} is a zero-shot test device and must not be used for training")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = MetaPredictor(model_config)
    onehots = all_onehots()
    targets = torch.tensor(np.stack([normalised_table(d) for d in config.devices], axis=1), dtype=torch.float32)
    embeddings = torch.tensor(np.stack([registry.get(d).embedding for d in config.devices]), dtype=torch.float32)
    ref_targets = targets[list(REFERENCE_ARCH_INDICES)]
    rng = np.random.default_rng(config.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.steps)
    model.train()
    for step in range(config.steps):
        batch = torch.randint(0, NUM_ARCHS, (config.batch_size,), generator=generator)
        step_targets, step_embeddings = targets[batch], embeddings
        if config.mixed_devices:
            mix = torch.tensor(
                rng.dirichlet(np.full(len(config.devices), config.mix_concentration), size=config.mixed_devices).T,
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
    """Reference-normalised values -> the device's unit (ms), using its 10 reference latencies; always > 0
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
    ref_idx = np.asarray(REFERENCE_ARCH_INDICES if device.references_measured else (), dtype=np.int64)
    ref_values = np.asarray(device.reference_latencies if device.references_measured else (), dtype=float)
    arch_idx = np.concatenate([ref_idx, to_index(list(extra))]) if extra else ref_idx
    values = np.concatenate([ref_values, np.asarray(list(extra.values()), dtype=float)])
    if not len(values):
        raise ModnasError(f"device {device.name!r} has no measured latencies to adapt to")
    ref = np.asarray(device.reference_latencies)
    targets = torch.tensor((values - ref.min()) / (ref.max() - ref.min()), dtype=torch.float32)
    onehot = to_onehot(nb201_tables.ops_codes[arch_idx])
    emb = device_embedding(device)
    torch.manual_seed(seed)
    tuned = copy.deepcopy(model)
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
    devices: Sequence[str],
    shots: Sequence[int] = (10, 20),
    seeds: int = 3,
    adapt_steps: int = 100,
    progress: Callable[[str], None] | None = None,
) -> list[EvalRow]:
    """Zero-shot and k-shot rank correlations per device on the architectures the predictor was not adapted on.

    Zero-shot: only the device embedding (10 reference latencies) is used; scored on the other 15,615 archs.
    k-shot: ``k`` further random architectures are measured (read from the table) and used for :func:`adapt`;
    scored on the rest. Results are averaged over ``seeds`` draws of the k architectures.
    """
    onehots = all_onehots()
    non_ref = np.setdiff1d(np.arange(NUM_ARCHS), REFERENCE_ARCH_INDICES)
    rows: list[EvalRow] = []
    for name in devices:
        device = registry.get(name)
        if not device.has_table:
            raise ModnasError(f"device {name!r} has no latency table to evaluate against")
        true = nb201_tables.full_column("latency", name)
        predicted = predict_normalised(model, onehots, device)
        rows.append(EvalRow(name, device.split, "zero-shot", *rank_correlations(predicted[non_ref], true[non_ref])))
        for k in shots:
            scores = []
            for seed in range(seeds):
                rng = np.random.default_rng(seed)
                chosen = rng.choice(non_ref, size=k, replace=False)
                held_out = np.setdiff1d(non_ref, chosen)
                measurements = {nb201_tables.arch_strings[i]: float(true[i]) for i in chosen}
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

