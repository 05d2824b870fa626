"""GPU latency of any OFA architecture: surrogates fitted to HELP's measurements of 5,000 architectures.

HELP measured 5,000 architectures on 12 GPU settings (4 GPUs x batch 1 / 32 / 64;
``data/ofa_help_archs_latency.csv.gz``). A benchmark needs the latency of every architecture an optimiser
proposes, so each setting gets a surrogate fitted to those measurements. It must be *monotone where physics is*: a
larger kernel, expand ratio, depth or resolution never makes a network faster. A flexible model fitted to noisy
batch-1 timings learns the opposite in places, and an optimiser finds and exploits exactly those places.

Two models, both monotone by construction:

* :class:`AdditiveLatency` -- latency as a sum of per-block costs, like a look-up table. A block (per stage, the
  first block apart from the others: it changes the width and the stride) costs a base plus increments for
  kernel >= 5, kernel >= 7, expand >= 4 and expand >= 6, each once as a fixed
  (launch) cost and once scaled by ``(r / 224)^2`` (compute grows with the image area); plus a constant and an
  ``(r / 224)^2`` term for the fixed layers. All coefficients are fitted by non-negative least squares, so every
  increment is >= 0 and the model is monotone in every decision.
* :class:`BoostedLatency` -- gradient-boosted trees (scikit-learn's ``HistGradientBoostingRegressor``) on the
  resolution, the depths and the per-slot kernel and expand (0 for an absent slot), with an increasing monotonic
  constraint on every feature.

``benchmarks/ofa_latency_surrogate.py`` compares them by held-out Spearman and MAPE per setting; the choice is
made on those numbers (:data:`DEFAULT_MODEL`), not on any search result.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from modnas.errors import ModnasError
from modnas.spaces.ofa.arch import NUM_SLOTS, NUM_STAGES, SLOTS_PER_STAGE, OFAArch

#: The 12 measured GPU settings, ``<gpu>_<batch>``.
GPU_SETTINGS: tuple[str, ...] = tuple(
    f"{gpu}_{batch}" for gpu in ("2080ti", "titan_rtx", "titan_xp", "v100") for batch in (1, 32, 64)
)


@functools.lru_cache(maxsize=1)
def measured_table() -> pd.DataFrame:
    """HELP's 5,000 architectures with their keys and latencies (ms) on the 12 settings."""
    from modnas.spaces.ofa.predictors import DATA

    with DATA.joinpath("ofa_help_archs_latency.csv.gz").open("rb") as f:
        table = pd.read_csv(f, compression="gzip")
    table["key"] = [arch_of_row(row).key for _, row in table.iterrows()]
    return table


def arch_of_row(row: pd.Series) -> OFAArch:
    """The architecture of a data row (columns ``r, d0..d4, ks0..ks19, e0..e19``)."""
    return OFAArch.from_dict({
        "r": int(row["r"]), "d": [int(row[f"d{s}"]) for s in range(NUM_STAGES)],
        "ks": [int(row[f"ks{i}"]) for i in range(NUM_SLOTS)], "e": [int(row[f"e{i}"]) for i in range(NUM_SLOTS)],
    })  # fmt: skip


# -- the additive model -------------------------------------------------------------------------------------------


_GROUPS = NUM_STAGES * 2  # per stage: its first block, and the others


def _arrays(archs: Sequence[OFAArch]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Resolution ``(N,)``, slot activity, kernels and expand ratios ``(N, 20)`` of architectures."""
    r = np.array([a.r for a in archs], dtype=np.float64)
    depth = np.array([a.d for a in archs], dtype=np.int64)
    k = np.array([a.ks for a in archs], dtype=np.int64).reshape(len(archs), NUM_SLOTS)
    e = np.array([a.e for a in archs], dtype=np.int64).reshape(len(archs), NUM_SLOTS)
    position = np.arange(NUM_SLOTS) % SLOTS_PER_STAGE
    active = position[None, :] < np.repeat(depth, SLOTS_PER_STAGE, axis=1)
    return r, active, k, e


_GROUPS = NUM_STAGES * 2  # per stage: its first block, and the others
#: slot -> block group (first block of a stage, or one of its others)
_GROUP_OF_SLOT = np.eye(_GROUPS)[2 * (np.arange(NUM_SLOTS) // SLOTS_PER_STAGE) + (np.arange(NUM_SLOTS) % SLOTS_PER_STAGE > 0)]


def additive_features(archs: Sequence[OFAArch]) -> np.ndarray:
    """``(N, 2 + 2 * 10 * 5)``: constant, area, then per block group and part the fixed and area-scaled counts."""
    r, active, k, e = _arrays(archs)
    parts = np.stack([active, active & (k >= 5), active & (k >= 7), active & (e >= 4), active & (e >= 6)], axis=-1)
    counts = np.einsum("nsp,sg->ngp", parts.astype(np.float64), _GROUP_OF_SLOT).reshape(len(archs), -1)
    area = (r / 224.0) ** 2
    return np.concatenate([np.ones((len(archs), 1)), area[:, None], counts, counts * area[:, None]], axis=1)


class AdditiveLatency:
    """Per-block costs fitted by non-negative least squares (monotone; see the module docstring)."""

    name = "additive"

    def fit(self, archs: Sequence[OFAArch], latency: np.ndarray) -> AdditiveLatency:
        from scipy.optimize import nnls

        x = additive_features(archs)
        # relative error matters more than absolute: weight rows by 1 / latency
        w = 1.0 / np.asarray(latency, dtype=np.float64)
        self.coef, _ = nnls(x * w[:, None], np.asarray(latency) * w)
        return self

    def predict(self, archs: Sequence[OFAArch]) -> np.ndarray:
        return additive_features(archs) @ self.coef


# -- the boosted model --------------------------------------------------------------------------------------------


def slot_features(archs: Sequence[OFAArch]) -> np.ndarray:
    """``(N, 1 + 5 + 40)``: resolution, depths, then per slot its kernel and expand (0 where the slot is absent)."""
    r, active, k, e = _arrays(archs)
    slots = np.stack([np.where(active, k, 0), np.where(active, e, 0)], axis=-1).reshape(len(archs), -1)
    depth = np.array([a.d for a in archs], dtype=np.float64).reshape(len(archs), NUM_STAGES)
    return np.concatenate([r[:, None], depth, slots.astype(np.float64)], axis=1)


class BoostedLatency:
    """Gradient-boosted trees with increasing monotonic constraints on every feature (fixed seed)."""

    name = "boosted"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, archs: Sequence[OFAArch], latency: np.ndarray) -> BoostedLatency:
        from sklearn.ensemble import HistGradientBoostingRegressor

        x = slot_features(archs)
        self.model = HistGradientBoostingRegressor(
            loss="squared_error", max_iter=400, learning_rate=0.05, max_leaf_nodes=31, min_samples_leaf=20,
            monotonic_cst=[1] * x.shape[1], random_state=self.seed,
        )  # fmt: skip
        # log latency: the model's error is then relative, as MAPE measures it
        self.model.fit(x, np.log(np.asarray(latency, dtype=np.float64)))
        return self

    def predict(self, archs: Sequence[OFAArch]) -> np.ndarray:
        return np.exp(self.model.predict(slot_features(archs)))


MODELS = {"additive": AdditiveLatency, "boosted": BoostedLatency}
#: The surrogate the OFA benchmark uses (chosen by held-out Spearman and MAPE; ``docs/benchmarks.md``).
DEFAULT_MODEL = "additive"


def make_model(name: str = DEFAULT_MODEL) -> AdditiveLatency | BoostedLatency:
    if name not in MODELS:
        raise ModnasError(f"unknown OFA latency model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]()


@functools.cache
def surrogate(setting: str, model: str = DEFAULT_MODEL) -> AdditiveLatency | BoostedLatency:
    """The surrogate of one GPU setting, fitted to all 5,000 measurements (deterministic, fitted once)."""
    if setting not in GPU_SETTINGS:
        raise ModnasError(f"no OFA latency measurements for {setting!r}; measured: {', '.join(GPU_SETTINGS)}")
    table = measured_table()
    archs = [OFAArch.from_key(k) for k in table["key"]]
    return make_model(model).fit(archs, table[f"lat_{setting}"].to_numpy())


@functools.cache
def _measured(setting: str) -> dict[str, float]:
    table = measured_table()
    return dict(zip(table["key"], table[f"lat_{setting}"].tolist()))


def latency(keys: Sequence[str], setting: str, model: str = DEFAULT_MODEL) -> np.ndarray:
    """Latency (ms) on a GPU setting: the measurement where HELP measured the architecture, else the surrogate's."""
    measured = _measured(setting) if setting in GPU_SETTINGS else {}
    out = np.array([measured.get(k, np.nan) for k in keys], dtype=np.float64)
    missing = np.flatnonzero(np.isnan(out))
    if len(missing):
        out[missing] = surrogate(setting, model).predict([OFAArch.from_key(keys[i]) for i in missing])
    return out
