"""OFA MobileNetV3 through the generic :class:`~modnas.spaces.base.SearchSpace` interface.

Decisions, in encoding order: the resolution ``r``, the depths ``d0..d4``, then per block slot ``i`` its kernel
``k{i}`` and expand ratio ``e{i}``. The first two slots of every stage always exist; slot 3 of a stage is gated by
its depth being 3 or 4, slot 4 by depth 4. Keys are :attr:`OFAArch.key` strings. About 1e19 architectures at 25
resolutions: the space cannot be enumerated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from modnas.errors import ModnasError
from modnas.spaces.base import Decision, SearchSpace
from modnas.spaces.ofa.arch import (
    DEPTHS,
    EXPANDS,
    KERNELS,
    NUM_SLOTS,
    NUM_STAGES,
    RESOLUTIONS,
    SLOTS_PER_STAGE,
    OFAArch,
)

#: HELP's 10 OFA reference architectures (``hardware_embedding_index.pt`` into HELP's 5,000 architectures), as keys.
REFERENCE_KEYS: tuple[str, ...] = (
    "r196_73765356_767433_747656_33543433_3353",
    "r172_743336_5636_5376_367353_3653",
    "r204_7454_3434_7673_5356_737674",
    "r200_34735376_333354_36365436_73563676_74545436",
    "r136_5476_7476_7433_767474_7476",
    "r224_76745376_3676_367476_36367473_34567673",
    "r132_56537434_3333_73333454_7333_333636",
    "r152_7336_36745374_7634_36333473_74733376",
    "r152_7434_36733654_545454_53543654_56533373",
    "r200_33337476_76767473_567333_33535633_3676",
)

#: the keyword arguments of :func:`modnas.spaces.ofa.network.build_network` besides the architecture
NETWORK_SETTINGS = frozenset({"num_classes", "width_mult", "in_channels", "dropout"})


def _slot_decisions() -> list[Decision]:
    out = []
    for i in range(NUM_SLOTS):
        stage, position = divmod(i, SLOTS_PER_STAGE)
        # slots 0 and 1 of a stage always exist (depth >= 2); slot 2 needs depth 3 or 4, slot 3 depth 4
        gate = None if position < 2 else (f"d{stage}", tuple(str(d) for d in DEPTHS if d > position))
        out.append(Decision(f"k{i}", tuple(map(str, KERNELS)), gate))
        out.append(Decision(f"e{i}", tuple(map(str, EXPANDS)), gate))
    return out


class OFASpace(SearchSpace):
    """OFA MobileNetV3 (w1.2): resolution, 5 depths, 20 (kernel, expand) slots; ``resolutions`` may restrict the
    input sizes (a benchmark whose ground truth is valid on only some of them)."""

    name = "ofa"
    network_options = ("width_mult",)

    def __init__(self, resolutions: Sequence[int] = RESOLUTIONS) -> None:
        unknown = [r for r in resolutions if r not in RESOLUTIONS]
        if unknown or not resolutions:
            raise ModnasError(f"OFA resolutions must be among 128, 132, ..., 224, got {list(resolutions)}")
        self.resolutions = tuple(sorted(resolutions))
        self.decisions = (
            Decision("r", tuple(map(str, self.resolutions))),
            *(Decision(f"d{s}", tuple(map(str, DEPTHS))) for s in range(NUM_STAGES)),
            *_slot_decisions(),
        )

    # -- identity -------------------------------------------------------------------------------------------------

    def arch(self, indices: Sequence[int] | np.ndarray) -> OFAArch:
        """The :class:`OFAArch` of choice indices (inactive slots ignored)."""
        idx = self.canonicalise(np.asarray(indices).reshape(1, -1))[0]
        d = tuple(DEPTHS[int(i)] for i in idx[1 : 1 + NUM_STAGES])
        slots = idx[1 + NUM_STAGES :].reshape(NUM_SLOTS, 2)
        ks = tuple(KERNELS[int(k)] for k in slots[:, 0])
        e = tuple(EXPANDS[int(x)] for x in slots[:, 1])
        return OFAArch(self.resolutions[int(idx[0])], d, ks, e)

    def indices(self, arch: OFAArch) -> np.ndarray:
        """Canonical choice indices of an :class:`OFAArch` of this space."""
        if arch.r not in self.resolutions:
            raise ModnasError(
                f"resolution {arch.r} is outside this OFA space ({self.resolutions[0]}..{self.resolutions[-1]})"
            )
        c = arch.canonical()
        out = [self.resolutions.index(c.r), *(DEPTHS.index(d) for d in c.d)]
        for k, e in zip(c.ks, c.e):
            out += [KERNELS.index(k), EXPANDS.index(e)]
        return np.asarray(out, dtype=np.int64)

    def parse(self, key: str) -> np.ndarray:
        return self.indices(OFAArch.from_key(key))

    def to_key(self, indices: Sequence[int] | np.ndarray) -> str:
        return self.arch(indices).key

    def resolve(self, text: str) -> str:
        """A key, or HELP/MODNAS's dict written as JSON (``{"ks": [...], "e": [...], "d": [...], "r": 192}``)."""
        text = text.strip()
        if text.startswith("{"):
            import json

            try:
                spec = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ModnasError(f"OFA architecture dict is not valid JSON ({exc.msg})") from None
            return self.to_key(self.indices(OFAArch.from_dict(spec)))
        return self.canonical_key(text)

    # -- sets of architectures ------------------------------------------------------------------------------------

    def reference_architectures(self) -> tuple[str, ...]:
        return REFERENCE_KEYS

    def extremes(self) -> tuple[str, str]:
        """The smallest network (lowest resolution, depth 2, k3 e3) and the largest (highest, depth 4, k7 e6)."""
        small = OFAArch(self.resolutions[0], (2,) * NUM_STAGES, (3,) * NUM_SLOTS, (3,) * NUM_SLOTS)
        large = OFAArch(self.resolutions[-1], (4,) * NUM_STAGES, (7,) * NUM_SLOTS, (6,) * NUM_SLOTS)
        return small.key, large.key

    def export_defaults(self, key: str) -> dict[str, Any]:
        """The ImageNet subnet: 1000 classes, input at the architecture's own resolution."""
        return {"num_classes": 1000, "image_size": OFAArch.from_key(self.canonical_key(key)).r}

    def build_network(self, key: str, **kwargs: Any) -> Any:
        """The standalone subnet (``kwargs``: ``num_classes``, ``width_mult``, ``in_channels``, ``dropout``)."""
        from modnas.spaces.ofa.network import build_network

        unknown = sorted(set(kwargs) - NETWORK_SETTINGS)
        if unknown:  # e.g. NB201's cell width C and depth N, from a command that builds NB201 networks only
            raise ModnasError(
                f"OFA networks have no setting {unknown[0]!r} (they take {', '.join(sorted(NETWORK_SETTINGS))})"
            )
        return build_network(OFAArch.from_key(self.canonical_key(key)), **kwargs)

    #: one-shot defaults for a CPU: a narrow supernet on 32-pixel inputs (``oneshot.supernet`` overrides them; the
    #: paper's ImageNet supernet is ``width_mult: 1.2, image_size: 224``)
    SUPERNET_DEFAULTS: ClassVar[dict[str, Any]] = {"width_mult": 0.5, "image_size": 32}

    def build_supernet(self, **kwargs: Any) -> nn.Module:
        """The elastic supernet (:class:`~modnas.spaces.ofa.supernet.ElasticMobileNetV3`) over this space's
        resolutions; ``kwargs``: ``num_classes``, ``in_channels``, ``width_mult``, ``image_size``."""
        from modnas.spaces.ofa.supernet import ElasticMobileNetV3

        allowed = {"num_classes", "in_channels", *self.SUPERNET_DEFAULTS}
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise ModnasError(
                f"the OFA supernet has no setting {', '.join(unknown)} (oneshot.supernet takes width_mult, image_size)"
            )
        settings = {**self.SUPERNET_DEFAULTS, **kwargs}
        width = settings["width_mult"]
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 4:
            raise ModnasError(f"oneshot.supernet.width_mult must be a number in (0, 4], got {width!r}")
        return ElasticMobileNetV3(resolutions=self.resolutions, **settings)

    def _arch_of(self, arch: str | Sequence[int] | np.ndarray) -> OFAArch:
        """The :class:`OFAArch` of a key of this space or of its choice indices."""
        return OFAArch.from_key(self.canonical_key(arch)) if isinstance(arch, str) else self.arch(arch)

    def timing_network(  # type: ignore[override]
        self,
        arch: str | Sequence[int] | np.ndarray,
        batch_size: int,
        generator: torch.Generator,
        input_size: int | None = None,
        channels: int = 3,
        num_classes: int = 1000,
        width_mult: float = 1.2,
    ) -> tuple[nn.Module, torch.Tensor]:
        """The standalone subnet (ImageNet shape, w1.2 by default) and a random input batch at the architecture's
        own resolution (``input_size`` overrides it)."""
        from modnas.spaces.ofa.network import build_network

        checks = [("channels", channels, 1), ("num_classes", num_classes, 1)]
        if input_size is not None:  # the net downsamples 32-fold: smaller inputs would time mostly padding
            checks.append(("input size", input_size, 32))
        for what, value, minimum in checks:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ModnasError(f"{what} must be an integer >= {minimum}, got {value!r}")
        real = isinstance(width_mult, (int, float)) and not isinstance(width_mult, bool)
        if not real or not 0 < width_mult < math.inf:
            raise ModnasError(f"width_mult must be a positive number, got {width_mult!r}")
        a = self._arch_of(arch)
        size = a.r if input_size is None else int(input_size)
        net = build_network(a, int(num_classes), float(width_mult), int(channels))
        return net, torch.randn(batch_size, int(channels), size, size, generator=generator)

    def flops(self, keys: Sequence[str]) -> np.ndarray:
        """Millions of multiply-accumulates (MACs) of each architecture's w1.2 ImageNet network at its own
        resolution (:func:`~modnas.spaces.ofa.network.count_macs`).

        OFA and its papers call these MACs "FLOPs"; so does modnas (``MFLOPs`` in
        :func:`~modnas.hardware.measure.noise_warnings`, which only compares them). Strict FLOPs are about twice as
        many."""
        from modnas.spaces.ofa.network import count_macs

        if isinstance(keys, str):
            keys = [keys]
        return np.array([count_macs(self._arch_of(k)) / 1e6 for k in keys], dtype=np.float64)

    def export_source(self, choice: dict[str, Any]) -> str:
        from modnas.spaces.ofa.export import module_source

        return module_source({**choice, "arch_str": self.canonical_key(choice["arch_str"])})
