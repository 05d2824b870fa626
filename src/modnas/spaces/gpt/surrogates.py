"""HW-GPT-Bench's GPT-S surrogates for perplexity and GPU memory, as differentiable torch modules.

These are learned predictors, not measurements. Both are HW-GPT-Bench's 4-hidden-layer ReLU MLPs
(``y = fc5(relu(fc4(relu(fc3(relu(fc2(relu(fc1(x)))))))))``, hidden width 128), shipped in ``data/``:

* perplexity (``hwgpt_perplexity_mlp_s.npz``) on the 80-d one-hot of :func:`perplexity_features`: the perplexity
  of weight-inherited subnets of HW-GPT-Bench's short-trained OpenWebText supernet, so values are about 21-43, far
  from a fully trained GPT-2. No ground-truth perplexities are shipped, so its error cannot be checked here.
* peak GPU memory in MB at batch 8 and full context (``hwgpt_memory_mlp_s.npz``, float16 or bfloat16) on the 27-d
  normalised feature map of :func:`memory_features`. It does not depend on the device.

They exist for GPT-S only. Both reproduce HW-GPT-Bench's test vectors (``data/hwgpt_test_vectors_s.csv.gz``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources

import numpy as np
import torch
from torch import Tensor, nn

from modnas.errors import ModnasError
from modnas.spaces.gpt.arch import GPT_S, GPTArch

PERPLEXITY_FILE = "hwgpt_perplexity_mlp_s.npz"
MEMORY_FILE = "hwgpt_memory_mlp_s.npz"
TEST_VECTORS_FILE = "hwgpt_test_vectors_s.csv.gz"
MEMORY_DTYPES = ("float16", "bfloat16")

#: input widths: embed, n_layer, then per layer MLP ratio and heads (one-hot or scalar), then bias
PERPLEXITY_DIM = 2 * len(GPT_S.embeds) + 2 * len(GPT_S.mlp_ratios) * GPT_S.max_layers + 2
MEMORY_DIM = 3 + 2 * GPT_S.max_layers

_HIDDEN = 128
_STAT_KEYS = ("ppl_min", "ppl_max", "ppl_mean", "ppl_std")


def _arrays(name: str) -> dict[str, np.ndarray]:
    with resources.as_file(resources.files("modnas.spaces.gpt").joinpath("data", name)) as path:
        if not path.is_file():
            raise ModnasError(f"HW-GPT-Bench data file {name} is missing from the installed package")
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def _check_gpt_s(archs: Sequence[GPTArch]) -> None:
    for arch in archs:
        if arch.variant != GPT_S:
            raise ModnasError(f"the HW-GPT-Bench surrogates cover gpt-s only, got {arch.variant.name}")


def _one_hot(value: int, choices: Sequence[int]) -> list[float]:
    return [1.0 if value == c else 0.0 for c in sorted(choices)]


def _unit(value: int, choices: Sequence[int]) -> float:
    lo, hi = min(choices), max(choices)
    return (value - lo) / (hi - lo)


def perplexity_features(archs: Sequence[GPTArch]) -> np.ndarray:
    """HW-GPT-Bench's one-hot encoding ``(N, 80)`` float32: embed, n_layer, per-layer MLP ratio ``[12, 3]`` and
    heads ``[12, 3]`` (rows of inactive layers all zero), bias ``[1, 0]`` (True) or ``[0, 1]`` (False)."""
    _check_gpt_s(archs)
    v = GPT_S
    out = np.zeros((len(archs), PERPLEXITY_DIM), dtype=np.float32)
    for n, arch in enumerate(archs):
        mlp = np.zeros((v.max_layers, len(v.mlp_ratios)))
        heads = np.zeros((v.max_layers, len(v.heads)))
        for i, (r, h) in enumerate(zip(arch.mlp_ratios, arch.heads)):
            mlp[i] = _one_hot(r, v.mlp_ratios)
            heads[i] = _one_hot(h, v.heads)
        out[n] = np.concatenate([
            _one_hot(arch.embed, v.embeds), _one_hot(arch.n_layer, v.layers), mlp.ravel(), heads.ravel(),
            [1.0, 0.0] if arch.bias else [0.0, 1.0],
        ])  # fmt: skip
    return out


def memory_features(archs: Sequence[GPTArch]) -> np.ndarray:
    """HW-GPT-Bench's normalised feature map ``(N, 27)`` float32: embed and n_layer scaled to [0, 1], 12 MLP ratios
    and 12 head counts scaled to [0, 1] (-1 for inactive layers), bias 1 or 0."""
    _check_gpt_s(archs)
    v = GPT_S
    out = np.full((len(archs), MEMORY_DIM), -1.0, dtype=np.float32)
    for n, arch in enumerate(archs):
        out[n, 0] = _unit(arch.embed, v.embeds)
        out[n, 1] = _unit(arch.n_layer, v.layers)
        for i, (r, h) in enumerate(zip(arch.mlp_ratios, arch.heads)):
            out[n, 2 + i] = _unit(r, v.mlp_ratios)
            out[n, 2 + v.max_layers + i] = _unit(h, v.heads)
        out[n, -1] = 1.0 if arch.bias else 0.0
    return out


class SurrogateMLP(nn.Module):
    """A frozen HW-GPT-Bench MLP surrogate: features ``(..., nfeat)`` -> prediction ``(...)``.

    The weights are frozen, but the output stays differentiable with respect to the input, so a relaxed (soft)
    encoding can be pushed through it.
    """

    def __init__(self, file: str, prefix: str = "") -> None:
        super().__init__()
        arrays = _arrays(file)
        try:
            nfeat = arrays[f"{prefix}fc1.weight"].shape[1]
        except KeyError:
            raise ModnasError(f"HW-GPT-Bench data file {file} has no MLP under prefix {prefix!r}") from None
        self.fc1 = nn.Linear(nfeat, _HIDDEN)
        self.fc2, self.fc3, self.fc4 = (nn.Linear(_HIDDEN, _HIDDEN) for _ in range(3))
        self.fc5 = nn.Linear(_HIDDEN, 1)
        names = [k for k in arrays if k.startswith(f"{prefix}fc")]
        self.load_state_dict({k[len(prefix) :]: torch.from_numpy(arrays[k]) for k in names})
        self.in_features = nfeat
        self.requires_grad_(False)
        self.eval()

    def forward(self, features: Tensor) -> Tensor:
        x = torch.relu(self.fc1(features))
        x = torch.relu(self.fc2(x))
        x = torch.relu(self.fc3(x))
        x = torch.relu(self.fc4(x))
        return self.fc5(x).squeeze(-1)


@functools.lru_cache(maxsize=1)
def perplexity_model() -> SurrogateMLP:
    """The GPT-S perplexity surrogate on :func:`perplexity_features` (loaded once)."""
    return SurrogateMLP(PERPLEXITY_FILE)


@functools.lru_cache(maxsize=len(MEMORY_DTYPES))
def memory_model(dtype: str) -> SurrogateMLP:
    """The GPT-S peak GPU memory surrogate (MB) for ``dtype`` ``"float16"`` or ``"bfloat16"`` on
    :func:`memory_features` (loaded once per dtype)."""
    # lru_cache does not store raised errors, so bad values never take a cache slot
    if dtype not in MEMORY_DTYPES:
        raise ModnasError(f"memory dtype {dtype!r} is not one of {', '.join(MEMORY_DTYPES)}")
    return SurrogateMLP(MEMORY_FILE, prefix=f"{dtype}_memory.")


def _predict(model: SurrogateMLP, features: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(features)).numpy().astype(np.float64)


def predict_perplexity(archs: Sequence[GPTArch]) -> np.ndarray:
    """Surrogate perplexity ``(N,)`` of GPT-S architectures (float64, computed in float32)."""
    return _predict(perplexity_model(), perplexity_features(archs))


def predict_memory_mb(archs: Sequence[GPTArch], dtype: str = "float16") -> np.ndarray:
    """Surrogate peak GPU memory in MB ``(N,)`` of GPT-S architectures in ``dtype`` (float64, computed in float32)."""
    return _predict(memory_model(dtype), memory_features(archs))


@functools.lru_cache(maxsize=1)
def _perplexity_stats() -> dict[str, float]:
    arrays = _arrays(PERPLEXITY_FILE)
    return {k: float(arrays[k]) for k in _STAT_KEYS}


def perplexity_stats() -> dict[str, float]:
    """``ppl_min``, ``ppl_max``, ``ppl_mean``, ``ppl_std`` of HW-GPT-Bench's sampled GPT-S architecture set."""
    return dict(_perplexity_stats())


def __getattr__(name: str) -> object:
    # PERPLEXITY_STATS is read on first access so that importing this module reads no file
    if name == "PERPLEXITY_STATS":
        return perplexity_stats()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
