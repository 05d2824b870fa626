"""The fixed-length encodings of OFA architectures that the published predictors read, differentiable in the
one-hot of :class:`~modnas.spaces.ofa.space.OFASpace`.

* HELP/MODNAS 160-d (HELP ``arch_encoding_ofa``): kernel one-hot per slot (0-59), expand one-hot per slot
  (60-119), both zero for inactive slots; resolution one-hot at ``120 + (r - 128) // 4`` (120-144); depth one-hot
  per stage (145-159).
* OFA accuracy predictor 128-d (OFA tutorial ``spec2feats``): the same 0-119, then the resolution's 16-pixel bin
  at ``120 + (r - 112) // 16`` (bins from 112 to 240); no depth block (depth shows in the zeroed slots).

Kernel and expand options are in the order (3, 5, 7) and (3, 4, 6), as in both sources. For a soft one-hot the
slots are weighted by the differentiable gate weights (the probability that the slot exists) where MODNAS zeroes
them by the argmax depth; for one-hots both agree.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from modnas.spaces.ofa.arch import EXPANDS, KERNELS, NUM_SLOTS, NUM_STAGES, RESOLUTIONS, OFAArch
from modnas.spaces.ofa.space import OFASpace

HELP_DIM = 160
ACC_DIM = 128
#: first decision of the slots: after ``r`` and the 5 depths
_FIRST_SLOT = 1 + NUM_STAGES


def _slot_parts(space: OFASpace, onehot: Tensor) -> tuple[Tensor, Tensor]:
    """Gated kernel and expand one-hots, each ``(..., 60)``."""
    gates = space.gate_weights(onehot)
    k = onehot[..., _FIRST_SLOT::2, : len(KERNELS)] * gates[..., _FIRST_SLOT::2, None]
    e = onehot[..., _FIRST_SLOT + 1 :: 2, : len(EXPANDS)] * gates[..., _FIRST_SLOT + 1 :: 2, None]
    return k.flatten(-2), e.flatten(-2)


def _resolution_map(space: OFASpace, columns: int, position: list[int]) -> Tensor:
    out = torch.zeros(len(space.resolutions), columns)
    out[torch.arange(len(space.resolutions)), torch.tensor(position)] = 1.0
    return out


def help_features(space: OFASpace, onehot: Tensor) -> Tensor:
    """HELP/MODNAS's 160-d encoding ``(..., 160)`` of one-hots ``(..., num_decisions, max_options)``."""
    k, e = _slot_parts(space, onehot)
    res_map = _resolution_map(space, len(RESOLUTIONS), [RESOLUTIONS.index(r) for r in space.resolutions])
    res = onehot[..., 0, : len(space.resolutions)] @ res_map.to(onehot)
    depth = onehot[..., 1:_FIRST_SLOT, :3].flatten(-2)
    return torch.cat([k, e, res, depth], dim=-1)


def accuracy_features(space: OFASpace, onehot: Tensor) -> Tensor:
    """The OFA accuracy predictor's 128-d encoding ``(..., 128)``."""
    k, e = _slot_parts(space, onehot)
    res_map = _resolution_map(space, 8, [(r - 112) // 16 for r in space.resolutions])
    res = onehot[..., 0, : len(space.resolutions)] @ res_map.to(onehot)
    return torch.cat([k, e, res], dim=-1)


def help_vector(arch: OFAArch) -> np.ndarray:
    """The 160-d encoding of one architecture, written directly from the layout (to check the above)."""
    x = np.zeros(HELP_DIM, dtype=np.float32)
    for i in range(NUM_SLOTS):
        if arch.active(i):
            x[3 * i + KERNELS.index(arch.ks[i])] = 1
            x[60 + 3 * i + EXPANDS.index(arch.e[i])] = 1
    x[120 + (arch.r - 128) // 4] = 1
    for s, d in enumerate(arch.d):
        x[145 + 3 * s + d - 2] = 1
    return x


def accuracy_vector(arch: OFAArch) -> np.ndarray:
    """The 128-d encoding of one architecture, written directly from the layout (to check the above)."""
    x = np.zeros(ACC_DIM, dtype=np.float32)
    x[:120] = help_vector(arch)[:120]
    x[120 + (arch.r - 112) // 16] = 1
    return x
