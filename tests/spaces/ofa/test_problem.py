"""The OFA surrogate benchmark: its ground truth and, once its reference fronts ship, the problem end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modnas.errors import ModnasError
from modnas.spaces.ofa import OFAArch
from modnas.spaces.ofa.latency import measured_table
from modnas.spaces.ofa.note10 import note10_latency
from modnas.spaces.ofa.problem import BENCHMARK_RESOLUTIONS, OFATruth
from modnas.spaces.ofa.space import OFASpace

TUTORIAL = "r192_5333_5434_767334_54547433_363656"


@pytest.fixture(scope="module")
def truth():
    return OFATruth(OFASpace(BENCHMARK_RESOLUTIONS))


def test_truth_reads_the_surrogates(truth):
    values = truth.evaluate([TUTORIAL], "note10", ("error", "latency"))
    assert values.shape == (1, 2)
    assert round(100 - values[0, 0], 2) == 81.71  # the OFA tutorial's predicted top-1
    assert values[0, 1] == note10_latency(OFAArch.from_key(TUTORIAL))
    table = measured_table()
    measured = table[table["r"] >= 160].head(20)
    np.testing.assert_array_equal(truth.latency(list(measured["key"]), "v100_1"), measured["lat_v100_1"].to_numpy())
    assert truth.supports("latency", "note10") and not truth.supports("latency", "pixel3")
    with pytest.raises(ModnasError, match="no OFA latency ground truth"):
        truth.latency([TUTORIAL], "pixel3")


def test_truth_refuses_resolutions_outside_the_benchmark(truth):
    with pytest.raises(ModnasError, match="outside this OFA space"):
        truth.error(["r128_3333_3333_3333_3333_3333"])


def test_details_of_one_architecture(truth):
    info = truth.details(TUTORIAL)
    assert info["arch_str"] == TUTORIAL and info["d"] == [2, 2, 3, 4, 3]
    assert round(info["predicted_top1_pct"], 2) == 81.71 and set(info["latency_ms"]) >= {"note10", "titan_rtx_64"}


def test_a_short_benchmark_mode_search_on_ofa(tmp_path):
    import json

    from typer.testing import CliRunner

    from modnas.cli import app
    from modnas.problem import get_problem

    problem = get_problem("ofa")
    assert problem.space.resolutions[0] == 160 and problem.devices.names("test") == ("titan_rtx_64", "note10")
    norm = problem.reference.normalisation("note10", ("error", "latency"))
    assert not norm.exact and len(norm.front_keys) > 20 and 0 < norm.true_hv < 1
    out = tmp_path / "run"
    args = ["search", "--space", "ofa", "--out", str(out), "--json", "--epochs", "1",
            "--set", "steps_per_epoch=2", "--set", "query_budget=30", "--set", "initial_queries=20",
            "--set", "eval_rays=4", "--set", "pretrain_steps=3", "--set", "error_predictor.steps=20",
            "--set", "error_predictor.ensemble=1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert {d["device"] for d in summary["devices"]} == set(problem.devices.names("protocol"))
    assert all(0 <= d["hv"] <= 1 for d in summary["devices"])
    front = CliRunner().invoke(app, ["front", str(out), "--device", "note10", "--json"])
    assert front.exit_code == 0, front.output
    rows = json.loads(front.stdout)
    assert rows and all(r["arch_str"].startswith("r") for r in rows)


def test_the_space_defaults_apply_unless_set():
    from modnas.config import load_config
    from modnas.problem import get_problem

    defaults = get_problem("ofa").search_defaults
    assert defaults, "OFA sets its own benchmark-mode defaults"
    key, value = next(iter(defaults.items()))
    config = load_config(None, {"space": "ofa"})
    read = config
    for part in key.split("."):
        read = getattr(read, part)
    assert read == value
    assert load_config(None, {"space": "ofa", key: value + 1}).model_dump()[key] == value + 1  # what the user sets wins
    assert load_config(None, {"space": "ofa", "mode": "oneshot"}).steps_per_epoch != value  # benchmark mode only
    assert load_config(None, {"space": "nb201"}).model_dump() == load_config(None, {}).model_dump()


def test_the_benchmark_report_speaks_of_reference_fronts_and_the_spaces_devices():
    from modnas.baselines.report import _space_facts

    ofa = _space_facts({"protocol": {"space": "ofa"}})
    assert ofa["front"] == "reference front" and (ofa["train"], ofa["test"]) == (11, 2)
    assert "ImageNet" in ofa["error"] and "stored" in ofa["normalised"]
    nb201 = _space_facts({"protocol": {"space": "nb201"}})
    assert nb201["front"] == "true front" and (nb201["train"], nb201["test"]) == (13, 6)
