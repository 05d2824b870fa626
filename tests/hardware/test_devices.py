"""The device registry: built-in devices, HELP embeddings (spec section 3) and custom device registration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modnas.errors import ModnasError, UnknownDeviceError
from modnas.spaces.nb201 import index_to_string
from modnas.spaces.nb201.devices import (
    EMBEDDING_DIM,
    PROTOCOL_DEVICES,
    REFERENCE_ARCH_INDICES,
    NB201Devices,
    get_device,
    registry,
)
from modnas.tables.nb201 import nb201_tables

SPEC_TRAIN = {
    "1080ti_1", "1080ti_32", "1080ti_256", "silver_4114", "silver_4210r", "samsung_a50", "pixel3",
    "essential_ph_1", "samsung_s7", "titanx_1", "titanx_32", "titanx_256", "gold_6240",
}  # fmt: skip
SPEC_TEST = {"titan_rtx_256", "gold_6226", "fpga", "pixel2", "raspi4", "eyeriss"}
SPEC_OTHER = {
    "2080ti_1", "2080ti_32", "2080ti_256", "titanxp_1", "titanxp_32", "titanxp_256",
    "titan_rtx_1", "titan_rtx_32",
}  # fmt: skip

#: Spec section 3, "Computed embeddings, to use as test vectors".
SPEC_EMBEDDINGS = {
    "1080ti_1": [0.161, 0.184, 0.000, 0.224, 0.725, 0.498, 0.378, 0.670, 0.211, 1.000],
    "samsung_a50": [0.045, 0.164, 0.000, 0.149, 0.254, 0.209, 0.194, 0.433, 0.060, 1.000],
    "titanx_256": [0.100, 0.103, 0.000, 0.188, 0.416, 0.276, 0.477, 0.677, 0.296, 1.000],
    "fpga": [0.072, 0.119, 0.000, 0.176, 0.335, 0.263, 0.306, 0.601, 0.130, 1.000],
    "eyeriss": [0.033, 0.000, 0.000, 0.200, 0.100, 0.067, 0.433, 0.633, 0.233, 1.000],
    "raspi4": [0.055, 0.174, 0.000, 0.180, 0.239, 0.237, 0.225, 0.565, 0.080, 1.000],
}

#: Spec section 3: the 10 HELP reference architectures, in order.
SPEC_REFERENCE_ARCHS = (
    "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
    "|skip_connect~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|skip_connect~1|none~2|",
    "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    "|none~0|+|nor_conv_1x1~0|none~1|+|nor_conv_3x3~0|nor_conv_1x1~1|nor_conv_1x1~2|",
    "|skip_connect~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|",
    "|skip_connect~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
)

LATENCIES = [3.0, 5.0, 1.0, 4.0, 9.0, 7.0, 6.0, 11.0, 2.0, 21.0]
EXPECTED_EMBEDDING = [(x - 1.0) / 20.0 for x in LATENCIES]


def reference_mapping(latencies=LATENCIES) -> dict[str, float]:
    return dict(zip(SPEC_REFERENCE_ARCHS, latencies))


# -- built-in devices ----------------------------------------------------------------------------------------


def test_27_builtin_devices():
    names = registry.names()
    assert len(names) == len(set(names)) == 27
    assert set(names) == SPEC_TRAIN | SPEC_TEST | SPEC_OTHER
    assert set(names) == set(nb201_tables.latency_devices)


def test_protocol_splits_match_spec():
    train, test = registry.names("train"), registry.names("test")
    assert len(train) == 13 and set(train) == SPEC_TRAIN
    assert len(test) == 6 and set(test) == SPEC_TEST
    assert not set(train) & set(test)
    assert registry.names("protocol") == PROTOCOL_DEVICES == train + test
    assert set(registry.names("other")) == SPEC_OTHER


@pytest.mark.parametrize("name", sorted(SPEC_TRAIN | SPEC_TEST | SPEC_OTHER))
def test_device_split_attribute(name):
    device = get_device(name)
    expected = "train" if name in SPEC_TRAIN else "test" if name in SPEC_TEST else "other"
    assert device.name == name and device.split == expected
    assert device.has_table and device.unit == "ms"


def test_reference_archs_match_spec():
    assert REFERENCE_ARCH_INDICES == (11982, 431, 55, 9, 14451, 8636, 9881, 13479, 6196, 1462)
    assert EMBEDDING_DIM == 10
    assert tuple(index_to_string(i) for i in REFERENCE_ARCH_INDICES) == SPEC_REFERENCE_ARCHS


@pytest.mark.parametrize("name", sorted(SPEC_EMBEDDINGS))
def test_embedding_matches_spec_table(name):
    embedding = get_device(name).embedding.astype(np.float64)
    np.testing.assert_array_equal(np.round(embedding, 3), SPEC_EMBEDDINGS[name])


@pytest.mark.parametrize("name", sorted(SPEC_TRAIN | SPEC_TEST | SPEC_OTHER))
def test_every_embedding_spans_0_to_1(name):
    emb = get_device(name).embedding
    assert emb.shape == (10,) and emb.dtype == np.float32
    assert emb.min() == 0.0 and emb.max() == 1.0


def test_reference_latencies_come_from_the_tables():
    device = get_device("1080ti_1")
    np.testing.assert_allclose(
        device.reference_latencies, nb201_tables.latency("1080ti_1", np.asarray(REFERENCE_ARCH_INDICES))
    )


def test_gpu_batch_sizes_equal_name_suffix():
    gpus = [get_device(n) for n in registry.names() if get_device(n).kind == "gpu"]
    assert len(gpus) == 15
    for device in gpus:
        assert device.batch_size == int(device.name.rsplit("_", 1)[1]), device.name


def test_energy_metric_only_on_fpga_and_eyeriss():
    with_energy = {n for n in registry.names() if get_device(n).energy_metric is not None}
    assert with_energy == {"fpga", "eyeriss"}
    assert get_device("fpga").energy_metric == "fpga_energy"


# -- unknown devices -----------------------------------------------------------------------------------------


def test_unknown_device_suggests_close_match():
    with pytest.raises(UnknownDeviceError, match="did you mean fpga") as info:
        registry.get("fpgaa")
    assert isinstance(info.value, ModnasError) and isinstance(info.value, KeyError)
    assert str(info.value).startswith("unknown device 'fpgaa'")


def test_unknown_device_without_close_match():
    with pytest.raises(UnknownDeviceError, match="modnas devices"):
        get_device("zzzzzzzzzzzz")


# -- registering custom devices ------------------------------------------------------------------------------


def test_register_from_ten_numbers():
    reg = NB201Devices()
    device = reg.register("my_board", LATENCIES, batch_size=4, description="dev kit")
    assert device.split == "custom" and device.source == "user" and not device.has_table
    assert device.reference_latencies == tuple(LATENCIES)
    np.testing.assert_allclose(device.embedding, EXPECTED_EMBEDDING, rtol=1e-6)
    assert reg.get("my_board") is device
    assert reg.names("custom") == ("my_board",)
    assert "my_board" in reg.names() and len(reg.names()) == 28
    assert "my_board" not in registry.names(), "the global registry is untouched"


def test_register_from_numpy_array():
    device = NB201Devices().register("np-board.v2", np.asarray(LATENCIES))
    np.testing.assert_allclose(device.embedding, EXPECTED_EMBEDDING, rtol=1e-6)


def test_register_from_mapping_with_extras():
    extras = {index_to_string(0): 2.5, index_to_string(15624): 30.0}
    # the order of the mapping does not matter
    mapping = {**extras, **dict(reversed(reference_mapping().items()))}
    device = NB201Devices().register("mapped", mapping)
    assert device.reference_latencies == tuple(LATENCIES)
    assert dict(device.extra_latencies) == extras
    lat = np.asarray(LATENCIES)
    np.testing.assert_allclose(device.embedding, (lat - lat.min()) / (lat.max() - lat.min()), rtol=1e-6)


def test_register_merges_extra_latencies_argument():
    more = {index_to_string(1): 3.5}
    extras = {index_to_string(0): 2.5}
    device = NB201Devices().register("mapped", {**reference_mapping(), **extras}, extra_latencies=more)
    assert dict(device.extra_latencies) == {**more, **extras}


def test_mapping_without_extras_has_empty_extra_latencies():
    assert dict(NB201Devices().register("mapped", reference_mapping()).extra_latencies) == {}


@pytest.mark.parametrize(
    ("latencies", "message"),
    [
        (LATENCIES[:9], "exactly 10"),
        ([*LATENCIES, 1.0], "exactly 10"),
        ([math.nan, *LATENCIES[1:]], "NaN"),
        ([*LATENCIES[:4], math.inf, *LATENCIES[5:]], "infinite"),
        ([*LATENCIES[:9], 0.0], "> 0"),
        ([-1.0, *LATENCIES[1:]], "> 0"),
        ([5.0] * 10, "all equal"),
        (["fast", *LATENCIES[1:]], "numbers"),
        ([LATENCIES, LATENCIES], "flat list"),
    ],
)
def test_register_rejects_bad_latencies(latencies, message):
    reg = NB201Devices()
    with pytest.raises(ModnasError, match=message):
        reg.register("bad", latencies)
    assert "bad" not in reg.names()


def test_register_error_names_the_bad_value():
    with pytest.raises(ModnasError, match=r"value 3 is NaN"):
        NB201Devices().register("bad", [1.0, 2.0, math.nan, *LATENCIES[3:]])


def test_register_rejects_a_mapping_of_fewer_than_10_architectures():
    """Without all 10 reference architectures the embedding is fitted, which needs 10 measurements."""
    mapping = reference_mapping()
    del mapping[SPEC_REFERENCE_ARCHS[4]]
    with pytest.raises(ModnasError, match="9 measured architectures; a device needs at least 10"):
        NB201Devices().register("partial", mapping)


@pytest.mark.parametrize(("value", "message"), [(math.nan, "NaN"), (-2.0, "> 0"), (0.0, "> 0")])
def test_register_rejects_bad_values_in_mapping(value, message):
    with pytest.raises(ModnasError, match=message):
        NB201Devices().register("bad", reference_mapping([value, *LATENCIES[1:]]))
    with pytest.raises(ModnasError, match=message):
        NB201Devices().register("bad", {**reference_mapping(), index_to_string(0): value})


def test_register_rejects_malformed_extra_latency_keys():
    """Keys of ``extra_latencies`` must be architectures, as the extras in a mapping are."""
    reg = NB201Devices()
    with pytest.raises(ModnasError):
        reg.register("bad", LATENCIES, extra_latencies={"not an architecture": 1.0})
    assert "bad" not in reg.names()


def test_register_rejects_malformed_arch_in_mapping():
    with pytest.raises(ModnasError):
        NB201Devices().register("bad", {**reference_mapping(), "|conv~0|+|x~0|": 1.0})


def test_duplicate_name_needs_force():
    reg = NB201Devices()
    first = reg.register("board", LATENCIES)
    with pytest.raises(ModnasError, match="already registered"):
        reg.register("board", LATENCIES[::-1])
    assert reg.get("board") is first


def test_force_replaces_custom_device():
    reg = NB201Devices()
    reg.register("board", LATENCIES)
    second = reg.register("board", LATENCIES[::-1], force=True)
    assert reg.get("board") is second
    assert second.reference_latencies == tuple(LATENCIES[::-1])
    assert reg.names("custom") == ("board",)


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("name", ["fpga", "1080ti_1", "2080ti_32"])
def test_builtin_names_cannot_be_replaced(name, force):
    reg = NB201Devices()
    with pytest.raises(ModnasError, match="built-in"):
        reg.register(name, LATENCIES, force=force)
    assert reg.get(name).split != "custom"


@pytest.mark.parametrize("name", ["", "my board", "a/b", "dev!", "board\n", "fpga ", "../x"])
def test_invalid_names(name):
    reg = NB201Devices()
    with pytest.raises(ModnasError, match="invalid device name"):
        reg.register(name, LATENCIES)
    assert len(reg.names()) == 27


def test_unregister():
    reg = NB201Devices()
    reg.register("board", LATENCIES)
    reg.unregister("board")
    with pytest.raises(UnknownDeviceError):
        reg.get("board")
    with pytest.raises(UnknownDeviceError):
        reg.unregister("board")
    with pytest.raises(UnknownDeviceError):
        reg.unregister("fpga")
    assert reg.get("fpga").split == "test"


def test_lookup_suggests_custom_devices_too():
    reg = NB201Devices()
    reg.register("jetson_nano", LATENCIES)
    with pytest.raises(UnknownDeviceError, match="jetson_nano"):
        reg.get("jetson_nan")


def test_known_latencies_of_a_custom_device_are_its_measurements():
    extras = {index_to_string(0): 2.5, index_to_string(15624): 30.0}
    reg = NB201Devices()
    device = reg.register("mapped", {**reference_mapping(), **extras})
    known = reg.known_latencies(device, [index_to_string(i) for i in (0, 15624, REFERENCE_ARCH_INDICES[2], 1)])
    assert known[:3].tolist() == [2.5, 30.0, LATENCIES[2]]
    assert math.isnan(known[3])


def test_known_latencies_read_the_table_of_training_devices_only():
    idx = np.array([0, 1, 2, REFERENCE_ARCH_INDICES[0]])
    keys = [index_to_string(int(i)) for i in idx]
    reg = NB201Devices()
    train = reg.known_latencies(get_device("pixel3"), keys)
    np.testing.assert_allclose(train, nb201_tables.latency("pixel3", idx))
    test = reg.known_latencies(get_device("pixel2"), keys)  # zero-shot: only its profile counts as measured
    assert np.isnan(test[:3]).all() and test[3] == nb201_tables.latency("pixel2", REFERENCE_ARCH_INDICES[0])
    other = reg.known_latencies(get_device("2080ti_1"), keys)
    assert np.isnan(other[:3]).all()
