"""Tests for the bundled NB201 tables: accuracy, latency, HW-NAS-Bench, params/FLOPs and lazy loading."""

from __future__ import annotations

import numpy as np
import pytest

from modnas.errors import ModnasError
from modnas.tables.nb201 import (
    ACCURACY_COLUMNS,
    HWNASBENCH_METRICS,
    NUM_ARCHS,
    NB201Tables,
    nb201_tables,
)

ARCH0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


@pytest.fixture(scope="module")
def op_counts() -> dict[str, np.ndarray]:
    codes = nb201_tables.ops_codes
    return {"conv1x1": (codes == 2).sum(axis=1), "conv3x3": (codes == 3).sum(axis=1)}


# -- lazy loading --------------------------------------------------------------------------------------------


def test_fresh_instance_loads_nothing_before_first_query():
    tables = NB201Tables()
    for frame in ("accuracy_frame", "latency_frame", "hwnasbench_frame", "params_flops_frame"):
        assert frame not in tables.__dict__


def test_query_loads_only_the_file_it_needs():
    tables = NB201Tables()
    tables.accuracy(0)
    assert "accuracy_frame" in tables.__dict__
    assert "latency_frame" not in tables.__dict__
    assert "hwnasbench_frame" not in tables.__dict__
    assert "params_flops_frame" not in tables.__dict__


def test_frames_are_cached():
    tables = NB201Tables()
    assert tables.accuracy_frame is tables.accuracy_frame


# -- table shape and identity --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["accuracy", "latency", "hwnasbench", "params_flops"])
def test_every_table_in_index_order_with_same_strings(kind):
    frame = getattr(nb201_tables, f"{kind}_frame")
    assert len(frame) == NUM_ARCHS
    np.testing.assert_array_equal(frame.index.to_numpy(), np.arange(NUM_ARCHS))
    np.testing.assert_array_equal(frame["arch_str"].to_numpy(), nb201_tables.arch_strings)


def test_arch0_string_and_ops():
    assert nb201_tables.arch_strings[0] == ARCH0
    np.testing.assert_array_equal(nb201_tables.ops_codes[0], [4, 2, 1, 2, 1, 1])


def test_ops_codes_consistent_with_count_columns(op_counts):
    codes = nb201_tables.ops_codes
    assert codes.shape == (NUM_ARCHS, 6) and codes.dtype == np.int64
    assert codes.min() == 0 and codes.max() == 4
    frame = nb201_tables.params_flops_frame
    np.testing.assert_array_equal(frame["n_conv1x1"].to_numpy(), op_counts["conv1x1"])
    np.testing.assert_array_equal(frame["n_conv3x3"].to_numpy(), op_counts["conv3x3"])
    for column, op in (("n_none", 0), ("n_skip", 1), ("n_avgpool", 4)):
        np.testing.assert_array_equal(frame[column].to_numpy(), (codes == op).sum(axis=1))


# -- accuracy ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "epochs", "split", "column"),
    [
        ("cifar10", 200, "test", "cifar10_test_acc_200ep"),
        ("cifar100", 200, "test", "cifar100_test_acc_200ep"),
        ("imagenet16", 200, "test", "imagenet16_test_acc_200ep"),
        ("cifar10", 12, "test", "cifar10_test_acc_12ep"),
        ("cifar10", 12, "valid", "cifar10valid_valid_acc_12ep"),
        ("cifar100", 12, "test", "cifar100_test_acc_12ep"),
        ("cifar100", 12, "valid", "cifar100_valid_acc_12ep"),
        ("imagenet16", 12, "test", "imagenet16_test_acc_12ep"),
        ("imagenet16", 12, "valid", "imagenet16_valid_acc_12ep"),
    ],
)
def test_accuracy_column_by_dataset_and_epochs(dataset, epochs, split, column):
    assert column in ACCURACY_COLUMNS
    full = nb201_tables.full_column("accuracy", column)
    idx = np.array([0, 6111, 15_624])
    got = nb201_tables.accuracy(idx, dataset=dataset, epochs=epochs, split=split)
    np.testing.assert_array_equal(got, full[idx])
    assert np.isfinite(full).all()
    assert full.min() > 0 and full.max() <= 100


def test_best_cifar10_200ep():
    full = nb201_tables.full_column("accuracy", "cifar10_test_acc_200ep")
    assert int(full.argmax()) == 6111
    assert round(float(full.max()), 4) == 94.3733
    assert round(float(nb201_tables.accuracy(6111)), 4) == 94.3733


def test_12ep_is_low_fidelity():
    assert nb201_tables.full_column("accuracy", "cifar10_test_acc_12ep").max() < 90
    for dataset in ("cifar10", "cifar100", "imagenet16"):
        low = nb201_tables.full_column("accuracy", f"{dataset}_test_acc_12ep").max()
        high = nb201_tables.full_column("accuracy", f"{dataset}_test_acc_200ep").max()
        assert low < high


def test_accuracy_scalar_and_batch_shapes():
    assert nb201_tables.accuracy(0).shape == ()
    assert nb201_tables.accuracy(np.arange(10).reshape(2, 5)).shape == (2, 5)


def test_accuracy_unknown_combination():
    with pytest.raises(ModnasError, match="cifar10valid_valid_acc_200ep"):
        nb201_tables.accuracy(0, dataset="cifar10", epochs=200, split="valid")
    with pytest.raises(ModnasError, match="cifar10_test_acc_100ep"):
        nb201_tables.accuracy(0, epochs=100)  # type: ignore[arg-type]


# -- latency -------------------------------------------------------------------------------------------------


def test_latency_devices():
    devices = nb201_tables.latency_devices
    assert len(devices) == 27
    assert len(set(devices)) == 27
    assert "arch_str" not in devices
    assert not any(d.startswith("lat_") for d in devices)
    for expected in ("1080ti_1", "pixel3", "raspi4", "eyeriss", "fpga", "titan_rtx_256"):
        assert expected in devices


def test_every_latency_positive():
    for device in nb201_tables.latency_devices:
        values = nb201_tables.full_column("latency", device)
        assert np.isfinite(values).all(), device
        assert (values > 0).all(), device


def test_latency_query_matches_column():
    idx = np.array([0, 7581, 15_624])
    expected = nb201_tables.full_column("latency", "pixel3")[idx]
    np.testing.assert_array_equal(nb201_tables.latency("pixel3", idx), expected)


def test_unknown_latency_device():
    with pytest.raises(ModnasError, match="'iphone_99'"):
        nb201_tables.latency("iphone_99", 0)


# -- HW-NAS-Bench --------------------------------------------------------------------------------------------


def test_edgetpu_missing_is_nan():
    values = nb201_tables.full_column("hwnasbench", "edgetpu_latency")
    missing = nb201_tables.missing("edgetpu_latency")
    assert missing > 0
    assert missing == int(np.isnan(values).sum())
    present = values[~np.isnan(values)]
    assert not (present == -1).any()
    assert not (present == 0).any()
    assert (present > 0).all()


def test_fpga_energy_of_7581_is_nan():
    assert np.isnan(nb201_tables.energy("fpga", 7581))
    assert np.isnan(nb201_tables.hwnasbench("fpga_energy", 7581))
    assert nb201_tables.missing("fpga_energy") >= 1


@pytest.mark.parametrize("metric", HWNASBENCH_METRICS)
def test_hwnasbench_values_are_positive_or_nan(metric):
    values = nb201_tables.full_column("hwnasbench", metric)
    present = values[~np.isnan(values)]
    assert len(present) + nb201_tables.missing(metric) == NUM_ARCHS
    assert len(present) > NUM_ARCHS // 2
    assert (present > 0).all()


@pytest.mark.parametrize("metric", ["raspi4_latency", "pixel3_latency", "eyeriss_latency", "fpga_latency"])
def test_complete_hwnasbench_metrics(metric):
    assert nb201_tables.missing(metric) == 0


def test_energy_devices():
    for device in ("eyeriss", "fpga", "edgegpu"):
        expected = nb201_tables.hwnasbench(f"{device}_energy", np.arange(5))
        np.testing.assert_array_equal(nb201_tables.energy(device, np.arange(5)), expected)


# -- params and FLOPs ----------------------------------------------------------------------------------------


def test_params_flops_arch0():
    assert float(nb201_tables.params(0)) == pytest.approx(0.129306, abs=1e-9)
    assert float(nb201_tables.flops(0)) == pytest.approx(15.64737, abs=1e-9)
    assert float(nb201_tables.params(0)) == pytest.approx(0.073306 + 0.028 * 2, abs=1e-9)


def test_params_closed_form_all_archs(op_counts):
    params = nb201_tables.full_column("params_flops", "params_mb_cifar10")
    expected = 0.073306 + 0.028 * op_counts["conv1x1"] + 0.24304 * op_counts["conv3x3"]
    np.testing.assert_allclose(params, expected, rtol=0, atol=1e-9)


def test_flops_closed_form_all_archs(op_counts):
    flops = nb201_tables.full_column("params_flops", "flops_m_cifar10")
    # 7.78305 M skeleton; a 1x1 conv edge costs 16*16*32*32 MACs per cell x 15 cells, a 3x3 edge 9x that
    expected = 7.78305 + 3.93216 * op_counts["conv1x1"] + 35.38944 * op_counts["conv3x3"]
    np.testing.assert_allclose(flops, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("dataset", "extra_classes"), [("cifar100", 90), ("imagenet16", 110)])
def test_params_other_datasets_only_differ_by_classifier(dataset, extra_classes):
    base = nb201_tables.full_column("params_flops", "params_mb_cifar10")
    other = nb201_tables.full_column("params_flops", f"params_mb_{dataset}")
    np.testing.assert_allclose(other - base, extra_classes * (64 + 1) / 1e6, rtol=0, atol=1e-9)


# -- query API and bad inputs --------------------------------------------------------------------------------


def test_full_column_is_read_only_and_column_returns_copy():
    full = nb201_tables.full_column("params_flops", "params_mb_cifar10")
    with pytest.raises(ValueError):
        full[0] = 0.0
    got = nb201_tables.params(np.array([0, 1]))
    got[:] = -5.0
    assert float(nb201_tables.params(0)) == pytest.approx(0.129306)


@pytest.mark.parametrize("bad", [-1, NUM_ARCHS])
def test_index_out_of_range(bad):
    with pytest.raises(ModnasError, match=f"architecture index {bad} is out of range"):
        nb201_tables.params(bad)
    with pytest.raises(ModnasError, match=f"architecture index {bad}"):
        nb201_tables.accuracy(np.array([0, bad, 1]))


def test_index_must_be_integer():
    with pytest.raises(ModnasError, match="float64"):
        nb201_tables.params(1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "named"),
    [
        pytest.param(lambda: nb201_tables.column("accuracy", "top5", 0), "'top5'", id="accuracy-column"),
        pytest.param(lambda: nb201_tables.column("accuracy", "arch_str", 0), "'arch_str'", id="arch-str"),
        pytest.param(lambda: nb201_tables.hwnasbench("tpu_energy", 0), "'tpu_energy'", id="hw-metric"),
        pytest.param(lambda: nb201_tables.energy("pixel3", 0), "'pixel3_energy'", id="energy-device"),
        pytest.param(lambda: nb201_tables.missing("bogus"), "'bogus'", id="missing"),
        pytest.param(lambda: nb201_tables.params(0, dataset="mnist"), "'params_mb_mnist'", id="params"),
        pytest.param(lambda: nb201_tables.flops(0, dataset="mnist"), "'flops_m_mnist'", id="flops"),
        pytest.param(lambda: nb201_tables.full_column("latency", "nope"), "'nope'", id="full-column"),
    ],
)
def test_unknown_column(call, named):
    with pytest.raises(ModnasError, match=named):
        call()


def test_unknown_table_kind():
    # BUG: column()/full_column() look the frame up with getattr(self, f"{kind}_frame"), so an unknown kind
    # escapes as AttributeError ("'NB201Tables' object has no attribute 'bogus_frame'"), not a ModnasError.
    with pytest.raises(ModnasError, match="'bogus'"):
        nb201_tables.column("bogus", "x", 0)
