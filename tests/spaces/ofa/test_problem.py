"""The OFA surrogate benchmark: its ground truth and, once its reference fronts ship, the problem end to end."""

from __future__ import annotations

import numpy as np
import pytest

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
