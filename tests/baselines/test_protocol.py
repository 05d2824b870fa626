"""Benchmark protocols: defaults, device groups, budgets, and one-line errors for bad input."""

from __future__ import annotations

import pytest

from modnas.baselines.protocol import MODNAS, load_protocol, make_protocol, quick_protocol
from modnas.errors import ModnasError
from modnas.spaces.nb201.devices import PROTOCOL_DEVICES, TEST_DEVICES


def test_defaults_cover_every_method_and_device():
    p = make_protocol()
    assert p.methods[0] == MODNAS and {"random", "local", "morea", "nsga2", "motpe", "gp"} <= set(p.methods)
    assert p.devices == list(PROTOCOL_DEVICES)
    assert p.budget == 200 and p.same_total_budget == 11  # round(200 / 19)
    assert p.baselines == [m for m in p.methods if m != MODNAS]
    budgets = p.curve_budgets()
    assert budgets[0] == 1 and budgets[-1] == 200 and 11 in budgets and budgets == sorted(set(budgets))


def test_device_groups_order_and_small_budget():
    p = make_protocol({"devices": "test", "small_budget": 7, "seeds": [2, 2, 1]})
    assert p.devices == list(TEST_DEVICES) and p.same_total_budget == 7 and p.seeds == [2, 1]
    p = make_protocol({"devices": ["pixel2", "1080ti_1"]})
    assert p.devices == ["1080ti_1", "pixel2"]  # protocol order


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"methods": ["random", "cmaes"]}, "unknown method 'cmaes'"),
        ({"methods": []}, "at least one method"),
        ({"devices": ["pixel2", "toaster"]}, "unknown device 'toaster'"),
        ({"devices": "everything"}, "unknown device group"),
        ({"seeds": [-1]}, "seeds must be >= 0"),
        ({"budget": 0}, "protocol budget"),
        ({"budget": True}, "protocol budget: Input should be a valid integer"),
        ({"workers": 0}, "protocol workers"),
        ({"budgte": 5}, "unknown protocol key 'budgte'"),
        ({"modnas": {"overides": {}}}, "unknown protocol key 'modnas.overides'"),
    ],
)
def test_bad_protocols_are_one_line_errors(data, message):
    with pytest.raises(ModnasError, match=message) as info:
        make_protocol(data)
    assert "\n" not in str(info.value)


def test_yaml_files(tmp_path):
    good = tmp_path / "p.yaml"
    good.write_text("methods: [random, local]\ndevices: [fpga]\nseeds: [0, 1]\nbudget: 30\n")
    p = load_protocol(good, {"workers": 1})
    assert p.methods == ["random", "local"] and p.seeds == [0, 1] and p.budget == 30 and p.workers == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("methods: [random\n")
    with pytest.raises(ModnasError, match="not valid YAML"):
        load_protocol(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- random\n")
    with pytest.raises(ModnasError, match="mapping"):
        load_protocol(listing)
    with pytest.raises(ModnasError, match="does not exist"):
        load_protocol(tmp_path / "missing.yaml")


def test_shipped_protocols_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "benchmarks" / "protocols"
    files = sorted(root.glob("*.yaml"))
    assert files, "benchmarks/protocols/ ships at least the full report's protocol"
    for path in files:
        load_protocol(path)
    full = load_protocol(root / "full.yaml")
    assert full.seeds == [0, 1, 2] and full.devices == list(PROTOCOL_DEVICES) and full.budget == 200


def test_quick_protocol_is_small():
    p = quick_protocol()
    assert p.budget <= 20 and len(p.devices) == 2 and p.workers == 1
