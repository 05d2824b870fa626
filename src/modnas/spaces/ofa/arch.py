"""One OFA MobileNetV3 architecture (``ofa_mbv3_d234_e346_k357_w1.2``): resolution, depth per stage, and kernel
and expand ratio per block slot.

5 stages x 4 block slots = 20 slots; slot ``i`` belongs to stage ``i // 4``, and only the first ``d[s]`` slots of
stage ``s`` are active. Values stored for inactive slots never matter: :meth:`OFAArch.canonical` sets them to the
smallest option, and the string key leaves them out.

The key lists the resolution, then per stage the (kernel, expand) digit pairs of its active blocks::

    r192_5333_5434_767334_54547433_363656

is resolution 192, depths (2, 2, 3, 4, 3), stage 1 blocks (5, 3) and (3, 3), and so on. HELP and MODNAS write an
architecture as a dict ``{"ks": [20], "e": [20], "d": [5], "r": r}`` (lists of ints; ``r`` an int or a one-element
list); :meth:`OFAArch.from_dict` reads it and :meth:`OFAArch.to_dict` writes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modnas.errors import ModnasError

NUM_STAGES = 4 + 1
SLOTS_PER_STAGE = 4
NUM_SLOTS = NUM_STAGES * SLOTS_PER_STAGE
#: Input resolutions of HELP and MODNAS: 128 to 224 in steps of 4.
RESOLUTIONS: tuple[int, ...] = tuple(range(128, 225, 4))
DEPTHS: tuple[int, ...] = (2, 3, 4)
KERNELS: tuple[int, ...] = (3, 5, 7)
EXPANDS: tuple[int, ...] = (3, 4, 6)


def _ints(value: Any, what: str, length: int) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ModnasError(f"OFA architecture: {what} must be a list of {length} integers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                raise ModnasError(f"OFA architecture: {what} must hold integers, got {v!r}")
        out.append(int(v))
    if len(out) != length:
        raise ModnasError(f"OFA architecture: {what} needs {length} values, got {len(out)}")
    return tuple(out)


@dataclass(frozen=True)
class OFAArch:
    """Resolution ``r``, depths ``d`` (5), kernels ``ks`` and expand ratios ``e`` (20 slots each)."""

    r: int
    d: tuple[int, ...]
    ks: tuple[int, ...]
    e: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.r not in RESOLUTIONS:
            raise ModnasError(f"OFA architecture: resolution {self.r} is not one of 128, 132, ..., 224")
        for what, values, allowed, n in (("d", self.d, DEPTHS, NUM_STAGES), ("ks", self.ks, KERNELS, NUM_SLOTS),
                                         ("e", self.e, EXPANDS, NUM_SLOTS)):  # fmt: skip
            if len(values) != n:
                raise ModnasError(f"OFA architecture: {what} needs {n} values, got {len(values)}")
            for i, v in enumerate(values):
                if v not in allowed and (what == "d" or self.active(i)):
                    raise ModnasError(
                        f"OFA architecture: {what}[{i}] = {v} is not one of {', '.join(map(str, allowed))}"
                    )

    def active(self, slot: int) -> bool:
        """Whether block slot ``slot`` (0..19) is used: its stage is deep enough."""
        return slot % SLOTS_PER_STAGE < self.d[slot // SLOTS_PER_STAGE]

    def blocks(self) -> list[tuple[int, int, int, int]]:
        """The active blocks as ``(stage, slot, kernel, expand)``, in network order."""
        return [(i // SLOTS_PER_STAGE, i, self.ks[i], self.e[i]) for i in range(NUM_SLOTS) if self.active(i)]

    def larger_neighbours(self) -> list[OFAArch]:
        """Every architecture one option larger in one active decision (resolution, a depth, a kernel or an
        expand ratio): what a latency model must never predict to be faster."""
        out = []
        if self.r != RESOLUTIONS[-1]:
            out.append(OFAArch(RESOLUTIONS[RESOLUTIONS.index(self.r) + 1], self.d, self.ks, self.e))
        for s, d in enumerate(self.d):
            if d != DEPTHS[-1]:
                out.append(OFAArch(self.r, self.d[:s] + (d + 1,) + self.d[s + 1 :], self.ks, self.e))
        for _, slot, k, e in self.blocks():
            if k != KERNELS[-1]:
                ks = list(self.ks)
                ks[slot] = KERNELS[KERNELS.index(k) + 1]
                out.append(OFAArch(self.r, self.d, tuple(ks), self.e))
            if e != EXPANDS[-1]:
                es = list(self.e)
                es[slot] = EXPANDS[EXPANDS.index(e) + 1]
                out.append(OFAArch(self.r, self.d, self.ks, tuple(es)))
        return out

    def canonical(self) -> OFAArch:
        """The same architecture with inactive slots set to the smallest kernel and expand ratio."""
        ks = tuple(k if self.active(i) else KERNELS[0] for i, k in enumerate(self.ks))
        e = tuple(x if self.active(i) else EXPANDS[0] for i, x in enumerate(self.e))
        return OFAArch(self.r, self.d, ks, e)

    @property
    def key(self) -> str:
        """The canonical string key (see the module docstring)."""
        stages = []
        for s in range(NUM_STAGES):
            slots = range(s * SLOTS_PER_STAGE, s * SLOTS_PER_STAGE + self.d[s])
            stages.append("".join(f"{self.ks[i]}{self.e[i]}" for i in slots))
        return f"r{self.r}_" + "_".join(stages)

    @classmethod
    def from_key(cls, key: str) -> OFAArch:
        """Parse a key; a malformed one is a one-line error saying what is wrong."""
        text = str(key).strip()
        parts = text.split("_")
        if len(parts) != NUM_STAGES + 1 or not parts[0].startswith("r") or not parts[0][1:].isdigit():
            raise ModnasError(
                f"malformed OFA architecture {text!r}: expected r<resolution> and 5 stages joined by '_', "
                "e.g. r192_5333_5434_767334_54547433_363656"
            )
        d, ks, e = [], [KERNELS[0]] * NUM_SLOTS, [EXPANDS[0]] * NUM_SLOTS
        for s, stage in enumerate(parts[1:]):
            if not stage.isdigit() or len(stage) % 2 or len(stage) // 2 not in DEPTHS:
                raise ModnasError(
                    f"malformed OFA architecture {text!r}: stage {s + 1} must list 2 to 4 blocks as kernel-expand "
                    f"digit pairs, got {stage!r}"
                )
            d.append(len(stage) // 2)
            for b in range(len(stage) // 2):
                ks[s * SLOTS_PER_STAGE + b] = int(stage[2 * b])
                e[s * SLOTS_PER_STAGE + b] = int(stage[2 * b + 1])
        return cls(int(parts[0][1:]), tuple(d), tuple(ks), tuple(e))

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> OFAArch:
        """From HELP/MODNAS's ``{"ks", "e", "d", "r"}`` dict (inactive slots' leftovers are ignored)."""
        if not isinstance(spec, Mapping):
            raise ModnasError(f"OFA architecture must be a mapping with ks, e, d and r, got {type(spec).__name__}")
        missing = [k for k in ("ks", "e", "d", "r") if k not in spec]
        if missing:
            raise ModnasError(f"OFA architecture: missing {', '.join(missing)} (needs ks, e, d and r)")
        r = spec["r"]
        if isinstance(r, Sequence) and not isinstance(r, (str, bytes)) and len(r) == 1:
            r = r[0]
        (r,) = _ints([r], "r", 1)
        d = _ints(spec["d"], "d", NUM_STAGES)
        ks, e = _ints(spec["ks"], "ks", NUM_SLOTS), _ints(spec["e"], "e", NUM_SLOTS)
        # leftovers in inactive slots may be anything: replace them before validation
        active = [i % SLOTS_PER_STAGE < d[i // SLOTS_PER_STAGE] for i in range(NUM_SLOTS)]
        ks = tuple(k if on else KERNELS[0] for k, on in zip(ks, active))
        e = tuple(x if on else EXPANDS[0] for x, on in zip(e, active))
        return cls(r, d, ks, e)

    def to_dict(self) -> dict[str, Any]:
        """HELP/MODNAS's dict (inactive slots hold the smallest options)."""
        c = self.canonical()
        return {"ks": list(c.ks), "e": list(c.e), "d": list(c.d), "r": c.r}
