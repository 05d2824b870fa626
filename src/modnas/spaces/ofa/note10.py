"""Samsung Note10 latency of OFA MobileNetV3 w1.2 subnets from the OFA tutorial's look-up table.

``data/ofa_note10_latency_lut.csv.gz`` holds the mean measured latency (ms) of every layer shape a w1.2 subnet
can have at input resolutions 160, 176, 192, 208 and 224 (OFA ``han-cai/files``
``ofa/note10/<r>_lookup_table.yaml``). A network's latency is the sum over its layers: first conv, the fixed
first block, each active MBConv block, final expand conv, average pool, feature mix conv, classifier; this is
OFA's ``MBv3LatencyTable.predict_network_latency_given_spec``. The layer shapes come from
:func:`modnas.spaces.ofa.network.block_specs`, the description
:func:`~modnas.spaces.ofa.network.build_network` builds from.
"""

from __future__ import annotations

import csv
import gzip
import io
from functools import lru_cache
from importlib import resources

from modnas.errors import ModnasError
from modnas.spaces.ofa.arch import OFAArch
from modnas.spaces.ofa.network import block_specs, conv_out, widths

#: Input resolutions the table covers.
NOTE10_RESOLUTIONS: tuple[int, ...] = (160, 176, 192, 208, 224)
#: The table is for the w1.2 supernet only.
NOTE10_WIDTH_MULT = 1.2
LUT_FILE = "ofa_note10_latency_lut.csv.gz"


@lru_cache(maxsize=1)
def note10_table() -> dict[tuple[int, str], float]:
    """``(resolution, layer key) -> mean latency in ms``, read once from the shipped table."""
    raw = resources.files("modnas.spaces.ofa").joinpath("data", LUT_FILE).read_bytes()
    with io.TextIOWrapper(gzip.GzipFile(fileobj=io.BytesIO(raw)), encoding="utf-8") as fh:
        return {(int(row["resolution"]), row["key"]): float(row["mean_ms"]) for row in csv.DictReader(fh)}


def note10_layer_keys(arch: OFAArch) -> list[str]:
    """The look-up table keys of the subnet's layers, in network order (OFA tutorial's key format)."""
    r = arch.r
    if r not in NOTE10_RESOLUTIONS:
        raise ModnasError(
            f"Note10 latency: resolution {r} is not in the look-up table "
            f"(covers {', '.join(map(str, NOTE10_RESOLUTIONS))})"
        )
    w = widths(NOTE10_WIDTH_MULT)
    size = conv_out(r, 2)
    keys = [f"Conv-input:{r}x{r}x3-output:{size}x{size}x{w.first_conv}"]
    for b in block_specs(arch, NOTE10_WIDTH_MULT):
        keys.append(
            f"expanded_conv-input:{b.in_size}x{b.in_size}x{b.in_channels}"
            f"-output:{b.out_size}x{b.out_size}x{b.out_channels}-expand:{b.mid_channels}-kernel:{b.kernel}"
            f"-stride:{b.stride}-idskip:{int(b.skip)}-se:{int(b.se)}-hs:{int(b.act == 'h_swish')}"
        )
        size = b.out_size
    c, fe, fm = w.stages[-1], w.final_expand, w.feature_mix
    keys += [
        f"Conv_1-input:{size}x{size}x{c}-output:{size}x{size}x{fe}",
        f"AvgPool2D-input:{size}x{size}x{fe}-output:1x1x{fe}",
        f"Conv_2-input:1x1x{fe}-output:1x1x{fm}",
        f"Logits-input:1x1x{fm}-output:1000",
    ]
    return keys


def note10_latency(arch: OFAArch) -> float:
    """Samsung Note10 latency (ms) of ``arch`` (w1.2, batch 1): the sum of its layers' table entries."""
    table = note10_table()
    total = 0.0
    for key in note10_layer_keys(arch):
        try:
            total += table[(arch.r, key)]
        except KeyError:  # cannot happen for a valid OFAArch: only a damaged table gets here
            raise ModnasError(f"Note10 latency table has no entry {key!r} at resolution {arch.r}") from None
    return total


def note10_latency_any(arch: OFAArch) -> float:
    """Note10 latency at any resolution from 160 to 224: exact at the table's resolutions, otherwise interpolated
    between the two neighbouring table resolutions linearly in the image area (``r^2``), which is what a
    convolution's work grows with. ``benchmarks/ofa_ground_truth.py`` validates the interpolation by predicting
    176, 192 and 208 from their neighbours two steps away."""
    if arch.r in NOTE10_RESOLUTIONS:
        return note10_latency(arch)
    if not NOTE10_RESOLUTIONS[0] < arch.r < NOTE10_RESOLUTIONS[-1]:
        raise ModnasError(
            f"Note10 latency: resolution {arch.r} is outside the look-up table's {NOTE10_RESOLUTIONS[0]}-"
            f"{NOTE10_RESOLUTIONS[-1]}"
        )
    upper = next(r for r in NOTE10_RESOLUTIONS if r > arch.r)
    lower = NOTE10_RESOLUTIONS[NOTE10_RESOLUTIONS.index(upper) - 1]
    return interpolate_by_area(arch, lower, upper)


def interpolate_by_area(arch: OFAArch, lower: int, upper: int) -> float:
    """Latency at ``arch.r`` interpolated linearly in ``r^2`` between the table's values at ``lower`` and ``upper``."""
    at = {r: note10_latency(OFAArch(r, arch.d, arch.ks, arch.e)) for r in (lower, upper)}
    share = (arch.r**2 - lower**2) / (upper**2 - lower**2)
    return at[lower] + share * (at[upper] - at[lower])
