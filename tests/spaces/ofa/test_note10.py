"""Tests for the Samsung Note10 latency of OFA subnets (OFA tutorial look-up table).

Outside references: the OFA tutorial notebook's printed Note10 architecture (24.73 ms at r=192), the table's
own rows, and the Note10 values of 4 of the 7 HELP-searched architectures (``ofa_help_searched_archs.csv`` of
the shared OFA data, computed there by a separate implementation of the tutorial's summation). The table's
per-layer fields (input/output size and channels, hidden width, kernel, stride, skip, SE, h-swish) are also
checked against the modules :func:`build_network` builds, which checks ``network.py`` against a second outside
source.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from modnas.errors import ModnasError
from modnas.spaces.ofa.arch import EXPANDS, KERNELS, OFAArch
from modnas.spaces.ofa.network import ResidualBlock, build_network
from modnas.spaces.ofa.note10 import NOTE10_RESOLUTIONS, note10_latency, note10_layer_keys, note10_table

TUTORIAL_BLOCKS = "5333_5434_767334_54547433_363656"  # d = [2, 2, 3, 4, 3]
TUTORIAL_MS = {160: 18.35, 176: 21.89, 192: 24.73, 208: 29.65, 224: 33.11}


@pytest.fixture(scope="module")
def lut() -> pd.DataFrame:
    path = resources.files("modnas.spaces.ofa").joinpath("data", "ofa_note10_latency_lut.csv.gz")
    with resources.as_file(path) as p:
        return pd.read_csv(p)


def _row_ms(lut: pd.DataFrame, resolution: int, key: str) -> float:
    rows = lut[(lut["resolution"] == resolution) & (lut["key"] == key)]
    assert len(rows) == 1, key
    return float(rows["mean_ms"].iloc[0])


def test_tutorial_architecture():
    for r, ms in TUTORIAL_MS.items():
        assert round(note10_latency(OFAArch.from_key(f"r{r}_{TUTORIAL_BLOCKS}")), 2) == ms


def test_hand_computed_small_arch_at_160(lut):
    # depth 2 everywhere, kernel 3 and expand 3 in every block; mid = round(in_c * 3)
    keys = [
        "Conv-input:160x160x3-output:80x80x24",
        "expanded_conv-input:80x80x24-output:80x80x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0",
        "expanded_conv-input:80x80x24-output:40x40x32-expand:72-kernel:3-stride:2-idskip:0-se:0-hs:0",
        "expanded_conv-input:40x40x32-output:40x40x32-expand:96-kernel:3-stride:1-idskip:1-se:0-hs:0",
        "expanded_conv-input:40x40x32-output:20x20x48-expand:96-kernel:3-stride:2-idskip:0-se:1-hs:0",
        "expanded_conv-input:20x20x48-output:20x20x48-expand:144-kernel:3-stride:1-idskip:1-se:1-hs:0",
        "expanded_conv-input:20x20x48-output:10x10x96-expand:144-kernel:3-stride:2-idskip:0-se:0-hs:1",
        "expanded_conv-input:10x10x96-output:10x10x96-expand:288-kernel:3-stride:1-idskip:1-se:0-hs:1",
        "expanded_conv-input:10x10x96-output:10x10x136-expand:288-kernel:3-stride:1-idskip:0-se:1-hs:1",
        "expanded_conv-input:10x10x136-output:10x10x136-expand:408-kernel:3-stride:1-idskip:1-se:1-hs:1",
        "expanded_conv-input:10x10x136-output:5x5x192-expand:408-kernel:3-stride:2-idskip:0-se:1-hs:1",
        "expanded_conv-input:5x5x192-output:5x5x192-expand:576-kernel:3-stride:1-idskip:1-se:1-hs:1",
        "Conv_1-input:5x5x192-output:5x5x1152",
        "AvgPool2D-input:5x5x1152-output:1x1x1152",
        "Conv_2-input:1x1x1152-output:1x1x1536",
        "Logits-input:1x1x1536-output:1000",
    ]
    expected = sum(_row_ms(lut, 160, k) for k in keys)
    arch = OFAArch(160, (2,) * 5, (3,) * 20, (3,) * 20)
    assert note10_layer_keys(arch) == keys
    assert note10_latency(arch) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "key, ms",
    [  # HELP-searched architectures (shared data file 7, column note10_lat_lut_ms)
        ("r224_3333_3634_7674_367454_363656", 30.58693653438116),
        ("r176_5333_363634_747453_565434_363634", 21.57361525613982),
        ("r192_5333_343434_54345333_765434_36363433", 24.611699574128437),
        ("r208_5333_343434_54343336_74543454_363636", 31.335029587549233),
    ],
)
def test_searched_architectures(key, ms):
    assert note10_latency(OFAArch.from_key(key)) == pytest.approx(ms, abs=1e-9)


@pytest.mark.parametrize("r", [128, 132, 172, 220])
def test_other_resolutions_are_refused_in_one_line(r):
    with pytest.raises(ModnasError, match="160, 176, 192, 208, 224") as err:
        note10_latency(OFAArch.from_key(f"r{r}_{TUTORIAL_BLOCKS}"))
    assert "\n" not in str(err.value) and str(r) in str(err.value)


def test_table_is_loaded_once_and_complete(lut):
    assert note10_table() is note10_table()
    assert len(note10_table()) == len(lut) == 5 * 96
    assert sorted(lut["resolution"].unique()) == list(NOTE10_RESOLUTIONS)


def _uniform_archs(r: int) -> list[OFAArch]:
    return [OFAArch(r, (4,) * 5, (k,) * 20, (e,) * 20) for k in KERNELS for e in EXPANDS]


@pytest.mark.parametrize("r", NOTE10_RESOLUTIONS)
def test_every_table_row_is_a_layer_of_some_subnet(lut, r):
    # depth 4 with one (kernel, expand) everywhere covers each stage's first and later blocks: 9 archs cover
    # all 5 stages x 2 positions x 3 kernels x 3 expands, plus the fixed layers
    used = {k for arch in _uniform_archs(r) for k in note10_layer_keys(arch)}
    assert used == set(lut.loc[lut["resolution"] == r, "key"])


def _module_rows(net: nn.Module, r: int) -> list[dict]:
    """The table fields of each MBConv block, read off the modules and a forward pass's shapes."""
    rows: list[dict] = []

    def hook(block: ResidualBlock, inputs, out) -> None:
        x = inputs[0]
        dw = block.conv.depth_conv
        rows.append(
            {
                "in_h": x.shape[2], "in_w": x.shape[3], "in_c": x.shape[1],
                "out_h": out.shape[2], "out_w": out.shape[3], "out_c": out.shape[1],
                "mid_c": dw.conv.in_channels, "kernel": dw.conv.kernel_size[0], "stride": dw.conv.stride[0],
                "idskip": int(block.shortcut is not None), "se": int(hasattr(dw, "se")),
                "hswish": int(isinstance(dw.act, nn.Hardswish)),
            }
        )  # fmt: skip

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, ResidualBlock)]
    with torch.no_grad():
        net.eval()(torch.zeros(1, 3, r, r))
    for h in handles:
        h.remove()
    return rows


@pytest.fixture(scope="module")
def networks() -> list[tuple[OFAArch, nn.Module]]:
    """The 9 uniform depth-4 subnets (every table row) and 2 random ones; the modules do not depend on r."""
    rng = np.random.default_rng(20_240_601)
    random = [
        OFAArch(
            160,
            tuple(int(v) for v in rng.choice([2, 3, 4], 5)),
            tuple(int(v) for v in rng.choice(KERNELS, 20)),
            tuple(int(v) for v in rng.choice(EXPANDS, 20)),
        )
        for _ in range(2)
    ]
    torch.manual_seed(0)
    return [(arch, build_network(arch)) for arch in _uniform_archs(160) + random]


@pytest.mark.parametrize("r", NOTE10_RESOLUTIONS)
def test_table_fields_agree_with_the_built_modules(lut, networks, r):
    table = lut[(lut["resolution"] == r) & (lut["layer_type"] == "expanded_conv")]
    fields = ["in_h", "in_w", "in_c", "out_h", "out_w", "out_c"]
    fields += ["mid_c", "kernel", "stride", "idskip", "se", "hswish"]
    for arch160, net in networks:
        arch = OFAArch(r, arch160.d, arch160.ks, arch160.e)
        block_keys = [k for k in note10_layer_keys(arch) if k.startswith("expanded_conv")]
        module_rows = _module_rows(net, r)
        assert len(module_rows) == len(block_keys) == 1 + sum(arch.d)
        for got, key in zip(module_rows, block_keys):
            match = table[np.logical_and.reduce([table[f].to_numpy() == got[f] for f in fields])]
            assert len(match) == 1, (arch.key, got)
            assert match["key"].iloc[0] == key  # the key note10.py builds names that very row
        # the fixed layers: first conv, final expand, feature mix and classifier shapes
        fixed = lut[(lut["resolution"] == r) & (lut["layer_type"] != "expanded_conv")].set_index("layer_type")
        assert fixed.loc["Conv", "out_c"] == net.first_conv.conv.out_channels
        assert fixed.loc["Conv", "out_h"] == module_rows[0]["in_h"]
        assert fixed.loc["Conv_1", "in_c"] == net.final_expand_layer.conv.in_channels
        assert fixed.loc["Conv_1", "out_c"] == net.final_expand_layer.conv.out_channels
        assert fixed.loc["Conv_1", "in_h"] == module_rows[-1]["out_h"]
        assert fixed.loc["Conv_2", "in_c"] == net.feature_mix_layer.conv.in_channels
        assert fixed.loc["Conv_2", "out_c"] == net.feature_mix_layer.conv.out_channels
        assert fixed.loc["Logits", "in_c"] == net.classifier.linear.in_features
        assert fixed.loc["Logits", "out_c"] == net.classifier.linear.out_features


def test_table_keys_agree_with_their_fields(lut):
    # the key column (the original YAML key) and the parsed fields describe the same layer
    blocks = lut[lut["layer_type"] == "expanded_conv"]
    for row in blocks.itertuples():
        key = (
            f"expanded_conv-input:{row.in_h}x{row.in_w}x{row.in_c}-output:{int(row.out_h)}x{int(row.out_w)}x"
            f"{row.out_c}-expand:{int(row.mid_c)}-kernel:{int(row.kernel)}-stride:{int(row.stride)}"
            f"-idskip:{int(row.idskip)}-se:{int(row.se)}-hs:{int(row.hswish)}"
        )
        assert key == row.key


def test_between_table_resolutions_the_latency_is_interpolated_by_area():
    from modnas.spaces.ofa.note10 import note10_latency_any

    arch = OFAArch.from_key("r192_5333_5434_767334_54547433_363656")
    at = {r: note10_latency_any(OFAArch(r, arch.d, arch.ks, arch.e)) for r in range(160, 225, 4)}
    assert at[192] == note10_latency(arch)  # exact at the table's resolutions
    values = [at[r] for r in sorted(at)]
    assert all(a < b for a, b in zip(values, values[1:]))  # larger images are slower
    expected = at[176] + (184**2 - 176**2) / (192**2 - 176**2) * (at[192] - at[176])
    assert at[184] == pytest.approx(expected)
    with pytest.raises(ModnasError, match="outside the look-up table's 160-224"):
        note10_latency_any(OFAArch(156, arch.d, arch.ks, arch.e))
